//! Host side of Keyward's card access: a `CardChannel` trait with transports (an in-process
//! virtual element, PC/SC), the end-to-end `SecureChannel` (chip authentication + secure
//! messaging) over any channel, and the device-PKI checks a back end makes before trusting an
//! element.
#![forbid(unsafe_code)]

mod channel;
mod device;
pub mod dkek_share;
mod hsm;
pub mod password_shares;
pub mod pkcs15;
mod secure;

pub use channel::{
    CardChannel, CardError, InProcess, PcscChannel, T1Channel, open_transport, parse_variant,
};
pub use device::{
    DeviceError, authenticate_device, read_attestation, read_c_devaut, select_applet, verify_device,
};
pub use hsm::{
    ALG_WRAP, DkekStatus, GeneratedKey, Hsm, HsmError, InitConfig, KeyInfo, KeyOptions, KeySpec,
    PinStatus, PkaStatus, generate_command, generate_command_in, intrinsic_id, key_description,
    write_file_commands,
};
pub use secure::SecureChannel;
