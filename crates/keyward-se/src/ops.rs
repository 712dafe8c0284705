//! SIGN, DECIPHER (RSA raw decryption, ECDH) and CIPHER (AES) with stored keys.

use std::sync::Arc;

use keyward_apdu::{CommandView, Response, StatusWord as Sw};

use crate::applet::{Applet, CmdResult, Persist};
use crate::state::KeyMaterial;
use keyward_crypto::{self as crypto, CryptoError, HashAlg, PrivateKey};

fn input_error(_: CryptoError) -> Sw {
    Sw::WRONG_DATA
}

impl<P: Persist> Applet<P> {
    /// Authorizes one use of key `kid` with algorithm `alg`: user authenticated, algorithm in the
    /// key's list, key-use counter not exhausted (and decremented, persistently, before use).
    fn use_key(&mut self, kid: u8, alg: u8) -> Result<Arc<PrivateKey>, Sw> {
        self.require_user()?;
        let obj = self.state.keys.get(&kid).ok_or(Sw::REFERENCE_NOT_FOUND)?;
        if obj
            .algorithms
            .as_ref()
            .is_some_and(|list| !list.0.contains(&alg))
        {
            return Err(Sw::FUNCTION_NOT_SUPPORTED);
        }
        match obj.use_counter {
            Some(0) => return Err(Sw::REFERENCE_DATA_NOT_USABLE),
            Some(_) => self.mutate(|s| {
                let counter = s
                    .keys
                    .get_mut(&kid)
                    .and_then(|k| k.use_counter.as_mut())
                    .ok_or(Sw::UNKNOWN)?;
                *counter -= 1;
                Ok(())
            })?,
            None => {}
        }
        self.private_key(kid)
    }

    pub(crate) fn sign(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let (kid, alg, data) = (cmd.p1, cmd.p2, cmd.data);
        check_sign_alg(self.key_kind(kid)?, alg)?;
        let key = self.use_key(kid, alg)?;
        let hash = || HashAlg::from_alg_nibble(alg & 0x0F).ok_or(Sw::FUNCTION_NOT_SUPPORTED);
        let sig = match (&*key, alg) {
            (PrivateKey::Rsa(k), 0x20) => {
                if data.len() != k.size() {
                    return Err(Sw::WRONG_DATA);
                }
                k.raw_private(data).map_err(input_error)?.to_vec()
            }
            (PrivateKey::Rsa(k), 0x30) => k.sign_pkcs1_digest_info(data).map_err(input_error)?,
            (PrivateKey::Rsa(k), 0x31..=0x35) => k
                .sign_pkcs1(hash()?, &hash()?.digest(data))
                .map_err(input_error)?,
            (PrivateKey::Rsa(k), 0x40) => {
                // A bare hash, or (as OpenSC 0.22/0.23 send for CKM_SHAxxx_RSA_PKCS_PSS) a DigestInfo.
                let (h, digest) = match HashAlg::from_output_len(data.len()) {
                    Some(h) => (h, data),
                    None => HashAlg::split_digest_info(data).ok_or(Sw::WRONG_DATA)?,
                };
                k.sign_pss(h, digest).map_err(input_error)?
            }
            (PrivateKey::Rsa(k), 0x41..=0x45) => k
                .sign_pss(hash()?, &hash()?.digest(data))
                .map_err(input_error)?,
            (PrivateKey::Ec(k), 0x70) => k.sign_prehash_der(data).map_err(input_error)?,
            (PrivateKey::Ec(k), 0x71..=0x75) => k
                .sign_prehash_der(&hash()?.digest(data))
                .map_err(input_error)?,
            _ => return Err(Sw::FUNCTION_NOT_SUPPORTED),
        };
        Ok(Response::ok(sig))
    }

    pub(crate) fn decipher(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let (kid, alg, data) = (cmd.p1, cmd.p2, cmd.data);
        match (self.key_kind(kid)?, alg) {
            (KeyKind::Rsa, 0x21) | (KeyKind::Ec, 0x80) => {}
            _ => return Err(Sw::FUNCTION_NOT_SUPPORTED),
        }
        let key = self.use_key(kid, alg)?;
        let out = match &*key {
            PrivateKey::Rsa(k) => {
                if data.len() != k.size() {
                    return Err(Sw::WRONG_DATA);
                }
                k.raw_private(data).map_err(input_error)?
            }
            PrivateKey::Ec(k) => k.ecdh(data).map_err(input_error)?,
            PrivateKey::Aes(_) => return Err(Sw::FUNCTION_NOT_SUPPORTED),
        };
        Ok(Response::ok(out.to_vec()))
    }

    pub(crate) fn cipher(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let (kid, alg, data) = (cmd.p1, cmd.p2, cmd.data);
        if !matches!(
            (self.key_kind(kid)?, alg),
            (KeyKind::Aes, 0x10 | 0x11 | 0x18)
        ) {
            return Err(Sw::FUNCTION_NOT_SUPPORTED);
        }
        let key = self.use_key(kid, alg)?;
        let PrivateKey::Aes(k) = &*key else {
            return Err(Sw::FUNCTION_NOT_SUPPORTED);
        };
        let out = match alg {
            0x10 => crypto::aes_cbc_encrypt(k, data),
            0x11 => crypto::aes_cbc_decrypt(k, data),
            _ => crypto::aes_cmac(k, data),
        }
        .map_err(input_error)?;
        Ok(Response::ok(out))
    }

    fn key_kind(&self, kid: u8) -> Result<KeyKind, Sw> {
        self.require_user()?;
        let obj = self.state.keys.get(&kid).ok_or(Sw::REFERENCE_NOT_FOUND)?;
        Ok(match obj.material {
            KeyMaterial::Rsa { .. } => KeyKind::Rsa,
            KeyMaterial::Ec { .. } => KeyKind::Ec,
            KeyMaterial::Aes { .. } => KeyKind::Aes,
        })
    }
}

#[derive(Clone, Copy)]
enum KeyKind {
    Rsa,
    Ec,
    Aes,
}

/// Whether `alg` is a SIGN algorithm for this kind of key (checked before a use is counted).
fn check_sign_alg(kind: KeyKind, alg: u8) -> Result<(), Sw> {
    let ok = match kind {
        KeyKind::Rsa => matches!(alg, 0x20 | 0x30..=0x35 | 0x40..=0x45),
        KeyKind::Ec => matches!(alg, 0x70..=0x75),
        KeyKind::Aes => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Sw::FUNCTION_NOT_SUPPORTED)
    }
}
