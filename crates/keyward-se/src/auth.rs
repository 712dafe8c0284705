//! MANAGE SECURITY ENVIRONMENT, PSO VERIFY CERTIFICATE (a registry of verified public keys) and
//! GENERAL AUTHENTICATE (chip authentication with PrK.DevAut, which opens secure messaging).

use keyward_apdu::{CommandView, Response, StatusWord as Sw, tlv};
use keyward_crypto::EcKey;
use keyward_cvc::{Certificate, PublicKey, signature};

use crate::applet::{Applet, CmdResult, Persist};

/// At most this many verified certificates are remembered per session.
const MAX_VERIFIED: usize = 16;

impl<P: Persist> Applet<P> {
    pub(crate) fn manage_security_environment(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let items = tlv::parse_all(cmd.data).map_err(|_| Sw::WRONG_DATA)?;
        match (cmd.p1, cmd.p2, items.as_slice()) {
            // SET AT for chip authentication.
            (0x41, 0xA4, [protocol]) if protocol.tag.0 == 0x80 => {
                if protocol.value != keyward_sm::CA_OID {
                    return Err(Sw::WRONG_DATA);
                }
                self.session.ca_ready = true;
                Ok(Response::ok(Vec::new()))
            }
            // SET DST: the key that verifies the next certificate.
            (0x81, 0xB6, [reference]) if reference.tag.0 == 0x83 => {
                if self.known_key(reference.value).is_none() {
                    return Err(Sw::REFERENCE_NOT_FOUND);
                }
                self.session.dst = Some(reference.value.to_vec());
                Ok(Response::ok(Vec::new()))
            }
            // SET AT for public-key authentication: the registered key, by CHR.
            (0x81, 0xA4, [reference]) if reference.tag.0 == 0x83 => {
                self.select_pka_key(reference.value)
            }
            (0x81, 0xA4, _) => Err(Sw::WRONG_DATA),
            (0x41, 0xA4, _) | (0x81, 0xB6, _) => Err(Sw::WRONG_DATA),
            _ => Err(Sw::INCORRECT_P1P2),
        }
    }

    /// A public key (with explicit domain parameters) known under `chr`: verified in this session
    /// or a built-in root.
    fn known_key(&self, chr: &[u8]) -> Option<PublicKey> {
        if let Some((_, key)) = self.session.verified.iter().find(|(c, _)| c == chr) {
            return Some(key.clone());
        }
        self.state
            .roots
            .iter()
            .filter_map(|r| Certificate::parse(&r.0).ok())
            .find(|r| r.body.chr == chr)
            .map(|r| r.body.public_key)
    }

    pub(crate) fn verify_certificate(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if (cmd.p1, cmd.p2) != (0x00, 0xBE) {
            return Err(Sw::INCORRECT_P1P2);
        }
        // The value of 7F21 (7F4E ‖ 5F37), or the whole 7F21.
        let wrapped;
        let raw = if cmd.data.starts_with(&[0x7F, 0x21]) {
            cmd.data
        } else {
            wrapped = tlv::encode(0x7F21, cmd.data).map_err(|_| Sw::WRONG_DATA)?;
            &wrapped
        };
        let cert = Certificate::parse(raw).map_err(|_| Sw::WRONG_DATA)?;
        let issuer_chr = self
            .session
            .dst
            .clone()
            .ok_or(Sw::CONDITIONS_NOT_SATISFIED)?;
        if cert.body.car.as_deref() != Some(&issuer_chr[..]) {
            return Err(Sw::WRONG_DATA);
        }
        let issuer = self.known_key(&issuer_chr).ok_or(Sw::REFERENCE_NOT_FOUND)?;
        let inherited = match &issuer {
            PublicKey::Ec { domain, .. } => domain.clone(),
            PublicKey::Rsa { .. } => None,
        };
        signature::verify(&issuer, inherited.as_ref(), &cert.body_raw, &cert.signature)
            .map_err(|_| Sw::WRONG_DATA)?;
        let key = match cert.body.public_key {
            PublicKey::Ec {
                algorithm,
                domain: None,
                point,
            } => PublicKey::Ec {
                algorithm,
                domain: Some(inherited.ok_or(Sw::WRONG_DATA)?),
                point,
            },
            other => other,
        };
        let verified = &mut self.session.verified;
        verified.retain(|(c, _)| *c != cert.body.chr);
        if verified.len() == MAX_VERIFIED {
            verified.remove(0);
        }
        verified.push((cert.body.chr, key));
        Ok(Response::ok(Vec::new()))
    }

    pub(crate) fn general_authenticate(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if (cmd.p1, cmd.p2) != (0, 0) {
            return Err(Sw::INCORRECT_P1P2);
        }
        if !std::mem::take(&mut self.session.ca_ready) {
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        let device = self
            .state
            .device
            .as_ref()
            .ok_or(Sw::CONDITIONS_NOT_SATISFIED)?;
        let device =
            EcKey::from_private(device.curve, &device.private.0).map_err(|_| Sw::UNKNOWN)?;
        let (response, session) =
            keyward_sm::card_chip_authentication(&device, cmd.data).map_err(|_| Sw::WRONG_DATA)?;
        // Authentication done in plain before the channel stays valid inside it.
        self.session.sm = Some(session);
        Ok(Response::ok(response))
    }
}
