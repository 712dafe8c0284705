//! What the service writes: its configuration (from the server's TOML), the request parameters
//! a device may add (`?report_interval=300&site=berlin-3`), and the configuration object itself
//! (a small JSON document).

use serde::{Deserialize, Serialize};

/// `CKA_APPLICATION` of the data object: how the service recognises the object it wrote.
pub const APPLICATION: &str = "keyward-device-config";

/// Version of the object's format (`"version"` in the JSON).
pub const FORMAT_VERSION: u32 = 1;

/// The service's configuration (the `[device_config]` table of the example server's TOML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSettings {
    /// Where the device's application reports to.
    pub backend_url: String,
    /// Time servers for the device.
    #[serde(default)]
    pub ntp_servers: Vec<String>,
    /// Reporting interval in seconds when the request names none.
    #[serde(default = "default_interval")]
    pub report_interval: u32,
    /// Bounds of a requested interval (`?report_interval=`).
    #[serde(default = "default_min_interval")]
    pub min_report_interval: u32,
    #[serde(default = "default_max_interval")]
    pub max_report_interval: u32,
    /// `CKA_LABEL` of the data object.
    #[serde(default = "default_label")]
    pub label: String,
}

fn default_interval() -> u32 {
    300
}

fn default_min_interval() -> u32 {
    60
}

fn default_max_interval() -> u32 {
    86_400
}

fn default_label() -> String {
    "device-config".to_string()
}

impl Default for ConfigSettings {
    fn default() -> Self {
        Self {
            backend_url: "https://backend.example/ingest".to_string(),
            ntp_servers: vec!["pool.ntp.org".to_string()],
            report_interval: default_interval(),
            min_report_interval: default_min_interval(),
            max_report_interval: default_max_interval(),
            label: default_label(),
        }
    }
}

/// A request outside what the configuration allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("request parameter \"report_interval\" is not a number of seconds: {0:?}")]
    Interval(String),
    #[error(
        "request parameter \"report_interval\" = {got} is outside the allowed {min}..={max} seconds"
    )]
    IntervalRange { got: u32, min: u32, max: u32 },
    #[error("request parameter \"site\" is not 1-64 of A-Za-z0-9._-: {0:?}")]
    Site(String),
}

/// A configuration the service refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device configuration settings: {0}")]
pub struct SettingsError(pub String);

/// What a device asked for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRequest {
    pub report_interval: u32,
    pub site: Option<String>,
}

/// The object written to the element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceConfig {
    pub version: u32,
    /// The device it was written for (the CHR of its device certificate).
    pub device: String,
    pub backend_url: String,
    pub ntp_servers: Vec<String>,
    pub report_interval: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

impl DeviceConfig {
    /// The bytes stored on the element (compact JSON, fields in declaration order).
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

fn site_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl ConfigSettings {
    /// Checks the settings once, at start.
    pub fn check(&self) -> Result<(), SettingsError> {
        let fail = |what: &str| Err(SettingsError(what.to_string()));
        if self.backend_url.is_empty() {
            return fail("backend_url is empty");
        }
        if self.min_report_interval == 0 || self.min_report_interval > self.max_report_interval {
            return fail("min_report_interval must be 1..=max_report_interval");
        }
        if !(self.min_report_interval..=self.max_report_interval).contains(&self.report_interval) {
            return fail("report_interval is outside min_report_interval..=max_report_interval");
        }
        if self.label.is_empty() || self.label.len() > 64 {
            return fail("label must have 1-64 bytes");
        }
        Ok(())
    }

    /// The request from the session's URL parameters, checked against the settings.
    pub fn request<'a>(
        &self,
        param: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<ConfigRequest, RequestError> {
        let report_interval = match param("report_interval") {
            None => self.report_interval,
            Some(v) => {
                let got: u32 = v.parse().map_err(|_| RequestError::Interval(v.into()))?;
                if !(self.min_report_interval..=self.max_report_interval).contains(&got) {
                    return Err(RequestError::IntervalRange {
                        got,
                        min: self.min_report_interval,
                        max: self.max_report_interval,
                    });
                }
                got
            }
        };
        let site = match param("site") {
            None => None,
            Some(s) if site_ok(s) => Some(s.to_string()),
            Some(s) => return Err(RequestError::Site(s.into())),
        };
        Ok(ConfigRequest {
            report_interval,
            site,
        })
    }

    /// The object for `device`.
    pub fn object(&self, device: &str, request: &ConfigRequest) -> DeviceConfig {
        DeviceConfig {
            version: FORMAT_VERSION,
            device: device.to_string(),
            backend_url: self.backend_url.clone(),
            ntp_servers: self.ntp_servers.clone(),
            report_interval: request.report_interval,
            site: request.site.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests_are_checked_against_the_settings() {
        let s = ConfigSettings::default();
        s.check().unwrap();
        let none = s.request(|_| None).unwrap();
        assert_eq!(none.report_interval, 300);
        assert_eq!(none.site, None);
        let ok = s
            .request(|n| match n {
                "report_interval" => Some("900"),
                "site" => Some("berlin-3"),
                _ => None,
            })
            .unwrap();
        assert_eq!(ok.report_interval, 900);
        assert_eq!(ok.site.as_deref(), Some("berlin-3"));
        assert!(matches!(
            s.request(|n| (n == "report_interval").then_some("5")),
            Err(RequestError::IntervalRange { got: 5, .. })
        ));
        assert!(matches!(
            s.request(|n| (n == "report_interval").then_some("soon")),
            Err(RequestError::Interval(_))
        ));
        assert!(matches!(
            s.request(|n| (n == "site").then_some("a,CN=evil")),
            Err(RequestError::Site(_))
        ));
    }

    #[test]
    fn settings_from_toml_and_their_checks() {
        let s: ConfigSettings = toml::from_str(
            r#"
            backend_url = "https://iot.example/api"
            ntp_servers = ["ntp1.example", "ntp2.example"]
            report_interval = 120
            "#,
        )
        .unwrap();
        s.check().unwrap();
        assert_eq!(s.label, "device-config");
        let bad = ConfigSettings {
            report_interval: 10,
            ..s.clone()
        };
        assert!(bad.check().is_err());
        assert!(toml::from_str::<ConfigSettings>("backend_url = \"x\"\nfoo = 1").is_err());
    }

    #[test]
    fn the_object_round_trips_as_json() {
        let s = ConfigSettings::default();
        let o = s.object(
            "ZZKWD0000100001",
            &ConfigRequest {
                report_interval: 600,
                site: None,
            },
        );
        let bytes = o.encode().unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("site"));
        assert_eq!(DeviceConfig::parse(&bytes).unwrap(), o);
    }
}
