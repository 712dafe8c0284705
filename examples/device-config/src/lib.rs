//! An example of a custom RAMoverHTTP service (see `docs/extending.md`): `/rt/device-config`
//! writes a device configuration object (backend URL, time servers, reporting interval) into
//! a produced device's secure element, under end-to-end secure messaging, after authenticating
//! the device exactly as provisioning does.
//!
//! - [`settings`]: the service's configuration, the request parameters and the object (JSON);
//! - [`service`]: the script (`DeviceConfigService`, a `keyward_ram::server::Service`).
#![forbid(unsafe_code)]

pub mod service;
pub mod settings;

pub use service::{DeviceConfigService, DeviceConfigurator};
pub use settings::{ConfigSettings, DeviceConfig};
