//! A typed SmartCard-HSM API over any card channel (in-process element, T=1, PC/SC, or a
//! secure channel on top of one of them).

use keyward_apdu::{Command, StatusWord, tlv};
use keyward_crypto::Curve;
use keyward_cvc::{AuthenticatedRequest, ec_key_template, oid};
use thiserror::Error;

use crate::pkcs15::{KeyKind, PrivateKeyDescription};
use crate::{CardChannel, CardError};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HsmError {
    #[error(transparent)]
    Card(#[from] CardError),
    #[error("PIN incorrect, {0} tries left")]
    PinIncorrect(u8),
    #[error("PIN blocked")]
    PinBlocked,
    #[error("transport PIN must be changed first")]
    TransportPin,
    #[error("not logged in")]
    NotLoggedIn,
    #[error("the element is not initialized (no PIN set)")]
    NotInitialized,
    #[error("no such key or object")]
    NotFound,
    #[error("algorithm not allowed for this key")]
    AlgorithmNotAllowed,
    #[error("key-use counter exhausted")]
    UseCounterExhausted,
    #[error("invalid data for the operation")]
    InvalidData,
    #[error("no free key slot")]
    NoFreeKeyId,
    #[error("{op}: card answered {sw}")]
    Status { op: &'static str, sw: StatusWord },
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// The user PIN's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    Verified,
    TriesLeft(u8),
    Blocked,
    TransportPin,
    NotInitialized,
}

/// INITIALIZE DEVICE parameters.
#[derive(Debug, Clone)]
pub struct InitConfig<'a> {
    pub options: u16,
    pub pin: &'a [u8],
    pub so_pin: [u8; 8],
    pub retries: u8,
    pub dkek_shares: Option<u8>,
}

/// Public-key authentication's state: keys `m`, still to register, `n` needed, authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkaStatus {
    pub total: u8,
    pub missing: u8,
    pub required: u8,
    pub authenticated: u8,
}

impl PkaStatus {
    fn parse(r: &[u8]) -> Result<Self, HsmError> {
        match r {
            [total, missing, required, authenticated, ..] => Ok(Self {
                total: *total,
                missing: *missing,
                required: *required,
                authenticated: *authenticated,
            }),
            _ => Err(HsmError::Malformed(
                "public key authentication status".into(),
            )),
        }
    }
}

/// The DKEK's import state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DkekStatus {
    pub total: u8,
    pub outstanding: u8,
    /// SHA-256(DKEK)[0..8] once every share is in.
    pub kcv: Option<[u8; 8]>,
}

/// Key generation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    Ec(Curve),
    Rsa(u16),
    Aes(u16),
}

/// Options of a generated key: its PKCS#15 label and iD, and the algorithms it may be used with.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyOptions<'a> {
    pub label: &'a str,
    /// CKA_ID; `None` = SHA-1 of the public key (RSA modulus, EC point), as OpenSC does.
    pub id: Option<&'a [u8]>,
    /// Allowed algorithm ids (tag `91`); `None` = every algorithm of the key type.
    pub algorithms: Option<&'a [u8]>,
    /// Key domain (tag `92`): the DKEK the key is backed up under; `None` = domain 0.
    pub domain: Option<u8>,
}

/// A freshly generated key.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The authenticated request of a key pair (kept by the element in `CE<kid>`).
    pub attestation: Option<AuthenticatedRequest>,
    pub description: PrivateKeyDescription,
}

/// Usage controls of a key, from its FCP (`A5` template).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    pub use_counter: Option<u32>,
    pub algorithms: Option<Vec<u8>>,
    pub domain: Option<u8>,
}

impl KeyInfo {
    /// Whether the key may be used with algorithm `alg`.
    pub fn allows(&self, alg: u8) -> bool {
        self.algorithms.as_ref().is_none_or(|l| l.contains(&alg))
    }
}

/// The SmartCard-HSM algorithm id of WRAP KEY: a key whose list lacks it never leaves the element.
pub const ALG_WRAP: u8 = 0x92;

/// A SmartCard-HSM (or this project's element) behind `C`.
pub struct Hsm<C: CardChannel> {
    ch: C,
}

fn map_sw(op: &'static str, sw: StatusWord) -> HsmError {
    match sw {
        StatusWord::SECURITY_STATUS_NOT_SATISFIED => HsmError::NotLoggedIn,
        StatusWord::AUTH_METHOD_BLOCKED => HsmError::PinBlocked,
        StatusWord::REFERENCE_NOT_FOUND | StatusWord::FILE_NOT_FOUND => HsmError::NotFound,
        StatusWord::FUNCTION_NOT_SUPPORTED => HsmError::AlgorithmNotAllowed,
        StatusWord::REFERENCE_DATA_NOT_USABLE => HsmError::UseCounterExhausted,
        StatusWord::WRONG_DATA | StatusWord::WRONG_LENGTH => HsmError::InvalidData,
        sw => match sw.retries_left() {
            Some(n) => HsmError::PinIncorrect(n),
            None => HsmError::Status { op, sw },
        },
    }
}

impl<C: CardChannel> Hsm<C> {
    pub fn new(ch: C) -> Self {
        Self { ch }
    }

    pub fn channel(&mut self) -> &mut C {
        &mut self.ch
    }

    pub fn into_channel(self) -> C {
        self.ch
    }

    fn run(&mut self, op: &'static str, cmd: Command) -> Result<Vec<u8>, HsmError> {
        let r = self.ch.transmit(&cmd)?;
        if r.sw == StatusWord::SUCCESS || r.sw == StatusWord::END_OF_FILE {
            Ok(r.data)
        } else {
            Err(map_sw(op, r.sw))
        }
    }

    /// SELECT the applet (also the logout).
    pub fn select(&mut self) -> Result<(), HsmError> {
        self.run(
            "SELECT",
            Command::new(0, 0xA4, 4, 0x0C).with_data(crate::device::AID.to_vec()),
        )
        .map(drop)
    }

    pub fn initialize(&mut self, cfg: &InitConfig<'_>) -> Result<(), HsmError> {
        let mut d = Vec::new();
        tlv::write(&mut d, 0x80, &cfg.options.to_be_bytes()).map_err(CardError::from)?;
        tlv::write(&mut d, 0x81, cfg.pin).map_err(CardError::from)?;
        tlv::write(&mut d, 0x82, &cfg.so_pin).map_err(CardError::from)?;
        tlv::write(&mut d, 0x91, &[cfg.retries]).map_err(CardError::from)?;
        if let Some(n) = cfg.dkek_shares {
            tlv::write(&mut d, 0x92, &[n]).map_err(CardError::from)?;
        }
        self.run(
            "INITIALIZE DEVICE",
            Command::new(0x80, 0x50, 0, 0).with_data(d),
        )
        .map(drop)
    }

    pub fn pin_status(&mut self) -> Result<PinStatus, HsmError> {
        let sw = self.ch.transmit(&Command::new(0, 0x20, 0, 0x81))?.sw;
        Ok(match sw {
            StatusWord::SUCCESS => PinStatus::Verified,
            StatusWord::AUTH_METHOD_BLOCKED => PinStatus::Blocked,
            StatusWord::REFERENCE_DATA_NOT_USABLE => PinStatus::TransportPin,
            StatusWord::REFERENCE_NOT_FOUND | StatusWord::INCORRECT_P1P2 => {
                PinStatus::NotInitialized
            }
            sw => match sw.retries_left() {
                Some(n) => PinStatus::TriesLeft(n),
                None => return Err(map_sw("VERIFY", sw)),
            },
        })
    }

    /// SO-PIN tries left (None when the element was never initialized).
    pub fn so_pin_tries(&mut self) -> Result<Option<u8>, HsmError> {
        let sw = self.ch.transmit(&Command::new(0, 0x20, 0, 0x88))?.sw;
        Ok(match sw {
            StatusWord::REFERENCE_NOT_FOUND => None,
            StatusWord::AUTH_METHOD_BLOCKED => Some(0),
            sw => sw.retries_left(),
        })
    }

    pub fn verify_pin(&mut self, pin: &[u8]) -> Result<(), HsmError> {
        match self.run(
            "VERIFY",
            Command::new(0, 0x20, 0, 0x81).with_data(pin.to_vec()),
        ) {
            Err(HsmError::UseCounterExhausted) => Err(HsmError::TransportPin),
            Err(HsmError::NotFound) => Err(HsmError::NotInitialized),
            other => other.map(drop),
        }
    }

    pub fn change_pin(&mut self, old: &[u8], new: &[u8]) -> Result<(), HsmError> {
        self.run(
            "CHANGE REFERENCE DATA",
            Command::new(0, 0x24, 0, 0x81).with_data([old, new].concat()),
        )
        .map(drop)
    }

    /// RESET RETRY COUNTER with the SO-PIN, setting a new PIN (or only the counter).
    pub fn unblock_pin(
        &mut self,
        so_pin: &[u8; 8],
        new_pin: Option<&[u8]>,
    ) -> Result<(), HsmError> {
        let (p1, data) = match new_pin {
            Some(p) => (0, [&so_pin[..], p].concat()),
            None => (1, so_pin.to_vec()),
        };
        self.run(
            "RESET RETRY COUNTER",
            Command::new(0, 0x2C, p1, 0x81).with_data(data),
        )
        .map(drop)
    }

    pub fn enumerate(&mut self) -> Result<Vec<u16>, HsmError> {
        let data = self.run(
            "ENUMERATE OBJECTS",
            Command::new(0x80, 0x58, 0, 0).with_le(65536),
        )?;
        Ok(data
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect())
    }

    /// Key ids in use (CC00, the device key, excluded).
    pub fn key_ids(&mut self) -> Result<Vec<u8>, HsmError> {
        Ok(self
            .enumerate()?
            .into_iter()
            .filter_map(|f| match f.to_be_bytes() {
                [0xCC, id] if id != 0 => Some(id),
                _ => None,
            })
            .collect())
    }

    pub fn free_key_id(&mut self) -> Result<u8, HsmError> {
        let used = self.key_ids()?;
        (1..=u8::MAX)
            .find(|id| !used.contains(id))
            .ok_or(HsmError::NoFreeKeyId)
    }

    pub fn read_file(&mut self, fid: u16) -> Result<Vec<u8>, HsmError> {
        let mut out = Vec::new();
        loop {
            let off = u16::try_from(out.len())
                .map_err(|_| HsmError::InvalidData)?
                .to_be_bytes();
            let [p1, p2] = fid.to_be_bytes();
            let r = self.ch.transmit(
                &Command::new(0, 0xB1, p1, p2)
                    .with_data(vec![0x54, 2, off[0], off[1]])
                    .with_le(65536),
            )?;
            if r.sw != StatusWord::SUCCESS && r.sw != StatusWord::END_OF_FILE {
                return Err(map_sw("READ BINARY", r.sw));
            }
            let done = r.sw == StatusWord::END_OF_FILE || r.data.is_empty();
            out.extend_from_slice(&r.data);
            if done {
                return Ok(out);
            }
        }
    }

    /// Writes a whole EF in chunks (creating it), as OpenSC does.
    pub fn write_file(&mut self, fid: u16, data: &[u8]) -> Result<(), HsmError> {
        for cmd in write_file_commands(fid, data)? {
            self.run("UPDATE BINARY", cmd)?;
        }
        Ok(())
    }

    pub fn delete_file(&mut self, fid: u16) -> Result<(), HsmError> {
        self.run(
            "DELETE FILE",
            Command::new(0, 0xE4, 2, 0).with_data(fid.to_be_bytes().to_vec()),
        )
        .map(drop)
    }

    /// Generates a key; for key pairs returns the attestation (authenticated request), which the
    /// element also keeps in `CE<kid>`. Writes a PKCS#15 description to `C4<kid>` like OpenSC.
    pub fn generate(
        &mut self,
        kid: u8,
        spec: KeySpec,
        label: &str,
        id: &[u8],
    ) -> Result<Option<AuthenticatedRequest>, HsmError> {
        let opts = KeyOptions {
            label,
            id: Some(id),
            algorithms: None,
            domain: None,
        };
        Ok(self.generate_key(kid, spec, &opts)?.attestation)
    }

    /// Generates a key with the given options and writes its description to `C4<kid>`.
    pub fn generate_key(
        &mut self,
        kid: u8,
        spec: KeySpec,
        opts: &KeyOptions<'_>,
    ) -> Result<GeneratedKey, HsmError> {
        let raw = self.run(
            generate_op(spec),
            generate_command_in(kid, spec, opts.algorithms, None, opts.domain)?,
        )?;
        let attestation = match spec {
            KeySpec::Aes(_) => None,
            _ => Some(
                AuthenticatedRequest::parse(&raw)
                    .map_err(|e| HsmError::Malformed(e.to_string()))?,
            ),
        };
        let description = key_description(kid, spec, opts, attestation.as_ref());
        self.write_file(
            u16::from_be_bytes([0xC4, kid]),
            &description
                .encode()
                .map_err(|e| HsmError::Malformed(e.to_string()))?,
        )?;
        Ok(GeneratedKey {
            attestation,
            description,
        })
    }

    /// IMPORT DKEK SHARE (`80 52 00 00`): adds a 32-byte share, or with `None` only asks.
    pub fn dkek_share(&mut self, share: Option<&[u8; 32]>) -> Result<DkekStatus, HsmError> {
        self.key_domain(0, 0x00, share.map(|s| &s[..]))
    }

    /// The same for key domain `kd`.
    pub fn dkek_share_in(
        &mut self,
        kd: u8,
        share: Option<&[u8; 32]>,
    ) -> Result<DkekStatus, HsmError> {
        self.key_domain(kd, 0x00, share.map(|s| &s[..]))
    }

    /// Sets key domain `kd` up for `shares` DKEK shares (`80 52 01`; 0: a random DKEK).
    pub fn create_key_domain(&mut self, kd: u8, shares: u8) -> Result<DkekStatus, HsmError> {
        self.key_domain(kd, 0x01, Some(&[shares]))
    }

    /// Deletes key domain `kd` (`80 52 03`; refused while keys belong to it).
    pub fn delete_key_domain(&mut self, kd: u8) -> Result<(), HsmError> {
        self.run("MANAGE KEY DOMAIN", Command::new(0x80, 0x52, 0x03, kd))
            .map(drop)
    }

    /// Forgets key domain `kd`'s DKEK and starts its share import again (`80 52 04`).
    pub fn reset_key_domain(&mut self, kd: u8) -> Result<DkekStatus, HsmError> {
        self.key_domain(kd, 0x04, None)
    }

    fn key_domain(&mut self, kd: u8, p1: u8, data: Option<&[u8]>) -> Result<DkekStatus, HsmError> {
        let mut cmd = Command::new(0x80, 0x52, p1, kd).with_le(256);
        if let Some(d) = data {
            cmd = cmd.with_data(d.to_vec());
        }
        let r = self.run("MANAGE KEY DOMAIN", cmd)?;
        let [total, outstanding, kcv @ ..] = r.as_slice() else {
            return Err(HsmError::Malformed("DKEK status".into()));
        };
        let kcv: [u8; 8] = kcv
            .get(..8)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| HsmError::Malformed("DKEK status".into()))?;
        Ok(DkekStatus {
            total: *total,
            outstanding: *outstanding,
            kcv: (*outstanding == 0 && kcv != [0; 8]).then_some(kcv),
        })
    }

    /// Makes a certificate's key known to the element: MSE SET DST with its issuer's CHR, then
    /// PSO VERIFY CERTIFICATE (the issuer must be a root the element knows, or verified before).
    pub fn verify_certificate(&mut self, cert: &keyward_cvc::Certificate) -> Result<(), HsmError> {
        let car = cert
            .body
            .car
            .clone()
            .ok_or_else(|| HsmError::Malformed("certificate without CAR".into()))?;
        let mut dst = Vec::new();
        tlv::write(&mut dst, 0x83, &car).map_err(CardError::from)?;
        self.run(
            "MSE SET DST",
            Command::new(0, 0x22, 0x81, 0xB6).with_data(dst),
        )?;
        let value = tlv::Tlv::parse_exact(&cert.raw)
            .map_err(|_| HsmError::Malformed("certificate".into()))?
            .value
            .to_vec();
        self.run(
            "PSO VERIFY CERTIFICATE",
            Command::new(0, 0x2A, 0x00, 0xBE).with_data(value),
        )
        .map(drop)
    }

    /// Registers a custodian's key for public-key authentication (`80 54 00 00`): its
    /// authenticated request, whose signer's certificate chain was made known with
    /// [`Self::verify_certificate`].
    pub fn register_public_key(
        &mut self,
        request: &AuthenticatedRequest,
    ) -> Result<PkaStatus, HsmError> {
        let value = tlv::Tlv::parse_exact(&request.raw)
            .map_err(|_| HsmError::Malformed("authenticated request".into()))?
            .value
            .to_vec();
        let r = self.run(
            "REGISTER PUBLIC KEY",
            Command::new(0x80, 0x54, 0, 0).with_data(value).with_le(256),
        )?;
        PkaStatus::parse(&r)
    }

    /// Public-key authentication's state (`80 54 00 00`).
    pub fn pka_status(&mut self) -> Result<PkaStatus, HsmError> {
        let r = self.run(
            "PUBLIC KEY AUTHENTICATION STATUS",
            Command::new(0x80, 0x54, 0, 0).with_le(256),
        )?;
        PkaStatus::parse(&r)
    }

    /// One custodian's authentication: selects the registered key `chr`, takes a challenge,
    /// and sends what `sign` makes of SHA-256's input `device id ‖ challenge` (the custodian
    /// element signs it with ECDSA-SHA-256).
    pub fn authenticate_public_key(
        &mut self,
        chr: &[u8],
        device_id: &[u8],
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, HsmError>,
    ) -> Result<(), HsmError> {
        let mut at = Vec::new();
        tlv::write(&mut at, 0x83, chr).map_err(CardError::from)?;
        self.run(
            "MSE SET AT",
            Command::new(0, 0x22, 0x81, 0xA4).with_data(at),
        )?;
        let challenge = self.run("GET CHALLENGE", Command::new(0, 0x84, 0, 0).with_le(8))?;
        let signature = sign(&[device_id, &challenge].concat())?;
        self.run(
            "EXTERNAL AUTHENTICATE",
            Command::new(0, 0x82, 0, 0).with_data(signature),
        )
        .map(drop)
    }

    /// WRAP KEY (`80 72 KID 92`): the key encrypted and authenticated under the DKEK.
    pub fn wrap_key(&mut self, kid: u8) -> Result<Vec<u8>, HsmError> {
        self.run(
            "WRAP KEY",
            Command::new(0x80, 0x72, kid, 0x92).with_le(65536),
        )
    }

    /// UNWRAP KEY (`80 74 KID 93`) with the blob inline.
    pub fn unwrap_key(&mut self, kid: u8, blob: &[u8]) -> Result<(), HsmError> {
        self.run(
            "UNWRAP KEY",
            Command::new(0x80, 0x74, kid, 0x93).with_data(blob.to_vec()),
        )
        .map(drop)
    }

    /// Usage controls of key `kid` (SELECT of `CC<kid>`, `A5` template of the FCP).
    pub fn key_info(&mut self, kid: u8) -> Result<KeyInfo, HsmError> {
        let fcp = self.run(
            "SELECT",
            Command::new(0, 0xA4, 0, 0)
                .with_data(vec![0xCC, kid])
                .with_le(256),
        )?;
        let mut info = KeyInfo::default();
        let fcp = tlv::Tlv::parse_exact(&fcp).map_err(|e| HsmError::Malformed(e.to_string()))?;
        let Some(a5) = fcp
            .find(0xA5)
            .map_err(|e| HsmError::Malformed(e.to_string()))?
        else {
            return Ok(info);
        };
        for t in a5.children() {
            let t = t.map_err(|e| HsmError::Malformed(e.to_string()))?;
            match t.tag.0 {
                0x90 => {
                    info.use_counter = <[u8; 4]>::try_from(t.value).ok().map(u32::from_be_bytes)
                }
                0x91 => info.algorithms = Some(t.value.to_vec()),
                0x92 => info.domain = t.value.first().copied(),
                _ => {}
            }
        }
        Ok(info)
    }

    /// Deletes a key with its description and certificate/attestation.
    pub fn delete_key(&mut self, kid: u8) -> Result<(), HsmError> {
        self.delete_file(u16::from_be_bytes([0xCC, kid]))?;
        for prefix in [0xC4, 0xCE] {
            match self.delete_file(u16::from_be_bytes([prefix, kid])) {
                Ok(()) | Err(HsmError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// SIGN with algorithm id `alg` (see the SmartCard-HSM algorithm table).
    pub fn sign(&mut self, kid: u8, alg: u8, data: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.run(
            "SIGN",
            Command::new(0x80, 0x68, kid, alg)
                .with_data(data.to_vec())
                .with_le(65536),
        )
    }

    /// Raw RSA decryption (algorithm 21).
    pub fn decipher(&mut self, kid: u8, cryptogram: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.run(
            "DECIPHER",
            Command::new(0x80, 0x62, kid, 0x21)
                .with_data(cryptogram.to_vec())
                .with_le(65536),
        )
    }

    /// ECDH with a peer point; returns the shared point `04‖X‖Y`.
    pub fn ecdh(&mut self, kid: u8, peer: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.run(
            "ECDH",
            Command::new(0x80, 0x62, kid, 0x80)
                .with_data(peer.to_vec())
                .with_le(65536),
        )
    }

    /// CIPHER: 10 AES-CBC encrypt, 11 decrypt (zero IV, no padding), 18 CMAC.
    pub fn cipher(&mut self, kid: u8, alg: u8, data: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.run(
            "CIPHER",
            Command::new(0x80, 0x78, kid, alg)
                .with_data(data.to_vec())
                .with_le(65536),
        )
    }

    pub fn random(&mut self, n: u16) -> Result<Vec<u8>, HsmError> {
        self.run(
            "GET CHALLENGE",
            Command::new(0, 0x84, 0, 0).with_le(u32::from(n)),
        )
    }

    /// The PKCS#15 description of key `kid`, if any.
    pub fn key_description(&mut self, kid: u8) -> Result<Option<PrivateKeyDescription>, HsmError> {
        match self.read_file(u16::from_be_bytes([0xC4, kid])) {
            Ok(d) => Ok(PrivateKeyDescription::parse(&d).ok()),
            Err(HsmError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// OpenSC's intrinsic key iD: SHA-1 of the RSA modulus or of the uncompressed EC point.
pub fn intrinsic_id(key: &keyward_cvc::PublicKey) -> Vec<u8> {
    let hash = keyward_crypto::HashAlg::Sha1;
    match key {
        keyward_cvc::PublicKey::Rsa { modulus, .. } => hash.digest(modulus),
        keyward_cvc::PublicKey::Ec { point, .. } => hash.digest(point),
    }
}

/// UPDATE BINARY commands writing a whole EF (created if needed) in chunks of 1 KB.
pub fn write_file_commands(fid: u16, data: &[u8]) -> Result<Vec<Command>, HsmError> {
    let [p1, p2] = fid.to_be_bytes();
    let mut out = Vec::new();
    let mut offset = 0usize;
    loop {
        let chunk = &data[offset..data.len().min(offset + 1024)];
        let off = u16::try_from(offset)
            .map_err(|_| HsmError::InvalidData)?
            .to_be_bytes();
        let mut d = vec![0x54, 2, off[0], off[1]];
        tlv::write(&mut d, 0x53, chunk).map_err(CardError::from)?;
        out.push(Command::new(0, 0xD7, p1, p2).with_data(d));
        offset += chunk.len();
        if offset >= data.len() {
            return Ok(out);
        }
    }
}

fn generate_op(spec: KeySpec) -> &'static str {
    match spec {
        KeySpec::Aes(_) => "GENERATE SYMMETRIC KEY",
        _ => "GENERATE ASYMMETRIC KEY PAIR",
    }
}

/// The command generating key `kid` per `spec`, with an optional algorithm list (tag `91`)
/// and use counter (tag `90`: the key signs at most that many times). Key pairs answer with
/// their attestation (an authenticated request).
pub fn generate_command(
    kid: u8,
    spec: KeySpec,
    algorithms: Option<&[u8]>,
    use_counter: Option<u32>,
) -> Result<Command, HsmError> {
    generate_command_in(kid, spec, algorithms, use_counter, None)
}

/// `generate_command` for a key of key domain `domain` (tag `92`).
pub fn generate_command_in(
    kid: u8,
    spec: KeySpec,
    algorithms: Option<&[u8]>,
    use_counter: Option<u32>,
    domain: Option<u8>,
) -> Result<Command, HsmError> {
    let mut usage_ctl = Vec::new();
    if let Some(n) = use_counter {
        tlv::write(&mut usage_ctl, 0x90, &n.to_be_bytes()).map_err(CardError::from)?;
    }
    if let Some(list) = algorithms {
        tlv::write(&mut usage_ctl, 0x91, list).map_err(CardError::from)?;
    }
    if let Some(kd) = domain {
        tlv::write(&mut usage_ctl, 0x92, &[kd]).map_err(CardError::from)?;
    }
    let key = match spec {
        KeySpec::Ec(curve) => ec_key_template(&curve.domain(), oid::TA_ECDSA_SHA256)
            .map_err(|e| HsmError::Malformed(e.to_string()))?,
        KeySpec::Rsa(bits) => {
            let mut key = Vec::new();
            tlv::write(&mut key, 0x06, oid::TA_RSA_V15_SHA256).map_err(CardError::from)?;
            tlv::write(&mut key, 0x82, &[1, 0, 1]).map_err(CardError::from)?;
            tlv::write(&mut key, 0x02, &bits.to_be_bytes()).map_err(CardError::from)?;
            key
        }
        KeySpec::Aes(bits) => {
            let p2 = match bits {
                128 => 0xB0,
                192 => 0xB1,
                256 => 0xB2,
                _ => return Err(HsmError::InvalidData),
            };
            if usage_ctl.is_empty() {
                tlv::write(&mut usage_ctl, 0x91, &[0x10, 0x11, 0x18, 0x99])
                    .map_err(CardError::from)?;
            }
            return Ok(Command::new(0, 0x48, kid, p2).with_data(usage_ctl));
        }
    };
    let mut d = vec![0x5F, 0x29, 1, 0];
    tlv::write(&mut d, 0x42, b"UTCA00001").map_err(CardError::from)?;
    tlv::write(&mut d, 0x7F49, &key).map_err(CardError::from)?;
    d.extend_from_slice(&usage_ctl);
    Ok(Command::new(0, 0x46, kid, 0).with_data(d).with_le(65536))
}

/// The PKCS#15 description OpenSC writes to `C4<kid>` for a generated key.
pub fn key_description(
    kid: u8,
    spec: KeySpec,
    opts: &KeyOptions<'_>,
    attestation: Option<&AuthenticatedRequest>,
) -> PrivateKeyDescription {
    let (kind, usage) = match spec {
        KeySpec::Ec(curve) => (
            KeyKind::Ec {
                field_bits: curve.bits() as u32,
            },
            PrivateKeyDescription::EC_USAGE.to_vec(),
        ),
        KeySpec::Rsa(bits) => (
            KeyKind::Rsa {
                modulus_bits: u32::from(bits),
            },
            PrivateKeyDescription::RSA_USAGE.to_vec(),
        ),
        KeySpec::Aes(bits) => (
            KeyKind::Aes {
                key_bits: u32::from(bits),
            },
            PrivateKeyDescription::AES_USAGE.to_vec(),
        ),
    };
    let id = match (opts.id, attestation) {
        (Some(id), _) => id.to_vec(),
        (None, Some(ar)) => intrinsic_id(&ar.request.body.public_key),
        (None, None) => vec![kid],
    };
    PrivateKeyDescription {
        label: opts.label.to_string(),
        id,
        usage,
        key_ref: kid,
        kind,
    }
}
