//! Public-key authentication (INITIALIZE `93 m n`): custodians' EC keys from other
//! SmartCard-HSMs are registered with their attestation (`80 54`, the key's authenticated
//! request, whose signer — the custodian element's device certificate — was verified with PSO
//! VERIFY CERTIFICATE); the user is authenticated once `n` of the `m` keys have each signed
//! SHA-256(this device's id ‖ the last challenge): MSE SET AT `81 A4 {83 CHR}`, GET CHALLENGE,
//! EXTERNAL AUTHENTICATE.

use keyward_apdu::{CommandView, Response, StatusWord as Sw, tlv};
use keyward_crypto::{Curve, HashAlg};
use keyward_cvc::{AuthenticatedRequest, PublicKey, signature};

use crate::applet::{Applet, CmdResult, Persist};
use crate::state::{HexBytes, PkaKey};

impl<P: Persist> Applet<P> {
    /// `(m, n)` if public-key authentication is configured.
    fn pka(&self) -> Result<(u8, u8), Sw> {
        self.require_initialized()?.pka.ok_or(Sw::INS_NOT_SUPPORTED)
    }

    fn pka_status(&self) -> Result<Response, Sw> {
        let (m, n) = self.pka()?;
        let registered = self.require_initialized()?.pka_keys.len();
        let missing = usize::from(m).saturating_sub(registered);
        Ok(Response::ok(vec![
            m,
            u8::try_from(missing).unwrap_or(0),
            n,
            u8::try_from(self.session.pka_done.len()).unwrap_or(u8::MAX),
        ]))
    }

    /// MANAGE PUBLIC KEY AUTHENTICATION (`80 54 00 00`): with data (the value of an
    /// authenticated request `67`) registers the key; without, answers `m ‖ missing ‖ n ‖
    /// authenticated`.
    pub(crate) fn manage_pka(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if (cmd.p1, cmd.p2) != (0, 0) {
            return Err(Sw::INCORRECT_P1P2);
        }
        let (m, _) = self.pka()?;
        if cmd.data.is_empty() {
            return self.pka_status();
        }
        if self.require_initialized()?.pka_keys.len() >= usize::from(m) {
            return Err(Sw::NOT_ENOUGH_MEMORY);
        }
        let raw = tlv::encode(0x67, cmd.data).map_err(|_| Sw::WRONG_DATA)?;
        let ar = AuthenticatedRequest::parse(&raw).map_err(|_| Sw::WRONG_DATA)?;
        // The outer signature: by the custodian element's device key, whose certificate was
        // verified (and its chain with it) in this session.
        let signer = self
            .session
            .verified
            .iter()
            .find(|(chr, _)| *chr == ar.outer_car)
            .map(|(_, k)| k.clone())
            .ok_or(Sw::REFERENCE_NOT_FOUND)?;
        let outer = AuthenticatedRequest::outer_signed_data(&ar.request, &ar.outer_car)
            .map_err(|_| Sw::WRONG_DATA)?;
        signature::verify(&signer, None, &outer, &ar.outer_signature)
            .map_err(|_| Sw::SECURITY_STATUS_NOT_SATISFIED)?;
        // The inner one: possession of the key.
        let inner = &ar.request;
        signature::verify(
            &inner.body.public_key,
            None,
            &inner.body_raw,
            &inner.signature,
        )
        .map_err(|_| Sw::SECURITY_STATUS_NOT_SATISFIED)?;
        let PublicKey::Ec {
            domain: Some(domain),
            point,
            ..
        } = &inner.body.public_key
        else {
            return Err(Sw::FUNCTION_NOT_SUPPORTED);
        };
        let curve = Curve::from_domain(domain).ok_or(Sw::FUNCTION_NOT_SUPPORTED)?;
        let chr = inner.body.chr.clone();
        if self
            .require_initialized()?
            .pka_keys
            .iter()
            .any(|k| k.chr.0 == chr)
        {
            return Err(Sw::FILE_EXISTS);
        }
        let key = PkaKey {
            chr: HexBytes(chr),
            curve,
            point: HexBytes(point.clone()),
        };
        self.mutate(|s| {
            s.config.as_mut().ok_or(Sw::UNKNOWN)?.pka_keys.push(key);
            Ok(())
        })?;
        self.pka_status()
    }

    /// MSE SET AT `81 A4 {83 CHR}`: the registered key the next EXTERNAL AUTHENTICATE is by.
    pub(crate) fn select_pka_key(&mut self, chr: &[u8]) -> CmdResult {
        self.pka()?;
        if !self
            .require_initialized()?
            .pka_keys
            .iter()
            .any(|k| k.chr.0 == chr)
        {
            return Err(Sw::REFERENCE_NOT_FOUND);
        }
        if self.session.pka_done.iter().any(|c| c == chr) {
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        self.session.pka_selected = Some(chr.to_vec());
        Ok(Response::ok(Vec::new()))
    }

    /// EXTERNAL AUTHENTICATE (`00 82 00 00`): the selected key's ECDSA signature (DER or
    /// plain `r‖s`) over SHA-256(device id ‖ last challenge).
    pub(crate) fn pka_external_authenticate(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if (cmd.p1, cmd.p2) != (0, 0) {
            return Err(Sw::INCORRECT_P1P2);
        }
        self.pka()?;
        if cmd.data.is_empty() {
            return Err(Sw::WRONG_LENGTH);
        }
        let chr = self
            .session
            .pka_selected
            .take()
            .ok_or(Sw::REFERENCE_NOT_FOUND)?;
        let challenge = self
            .session
            .challenge
            .clone()
            .ok_or(Sw::CONDITIONS_NOT_SATISFIED)?;
        let device_id = self
            .state
            .device
            .as_ref()
            .map(|d| d.chr.clone())
            .ok_or(Sw::CONDITIONS_NOT_SATISFIED)?;
        let key = self
            .require_initialized()?
            .pka_keys
            .iter()
            .find(|k| k.chr.0 == chr)
            .cloned()
            .ok_or(Sw::REFERENCE_NOT_FOUND)?;
        let digest = HashAlg::Sha256.digest(&[device_id.as_bytes(), &challenge].concat());
        if !keyward_crypto::ecdsa_verify_prehash(key.curve, &key.point.0, &digest, cmd.data) {
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        self.session.pka_done.push(chr);
        self.update_user();
        Ok(Response::ok(Vec::new()))
    }
}
