//! The host side of provisioning (DESIGN §3.4) as batches — sans-io like `production`:
//! 1. READ EF.C_DevAut, ENUMERATE OBJECTS, MSE SET AT, GENERAL AUTHENTICATE with an ephemeral
//!    key: the chain is validated and chip authentication opens end-to-end secure messaging. The
//!    device selected the applet and verified its PIN locally before it connected (a SELECT here
//!    would log it out again), so the PIN never crosses the network;
//! 2. under SM: GENERATE ASYMMETRIC KEY PAIR; the attestation (authenticated request) is
//!    verified — possession by the new key, origin by the device key — before anything is issued;
//! 3. under SM: the X.509 certificate into `CE<kid>` and the PKCS#15 description into `C4<kid>`,
//!    so OpenSC and Keyward's PKCS#11 module show key and certificate.

use keyward_apdu::Command;
use keyward_card::{KeyOptions, KeySpec, generate_command, key_description, write_file_commands};
use keyward_cvc::{AttestedKey, AuthenticatedRequest, CvDate, DeviceIdentity, TrustStore};
use keyward_sm::{ChipAuthHost, SmError, SmSession};

use crate::batch::{Answer, Batch, BatchError, OK, answer, apdu};

/// READ BINARY chunks of EF.C_DevAut (a device and a DICA certificate fit in three).
const CHAIN_READS: u16 = 3;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("the device's certificate chain is not trusted: {0}")]
    Chain(#[from] keyward_cvc::ChainError),
    #[error("chip authentication failed: {0}")]
    ChipAuthentication(SmError),
    #[error("the key's attestation does not verify: {0}")]
    Attestation(String),
    #[error("the element has no free key slot")]
    NoFreeKeySlot,
    #[error("{0}: the element's answer is malformed")]
    Malformed(&'static str),
}

/// Round trip 1.
pub fn opening(chip: &ChipAuthHost) -> Result<Batch, ProvisionError> {
    let mut b = Batch::default();
    for i in 0..CHAIN_READS {
        let [hi, lo] = (i * 256).to_be_bytes();
        b.plain(
            "READ BINARY EF.C_DevAut",
            apdu([0x00, 0xB1, 0x2F, 0x02], &[0x54, 0x02, hi, lo], Some(0)),
            // Past the end: 6282 (short read) or 6B00 (offset beyond the file).
            &[0x9000, 0x6282, 0x6B00],
        );
    }
    b.plain_command(
        "ENUMERATE OBJECTS",
        &Command::new(0x80, 0x58, 0, 0).with_le(65536),
        OK,
    )?;
    b.plain_command("MSE SET AT", &chip.mse_set_at(), OK)?;
    let ga = chip
        .general_authenticate()
        .map_err(ProvisionError::ChipAuthentication)?;
    b.plain_command("GENERAL AUTHENTICATE", &ga, OK)?;
    Ok(b)
}

/// How much of a stored certificate identifies it: the DER header, version and the 128-bit
/// serial number fit in 32 bytes.
pub const CERTIFICATE_PREFIX: usize = 32;

/// An authenticated device with its secure-messaging channel.
pub struct Device {
    pub identity: DeviceIdentity,
    /// EF.C_DevAut as read.
    pub c_devaut: Vec<u8>,
    /// Key ids in use.
    pub key_ids: Vec<u8>,
    pub sm: SmSession,
}

impl Device {
    /// Validates the chain and finishes chip authentication from round trip 1's answers.
    pub fn read(
        batch: &Batch,
        responses: &[Vec<u8>],
        trust: &TrustStore,
        at: CvDate,
        chip: ChipAuthHost,
    ) -> Result<Self, ProvisionError> {
        let answers = batch.check(None, None, responses)?;
        let c_devaut: Vec<u8> = answers
            .iter()
            .filter(|a| a.step == "READ BINARY EF.C_DevAut" && a.sw != 0x6B00)
            .flat_map(|a| a.data.iter().copied())
            .collect();
        let identity = trust.validate_c_devaut(&c_devaut, at)?;
        let objects = &answer(&answers, "ENUMERATE OBJECTS")
            .ok_or(ProvisionError::Malformed("ENUMERATE OBJECTS"))?
            .data;
        let key_ids = objects
            .chunks_exact(2)
            .filter(|f| f[0] == 0xCC && f[1] != 0)
            .map(|f| f[1])
            .collect();
        let ga = &answer(&answers, "GENERAL AUTHENTICATE")
            .ok_or(ProvisionError::Malformed("GENERAL AUTHENTICATE"))?
            .data;
        let sm = chip
            .finish(&identity.public_point, ga)
            .map_err(ProvisionError::ChipAuthentication)?;
        Ok(Self {
            identity,
            c_devaut,
            key_ids,
            sm,
        })
    }

    /// The lowest key id not in use.
    pub fn free_key_id(&self) -> Result<u8, ProvisionError> {
        (1..=255u8)
            .find(|k| !self.key_ids.contains(k))
            .ok_or(ProvisionError::NoFreeKeySlot)
    }

    /// Round trip 2: the key's generation under SM.
    pub fn generate(
        &mut self,
        kid: u8,
        spec: KeySpec,
        algorithms: Option<&[u8]>,
        use_counter: Option<u32>,
    ) -> Result<Batch, ProvisionError> {
        let cmd = generate_command(kid, spec, algorithms, use_counter)
            .map_err(|_| ProvisionError::Malformed("GENERATE ASYMMETRIC KEY PAIR"))?;
        let mut b = Batch::default();
        b.sm(&mut self.sm, "GENERATE ASYMMETRIC KEY PAIR", &cmd, OK)?;
        Ok(b)
    }

    /// Adds, under SM, the reads of the first [`CERTIFICATE_PREFIX`] bytes of `CE<kid>` for
    /// each of `kids`: enough of a certificate to name it by its serial number (see
    /// [`Self::held_certificates`]).
    pub fn read_certificate_prefixes(
        &mut self,
        batch: &mut Batch,
        kids: &[u8],
    ) -> Result<(), ProvisionError> {
        for &kid in kids {
            let cmd = Command::new(0, 0xB1, 0xCE, kid)
                .with_data(vec![0x54, 2, 0, 0])
                .with_le(CERTIFICATE_PREFIX as u32);
            // 6282: a shorter file; 6A82: no certificate under that key id.
            batch.sm(
                &mut self.sm,
                "READ BINARY certificate",
                &cmd,
                &[0x9000, 0x6282, 0x6A82],
            )?;
        }
        Ok(())
    }

    /// Which of `candidates` (key id, certificate DER) the element holds in `CE<kid>` (their
    /// indices), from the answers to [`Self::read_certificate_prefixes`] in `answers` (in the
    /// candidates' order).
    pub fn held_certificates(answers: &[Answer], candidates: &[(u8, Vec<u8>)]) -> Vec<usize> {
        let reads = answers
            .iter()
            .filter(|a| a.step == "READ BINARY certificate");
        candidates
            .iter()
            .zip(reads)
            .enumerate()
            .filter(|(_, ((_, der), a))| {
                a.sw == 0x9000 && der.get(..CERTIFICATE_PREFIX) == Some(&a.data[..])
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Adds, under SM, the deletion of keys `kids` with their certificates and descriptions.
    pub fn delete_keys(&mut self, batch: &mut Batch, kids: &[u8]) -> Result<(), ProvisionError> {
        for &kid in kids {
            for prefix in [0xCC, 0xCE, 0xC4] {
                let cmd = Command::new(0, 0xE4, 2, 0).with_data(vec![prefix, kid]);
                batch.sm(&mut self.sm, "DELETE FILE", &cmd, &[0x9000, 0x6A82])?;
            }
        }
        Ok(())
    }

    /// Verifies the generated key's attestation: the request's self-signature (possession)
    /// and the device's signature over it (origin), by the device that authenticated.
    pub fn read_key(
        &self,
        batch: &Batch,
        responses: &[Vec<u8>],
    ) -> Result<(AttestedKey, AuthenticatedRequest), ProvisionError> {
        self.read_key_with(batch, responses)
            .map(|(key, ar, _)| (key, ar))
    }

    /// [`Self::read_key`] for a batch that carries more commands after the key generation;
    /// also returns every checked answer.
    pub fn read_key_with(
        &self,
        batch: &Batch,
        responses: &[Vec<u8>],
    ) -> Result<(AttestedKey, AuthenticatedRequest, Vec<Answer>), ProvisionError> {
        let answers = batch.check(None, Some(&self.sm), responses)?;
        let raw = &answers
            .first()
            .ok_or(ProvisionError::Malformed("GENERATE ASYMMETRIC KEY PAIR"))?
            .data;
        let ar = AuthenticatedRequest::parse(raw)
            .map_err(|e| ProvisionError::Attestation(e.to_string()))?;
        let key = self
            .identity
            .verify_attestation(&ar)
            .map_err(|e| ProvisionError::Attestation(e.to_string()))?;
        Ok((key, ar, answers))
    }

    /// Round trip 3: the certificate into `CE<kid>` and the key's PKCS#15 description into
    /// `C4<kid>`, under SM.
    pub fn store(
        &mut self,
        kid: u8,
        spec: KeySpec,
        label: &str,
        certificate: &[u8],
        attestation: &AuthenticatedRequest,
    ) -> Result<Batch, ProvisionError> {
        let description = key_description(
            kid,
            spec,
            &KeyOptions {
                label,
                id: None,
                algorithms: None,
                domain: None,
            },
            Some(attestation),
        )
        .encode()
        .map_err(|_| ProvisionError::Malformed("key description"))?;
        let mut b = Batch::default();
        for (fid, data, step) in [
            (
                u16::from_be_bytes([0xCE, kid]),
                certificate,
                "UPDATE BINARY certificate",
            ),
            (
                u16::from_be_bytes([0xC4, kid]),
                &description[..],
                "UPDATE BINARY key description",
            ),
        ] {
            for cmd in write_file_commands(fid, data)
                .map_err(|_| ProvisionError::Malformed("UPDATE BINARY"))?
            {
                b.sm(&mut self.sm, step, &cmd, OK)?;
            }
        }
        Ok(b)
    }

    /// Checks round trip 3.
    pub fn check_store(&self, batch: &Batch, responses: &[Vec<u8>]) -> Result<(), ProvisionError> {
        batch.check(None, Some(&self.sm), responses)?;
        Ok(())
    }
}
