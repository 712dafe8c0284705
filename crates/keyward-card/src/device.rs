//! What a back end does before it trusts an element: read EF.C_DevAut, validate the chain against
//! its trust store, run chip authentication against the certified key, and verify attestations.

use keyward_apdu::{Command, StatusWord};
use keyward_cvc::{
    AttestedKey, AuthenticatedRequest, ChainError, CvDate, DeviceIdentity, TrustStore,
};
use keyward_sm::ChipAuthHost;
use thiserror::Error;

use crate::{CardChannel, CardError, SecureChannel};

/// The SmartCard-HSM applet AID.
pub const AID: &[u8] = &[
    0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
];

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error(transparent)]
    Card(#[from] CardError),
    #[error("{what}: card answered {sw}")]
    Status { what: &'static str, sw: StatusWord },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Sm(#[from] keyward_sm::SmError),
    #[error("key {kid}: {reason}")]
    Attestation { kid: u8, reason: ChainError },
    #[error("key {0} has no attestation (no authenticated request in CE{0:02X})")]
    NoAttestation(u8),
}

fn expect_ok<C: CardChannel + ?Sized>(
    ch: &mut C,
    cmd: Command,
    what: &'static str,
) -> Result<Vec<u8>, DeviceError> {
    let r = ch.transmit(&cmd)?;
    if r.sw == StatusWord::SUCCESS || r.sw == StatusWord::END_OF_FILE {
        Ok(r.data)
    } else {
        Err(DeviceError::Status { what, sw: r.sw })
    }
}

pub fn select_applet<C: CardChannel + ?Sized>(ch: &mut C) -> Result<(), DeviceError> {
    expect_ok(
        ch,
        Command::new(0, 0xA4, 0x04, 0x0C).with_data(AID.to_vec()),
        "SELECT",
    )
    .map(drop)
}

/// Reads a whole EF with the odd-INS READ BINARY, following 6282 / short chunks.
fn read_file<C: CardChannel + ?Sized>(
    ch: &mut C,
    fid: u16,
    what: &'static str,
) -> Result<Vec<u8>, DeviceError> {
    let mut out = Vec::new();
    loop {
        let offset = u16::try_from(out.len()).map_err(|_| DeviceError::Status {
            what,
            sw: StatusWord::WRONG_LENGTH,
        })?;
        let [hi, lo] = offset.to_be_bytes();
        let [p1, p2] = fid.to_be_bytes();
        let r = ch.transmit(
            &Command::new(0, 0xB1, p1, p2)
                .with_data(vec![0x54, 2, hi, lo])
                .with_le(65536),
        )?;
        if r.sw != StatusWord::SUCCESS && r.sw != StatusWord::END_OF_FILE {
            return Err(DeviceError::Status { what, sw: r.sw });
        }
        let done = r.sw == StatusWord::END_OF_FILE || r.data.is_empty();
        out.extend_from_slice(&r.data);
        if done {
            return Ok(out);
        }
    }
}

/// EF.C_DevAut: device certificate ‖ DICA certificate.
pub fn read_c_devaut<C: CardChannel + ?Sized>(ch: &mut C) -> Result<Vec<u8>, DeviceError> {
    read_file(ch, 0x2F02, "READ BINARY EF.C_DevAut")
}

/// Selects the applet, validates the element's chain and authenticates the chip, returning the
/// device identity and a secure channel bound to the certified device key.
pub fn verify_device<C: CardChannel>(
    mut ch: C,
    trust: &TrustStore,
    at: CvDate,
) -> Result<(DeviceIdentity, SecureChannel<C>), DeviceError> {
    select_applet(&mut ch)?;
    authenticate_device(ch, trust, at)
}

/// Like [`verify_device`] on an already selected applet, so authentication done before (a PIN
/// verified locally) carries into the channel.
pub fn authenticate_device<C: CardChannel>(
    mut ch: C,
    trust: &TrustStore,
    at: CvDate,
) -> Result<(DeviceIdentity, SecureChannel<C>), DeviceError> {
    let identity = trust.validate_c_devaut(&read_c_devaut(&mut ch)?, at)?;
    let host = ChipAuthHost::new(identity.curve)?;
    expect_ok(&mut ch, host.mse_set_at(), "MSE SET AT")?;
    let response = expect_ok(
        &mut ch,
        host.general_authenticate()?,
        "GENERAL AUTHENTICATE",
    )?;
    let session = host.finish(&identity.public_point, &response)?;
    Ok((identity, SecureChannel::new(ch, session)))
}

/// Reads `CE<kid>` and verifies it as an attestation by `device`.
pub fn read_attestation<C: CardChannel + ?Sized>(
    ch: &mut C,
    device: &DeviceIdentity,
    kid: u8,
) -> Result<AttestedKey, DeviceError> {
    let raw = match read_file(ch, u16::from_be_bytes([0xCE, kid]), "READ BINARY CE<kid>") {
        Err(DeviceError::Status { sw, .. }) if sw == StatusWord::FILE_NOT_FOUND => {
            return Err(DeviceError::NoAttestation(kid));
        }
        other => other?,
    };
    let request = AuthenticatedRequest::parse(&raw).map_err(|_| DeviceError::NoAttestation(kid))?;
    device
        .verify_attestation(&request)
        .map_err(|reason| DeviceError::Attestation { kid, reason })
}
