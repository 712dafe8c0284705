//! T=1 block transmission protocol for embedded secure elements, for both the host (interface
//! device) and the card role, in three link profiles: ISO/IEC 7816-3 T=1, NXP "T=1 over I2C"
//! (SE05x, UM11225) and GlobalPlatform APDU transport over SPI/I2C (T=1').
//!
//! The engines are sans-io: frames and the current time (µs) go in; frames, APDUs and the next
//! deadline come out. Buses (a simulated one with fault injection, a Unix-socket adapter) are
//! separate.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod block;
#[cfg(feature = "std")]
pub mod bus;
mod card;
mod host;
pub mod params;
mod profile;
pub mod sim;

pub use block::{Block, FrameError, RCode, SKind};
pub use card::{CardEngine, CardEvent};
pub use host::{HostConfig, HostEngine, HostEvent, LinkError};
pub use profile::{Edc, Profile, Variant};
