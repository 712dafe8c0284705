//! RAMoverHTTP, wire-compatible with CardContact's implementation: the device relays batches of
//! APDUs between its secure element and a back-end service over HTTP(S).
//!
//! - [`codec`]: the messages (`E8` initiation, `AA` command scripts, `AB` response scripts),
//!   byte for byte, sans-io.
//! - [`client`]: the device side — a [`client::Card`] and the POST loop.
//! - [`server`]: the session engine — services are async scripts over a [`server::Session`]
//!   (`exchange`, `reset`, `notify`) that never see HTTP.
#![forbid(unsafe_code)]

pub mod client;
pub mod codec;
pub mod guard;
pub mod server;
pub mod tlv;

/// The content type every POST carries (also the first, which holds the initiation).
pub const CONTENT_TYPE: &str = "application/org.openscdp-content-mgt-response;version=1.0";
/// The content type of the server's command scripts.
pub const SCRIPT_CONTENT_TYPE: &str = "application/org.openscdp-content-mgt;version=1.0";
/// The protocol header of the current C client.
pub const ADMIN_PROTOCOL: &str = "openscdp-remote-admin/1.0";
/// The session cookie (the name the Java clients use when they pre-bind a session).
pub const COOKIE: &str = "JSESSIONID";

/// Malformed RAMoverHTTP data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RamError {
    #[error("truncated TLV")]
    Truncated,
    #[error("unsupported TLV length form (only up to 82 xx xx)")]
    BadLength,
    #[error("value longer than 65,535 bytes")]
    TooLong,
    #[error("unexpected tag {0:02X}")]
    UnexpectedTag(u8),
    #[error("data after the message")]
    TrailingData,
    #[error("malformed INTEGER")]
    BadInteger,
    #[error("text is not UTF-8")]
    BadText,
    #[error("notify without message id")]
    BadNotify,
    #[error("initiation without ATR")]
    MissingAtr,
    #[error("response script without executed-commands count")]
    MissingCount,
}
