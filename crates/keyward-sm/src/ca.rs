//! Chip authentication: ephemeral-static ECDH between the host's ephemeral key and PrK.DevAut,
//! a SHA-1 KDF over the shared x-coordinate and the card's nonce, and an AES-CMAC token over the
//! host's ephemeral public key that proves the card holds the certified key.

use keyward_apdu::{Command, tlv};
use keyward_crypto::{Curve, EcKey, aes_cmac, random};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{SessionKeys, SmError, SmSession};

/// id-CA-ECDH-AES-CBC-CMAC-128 (0.4.0.127.0.7.2.2.3.2.2).
pub const CA_OID: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x03, 0x02, 0x02];

/// K_enc = SHA-1(K ‖ r ‖ 00000001)[..16], K_mac = SHA-1(K ‖ r ‖ 00000002)[..16].
pub fn derive_keys(shared_x: &[u8], nonce: &[u8]) -> SessionKeys {
    let derive = |counter: u8| {
        let mut h = Sha1::new();
        h.update(shared_x);
        h.update(nonce);
        h.update([0, 0, 0, counter]);
        let d = h.finalize();
        let mut k = Zeroizing::new([0u8; 16]);
        k.copy_from_slice(&d[..16]);
        k
    };
    SessionKeys {
        k_enc: derive(1),
        k_mac: derive(2),
    }
}

/// The token: AES-CMAC(K_mac, `7F49 { 06 <CA OID>, 86 <PK_eph> }`) truncated to 8 bytes.
pub fn token(k_mac: &[u8; 16], ephemeral_public: &[u8]) -> Result<[u8; 8], SmError> {
    let mut inner = Vec::new();
    tlv::write(&mut inner, 0x06, CA_OID).map_err(|_| SmError::Malformed)?;
    tlv::write(&mut inner, 0x86, ephemeral_public).map_err(|_| SmError::Malformed)?;
    let data = tlv::encode(0x7F49, &inner).map_err(|_| SmError::Malformed)?;
    let mac = aes_cmac(k_mac, &data).map_err(|_| SmError::Crypto)?;
    let mut t = [0u8; 8];
    t.copy_from_slice(&mac[..8]);
    Ok(t)
}

/// Host side of chip authentication.
pub struct ChipAuthHost {
    ephemeral: EcKey,
}

impl ChipAuthHost {
    /// Starts with a fresh ephemeral key on the device key's curve.
    pub fn new(curve: Curve) -> Result<Self, SmError> {
        Ok(Self {
            ephemeral: EcKey::generate(curve).map_err(|_| SmError::Crypto)?,
        })
    }

    /// MSE SET AT selecting id-CA-ECDH-AES-CBC-CMAC-128.
    pub fn mse_set_at(&self) -> Command {
        let mut data = vec![0x80, CA_OID.len() as u8];
        data.extend_from_slice(CA_OID);
        Command::new(0x00, 0x22, 0x41, 0xA4).with_data(data)
    }

    /// GENERAL AUTHENTICATE with the ephemeral public key.
    pub fn general_authenticate(&self) -> Result<Command, SmError> {
        let inner =
            tlv::encode(0x80, self.ephemeral.public_point()).map_err(|_| SmError::Malformed)?;
        let data = tlv::encode(0x7C, &inner).map_err(|_| SmError::Malformed)?;
        Ok(Command::new(0x00, 0x86, 0x00, 0x00)
            .with_data(data)
            .with_le(256))
    }

    /// Checks the card's `7C { 81 nonce, 82 token }` against the device's certified public point
    /// and returns the secure-messaging session.
    pub fn finish(self, device_point: &[u8], response: &[u8]) -> Result<SmSession, SmError> {
        let outer = tlv::Tlv::parse_exact(response).map_err(|_| SmError::Malformed)?;
        if outer.tag.0 != 0x7C {
            return Err(SmError::Malformed);
        }
        let nonce = outer
            .find(0x81)
            .map_err(|_| SmError::Malformed)?
            .ok_or(SmError::MissingDataObject)?
            .value;
        let got = outer
            .find(0x82)
            .map_err(|_| SmError::Malformed)?
            .ok_or(SmError::MissingDataObject)?
            .value;
        let shared = self
            .ephemeral
            .ecdh(device_point)
            .map_err(|_| SmError::ChipAuthentication("invalid device key"))?;
        let keys = derive_keys(x_coordinate(&shared), nonce);
        let expected = token(&keys.k_mac, self.ephemeral.public_point())?;
        if !bool::from(expected.ct_eq(got)) {
            return Err(SmError::BadToken);
        }
        Ok(SmSession::new(keys))
    }
}

fn x_coordinate(point: &[u8]) -> &[u8] {
    let field = (point.len() - 1) / 2;
    &point[1..1 + field]
}

/// Card side: answers GENERAL AUTHENTICATE data `7C { 80 PK_eph }` with `7C { 81 nonce, 82 token }`
/// and the session to use for the commands that follow.
pub fn card_chip_authentication(
    device_key: &EcKey,
    request: &[u8],
) -> Result<(Vec<u8>, SmSession), SmError> {
    let outer = tlv::Tlv::parse_exact(request).map_err(|_| SmError::Malformed)?;
    if outer.tag.0 != 0x7C {
        return Err(SmError::Malformed);
    }
    let eph = outer
        .find(0x80)
        .map_err(|_| SmError::Malformed)?
        .ok_or(SmError::MissingDataObject)?
        .value;
    let shared = device_key
        .ecdh(eph)
        .map_err(|_| SmError::ChipAuthentication("invalid ephemeral key"))?;
    let nonce = random(8).map_err(|_| SmError::Crypto)?;
    let keys = derive_keys(x_coordinate(&shared), &nonce);
    let t = token(&keys.k_mac, eph)?;
    let mut inner = Vec::new();
    tlv::write(&mut inner, 0x81, &nonce).map_err(|_| SmError::Malformed)?;
    tlv::write(&mut inner, 0x82, &t).map_err(|_| SmError::Malformed)?;
    let response = tlv::encode(0x7C, &inner).map_err(|_| SmError::Malformed)?;
    Ok((response, SmSession::new(keys)))
}
