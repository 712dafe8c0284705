//! WRAP KEY (`80 72 KID 92`) and UNWRAP KEY (`80 74 KID 93`): a key leaves the element only
//! encrypted and authenticated under the DKEK (`key_blob`), and only if its algorithm list
//! allows key wrapping (`92`); a blob enters only under the same DKEK, its MAC intact.

use keyward_apdu::{CommandView, Response, StatusWord as Sw};

use crate::applet::{Applet, CmdResult, Persist};
use crate::key_blob::{self, BlobError};
use crate::state::KeyObject;

/// The algorithm id that allows wrapping a key.
const ALG_WRAP: u8 = 0x92;
/// The file a host may stage a blob in (OpenSC 0.24+) instead of sending it inline.
const STAGING: u16 = 0x2F10;

impl<P: Persist> Applet<P> {
    /// The complete DKEK of key domain `kd`.
    fn dkek(&self, kd: u8) -> Result<Vec<u8>, Sw> {
        let config = self.require_initialized()?;
        if config.domain_count() == 0 {
            // Initialized without DKEK: the function does not exist on this element.
            return Err(Sw::INS_NOT_SUPPORTED);
        }
        match config.domain(kd) {
            Some((_, d)) if d.outstanding == 0 => Ok(d.value.0.clone()),
            // Not set up, or shares still outstanding: no DKEK to wrap under.
            _ => Err(Sw::REFERENCE_NOT_FOUND),
        }
    }

    pub(crate) fn wrap_key(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p2 != 0x92 {
            return Err(Sw::INCORRECT_P1P2);
        }
        self.require_user()?;
        let kid = cmd.p1;
        if kid == 0 {
            // The device key never leaves the element.
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        let key = self.state.keys.get(&kid).ok_or(Sw::REFERENCE_NOT_FOUND)?;
        let dkek = zeroize::Zeroizing::new(self.dkek(key.domain.unwrap_or(0))?);
        let algorithms = key.algorithms.as_ref().map(|a| a.0.clone());
        if algorithms.as_ref().is_some_and(|a| !a.contains(&ALG_WRAP)) {
            return Err(Sw::FUNCTION_NOT_SUPPORTED);
        }
        let blob = key_blob::wrap(&dkek, &key.material, algorithms.as_deref().unwrap_or(&[]))
            .map_err(|_| Sw::UNKNOWN)?;
        Ok(Response::ok(blob))
    }

    pub(crate) fn unwrap_key(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p2 != 0x93 {
            return Err(Sw::INCORRECT_P1P2);
        }
        self.require_user()?;
        let kid = cmd.p1;
        if kid == 0 {
            return Err(Sw::INCORRECT_P1P2);
        }
        let count = self.require_initialized()?.domain_count();
        if count == 0 {
            return Err(Sw::INS_NOT_SUPPORTED);
        }
        if self.state.keys.contains_key(&kid) {
            return Err(Sw::FILE_EXISTS);
        }
        let staged = cmd.data.is_empty();
        let blob = if staged {
            self.state
                .files
                .get(&STAGING)
                .map(|f| f.0.clone())
                .ok_or(Sw::WRONG_DATA)?
        } else {
            cmd.data.to_vec()
        };
        // The key domain whose DKEK the blob names (its key check value).
        let domain = (0..count).find(|kd| {
            self.dkek(*kd)
                .is_ok_and(|d| blob.get(..8) == Some(&key_blob::kcv(&d)[..]))
        });
        let Some(domain) = domain else {
            tracing::warn!(
                kid,
                "UNWRAP KEY refused: no key domain holds the blob's DKEK"
            );
            return Err(Sw::WRONG_DATA);
        };
        let dkek = zeroize::Zeroizing::new(self.dkek(domain)?);
        let unwrapped = match key_blob::unwrap(&dkek, &blob) {
            Ok(u) => u,
            Err(BlobError::Unsupported(_)) => return Err(Sw::FUNCTION_NOT_SUPPORTED),
            Err(e) => {
                tracing::warn!(kid, error = %e, "UNWRAP KEY refused");
                return Err(Sw::WRONG_DATA);
            }
        };
        self.mutate(|s| {
            s.keys.insert(
                kid,
                KeyObject {
                    material: unwrapped.material,
                    use_counter: None,
                    algorithms: (!unwrapped.algorithms.is_empty())
                        .then_some(crate::state::HexBytes(unwrapped.algorithms)),
                    domain: (domain != 0).then_some(domain),
                },
            );
            // A staged blob is used once.
            s.files.remove(&STAGING);
            Ok(())
        })?;
        self.invalidate_keys();
        Ok(Response::ok(Vec::new()))
    }
}
