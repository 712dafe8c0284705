//! The Keyward back end: the device database (SQLite or PostgreSQL), secrets sealed at rest,
//! the server's data directory, and the RAMoverHTTP services — production (`/rt/produce`) and
//! provisioning (`/rt/provision`).
#![forbid(unsafe_code)]

pub mod api;
pub mod crl;
pub mod db;
pub mod ocsp;
pub mod produce;
pub mod profile;
pub mod provision;
pub mod seal;
pub mod setup;
pub mod ui;
pub mod x509_ca;
