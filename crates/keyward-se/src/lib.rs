//! A virtual secure element that speaks the SmartCard-HSM command set.
//!
//! [`Applet`] is the sans-io core: APDU bytes in, response APDU bytes out. Persistence goes
//! through the [`Persist`] trait (the sealed, atomically written [`StateFile`] in production);
//! transports (vpcd, T=1) are thin adapters around [`Applet::transmit`].
#![forbid(unsafe_code)]

pub use keyward_crypto as crypto;

mod applet;
mod auth;
mod card_manager;
pub mod dev_pki;
pub mod key_blob;
mod keygen;
mod ops;
mod perso;
mod pin;
mod pka;
pub mod state;
pub mod storage;
pub mod vpcd;
mod wrap;

pub use applet::{AID, ATR, Applet, MemoryStore, Persist, VERSION};
pub use card_manager::{ISD_AID, PACKAGE_AID, dgi};
pub use storage::{StateFile, StorageError, read_snapshot};
