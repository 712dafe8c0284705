//! ISO/IEC 7816-4 building blocks: command and response APDUs (short and extended length),
//! status words and a BER-TLV codec.
//!
//! Parsers are zero-copy views over the input and reject truncated or trailing data; they
//! return errors and never panic, whatever the input.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod command;
mod error;
mod response;
mod status;
pub mod tlv;

pub use command::{Command, CommandView};
pub use error::ApduError;
pub use response::{Response, ResponseView};
pub use status::StatusWord;
