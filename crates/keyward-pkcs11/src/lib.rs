//! `libkeyward_pkcs11.so`: a PKCS#11 2.40 module (with the 3.0 `C_GetInterface`) over
//! SmartCard-HSM-compatible secure elements reached through PC/SC, a T=1 link, or a virtual
//! element embedded in the calling process.
//!
//! The module's logic is safe Rust (`module`, `token`, `object`, `ops`); `ffi` is the C ABI
//! and the only place with `unsafe` in the whole project.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod attr;
pub mod config;
pub mod error;
pub mod ffi;
pub mod mechanism;
pub mod module;
pub mod object;
pub mod ops;
pub mod session;
pub mod token;
pub mod x509;

pub use object::{CKA_KEYWARD_ATTESTATION, CKC_KEYWARD_CVC};
