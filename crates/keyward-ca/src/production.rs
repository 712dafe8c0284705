//! The host side of production (DESIGN §3.3) as data: the Device Issuer CA's APDU batches for a
//! blank element and the checks of the element's answers. Sans-io — a batch goes out in one
//! RAMoverHTTP round trip (or through any card channel) and its responses come back together,
//! so every SCP03-protected response is checked against the MAC chaining value of its own
//! command.
//!
//! Round trips, as the data dependencies allow:
//! 1. SELECT the ISD, INITIALIZE UPDATE (the card's serial, key version and challenge);
//! 2. EXTERNAL AUTHENTICATE (C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION), INSTALL [for install
//!    and make selectable] of the SmartCard-HSM applet, INSTALL [for personalization], STORE
//!    DATA: INITIALIZE DEVICE (random SO-PIN, single-use transport PIN), the trusted root, and
//!    the generation of PrK.DevAut, whose CV request comes back;
//! 3. STORE DATA EF.C_DevAut (last block: the identity is fixed), PUT KEY (card-unique keys
//!    replace the KST), SET STATUS INITIALIZED and SECURED, then chip authentication with the
//!    new PrK.DevAut, which proves the element holds the certified key.
//!
//! INITIALIZE DEVICE travels in the personalization under SCP03 C-DECRYPTION — end to end
//! between the server and the element, like secure messaging after chip authentication — which
//! saves the round trip a chip-authenticated INITIALIZE DEVICE would need after step 3.

use keyward_apdu::tlv;
use keyward_crypto::Curve;
use keyward_cvc::{Certificate, PublicKey};
use keyward_sm::scp03::{self, Scp03Host, Scp03Session, StaticKeys};
use keyward_sm::{ChipAuthHost, SmError, SmSession};

pub use crate::batch::{Answer, Batch, BatchError};
use crate::{CaError, CaKey, CvcCa, role};

/// GlobalPlatform's default ISD AID.
pub const ISD_AID: &[u8] = &[0xA0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00, 0x00];
/// The SmartCard-HSM applet's built-in package and its instance AID.
pub const PACKAGE_AID: &[u8] = &[0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02];
pub const APPLET_AID: &[u8] = &[
    0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
];
/// Key version of the card-unique key set that replaces the KST.
pub const CARD_KVN: u8 = 0x01;
/// The device key's curve.
pub const DEVICE_CURVE: Curve = Curve::BrainpoolP256r1;

/// C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION.
const LEVEL: u8 = 0x33;
/// STORE DATA payload per block: with padding and C-MAC it stays within a short APDU.
const BLOCK: usize = 200;

/// Personalization data groupings (the element's `keyward_se::dgi`).
mod dgi {
    pub const GENERATE_DEVAUT: u16 = 0x0101;
    pub const INITIALIZE: u16 = 0x0102;
    pub const C_DEVAUT: u16 = 0x0103;
    pub const ROOT: u16 = 0x0104;
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProductionError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("{0}: the element's answer is malformed")]
    Malformed(&'static str),
    #[error("the element has no card manager (SELECT of the ISD failed): not a blank element")]
    NoCardManager,
    #[error("the card cryptogram does not match: the element does not hold the expected keys")]
    WrongKeys,
    #[error("{step}: {source}")]
    SecureChannel { step: &'static str, source: SmError },
    #[error("the device key request is not acceptable: {0}")]
    Request(&'static str),
    #[error(transparent)]
    Ca(#[from] CaError),
}

use crate::batch::{OK, apdu};

/// Round trip 1: SELECT the ISD and INITIALIZE UPDATE with whichever key set the card has.
pub fn opening(host_challenge: &[u8; 8]) -> Batch {
    let mut b = Batch::default();
    b.plain(
        "SELECT ISD",
        apdu([0x00, 0xA4, 0x04, 0x00], ISD_AID, Some(0)),
        &[0x9000, 0x6A82],
    );
    b.plain(
        "INITIALIZE UPDATE",
        apdu([0x80, 0x50, 0x00, 0x00], host_challenge, Some(0)),
        OK,
    );
    b
}

/// What the card said in round trip 1.
#[derive(Debug, Clone)]
pub struct Greeting {
    /// The key diversification data: the card's serial.
    pub serial: [u8; 10],
    /// Key version of the key set the card opened the channel with.
    pub kvn: u8,
    initialize_update: Vec<u8>,
    host_challenge: [u8; 8],
}

impl Greeting {
    pub fn read(
        batch: &Batch,
        host_challenge: &[u8; 8],
        responses: &[Vec<u8>],
    ) -> Result<Self, ProductionError> {
        let answers = batch.check(None, None, responses)?;
        if answers[0].sw != 0x9000 {
            return Err(ProductionError::NoCardManager);
        }
        let info = scp03::parse_initialize_update(&answers[1].data).map_err(|source| {
            ProductionError::SecureChannel {
                step: "INITIALIZE UPDATE",
                source,
            }
        })?;
        Ok(Self {
            serial: info.key_diversification_data,
            kvn: info.kvn,
            initialize_update: answers[1].data.clone(),
            host_challenge: *host_challenge,
        })
    }

    /// Checks the card cryptogram with `keys`; returns the channel and its EXTERNAL
    /// AUTHENTICATE.
    pub fn open(&self, keys: &StaticKeys) -> Result<(Channel, Vec<u8>), ProductionError> {
        let host = Scp03Host::new(keys.clone(), self.kvn, self.host_challenge);
        let (scp, _, ea) = host
            .finish(&self.initialize_update, LEVEL)
            .map_err(|e| match e {
                SmError::BadToken => ProductionError::WrongKeys,
                source => ProductionError::SecureChannel {
                    step: "INITIALIZE UPDATE",
                    source,
                },
            })?;
        Ok((
            Channel {
                scp,
                next_block: 0,
                dek: keys.dek.clone(),
                kvn: self.kvn,
            },
            ea,
        ))
    }
}

/// An open SCP03 channel with the ISD and the personalization block counter.
pub struct Channel {
    scp: Scp03Session,
    next_block: u8,
    dek: zeroize::Zeroizing<Vec<u8>>,
    kvn: u8,
}

/// What a new device gets.
pub struct DeviceSetup<'a> {
    /// The device id (CHR of its certificate).
    pub chr: &'a str,
    /// CHR of the Device Issuer CA (CAR of the request).
    pub dica_chr: &'a [u8],
    /// The root certificate the element will trust.
    pub root: &'a [u8],
    /// SO-PIN (8 bytes) and the single-use transport PIN.
    pub so_pin: &'a [u8],
    pub transport_pin: &'a [u8],
    /// A previous, unfinished production left an applet instance behind: delete it first.
    pub reinstall: bool,
}

impl Channel {
    pub fn session(&self) -> &Scp03Session {
        &self.scp
    }

    /// The channel's session, for commands of the caller's own.
    pub fn session_mut(&mut self) -> &mut Scp03Session {
        &mut self.scp
    }

    /// STORE DATA blocks carrying `dgis` (the last one ends the personalization if `last`).
    fn store_data(
        &mut self,
        b: &mut Batch,
        stream: &[u8],
        last: bool,
    ) -> Result<(), ProductionError> {
        let chunks: Vec<&[u8]> = stream.chunks(BLOCK).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            // DGI format, case 4 (the generation's request comes back).
            let mut p1 = 0x09;
            if last && i + 1 == chunks.len() {
                p1 |= 0x80;
            }
            let block = self.next_block;
            self.next_block = self
                .next_block
                .checked_add(1)
                .ok_or(ProductionError::Malformed("STORE DATA"))?;
            b.scp03(
                &mut self.scp,
                "STORE DATA",
                &apdu([0x80, 0xE2, p1, block], chunk, Some(0)),
                OK,
            )?;
        }
        Ok(())
    }

    /// Round trip 2: authenticate, install, personalize up to the device key's generation.
    pub fn personalize(
        &mut self,
        external_authenticate: Vec<u8>,
        setup: &DeviceSetup<'_>,
    ) -> Result<Batch, ProductionError> {
        let mut b = Batch::default();
        b.plain("EXTERNAL AUTHENTICATE", external_authenticate, OK);
        if setup.reinstall {
            let data =
                tlv::encode(0x4F, APPLET_AID).map_err(|_| ProductionError::Malformed("DELETE"))?;
            b.scp03(
                &mut self.scp,
                "DELETE",
                &apdu([0x80, 0xE4, 0x00, 0x00], &data, Some(0)),
                &[0x9000, 0x6A88],
            )?;
        }
        let lv = |v: &[u8]| [&[v.len() as u8][..], v].concat();
        let install = [
            lv(PACKAGE_AID),
            lv(APPLET_AID),
            lv(APPLET_AID),
            lv(&[0x00]),
            lv(&[0xC9, 0x00]),
            lv(&[]),
        ]
        .concat();
        b.scp03(
            &mut self.scp,
            "INSTALL [for install and make selectable]",
            &apdu([0x80, 0xE6, 0x0C, 0x00], &install, Some(0)),
            OK,
        )?;
        let perso = [lv(&[]), lv(&[]), lv(APPLET_AID), lv(&[]), lv(&[]), lv(&[])].concat();
        b.scp03(
            &mut self.scp,
            "INSTALL [for personalization]",
            &apdu([0x80, 0xE6, 0x20, 0x00], &perso, Some(0)),
            OK,
        )?;
        let enc = |t: u32, v: &[u8]| {
            tlv::encode(t, v).map_err(|_| ProductionError::Malformed("STORE DATA"))
        };
        // Options: SO may reset the PIN (0001), transport PIN (0002); 3 retries.
        let init = [
            enc(0x80, &[0x00, 0x03])?,
            enc(0x81, setup.transport_pin)?,
            enc(0x82, setup.so_pin)?,
            enc(0x91, &[3])?,
        ]
        .concat();
        let generate = [
            enc(0x42, setup.dica_chr)?,
            enc(0x5F20, setup.chr.as_bytes())?,
        ]
        .concat();
        let stream = [
            dgi_encode(dgi::INITIALIZE, &init),
            dgi_encode(dgi::ROOT, setup.root),
            dgi_encode(dgi::GENERATE_DEVAUT, &generate),
        ]
        .concat();
        self.store_data(&mut b, &stream, false)?;
        Ok(b)
    }

    /// Reads the device key's CV request from round trip 2's answers and checks it: self-signed
    /// (proof of possession), for `chr`, on the device curve.
    pub fn read_request(
        &self,
        batch: &Batch,
        responses: &[Vec<u8>],
        chr: &str,
    ) -> Result<Vec<u8>, ProductionError> {
        let answers = batch.check(Some(&self.scp), None, responses)?;
        let raw = &answers
            .last()
            .ok_or(ProductionError::Malformed("STORE DATA"))?
            .data;
        let request = Certificate::parse(raw).map_err(|_| ProductionError::Request("malformed"))?;
        if request.body.chr != chr.as_bytes() {
            return Err(ProductionError::Request("holder reference differs"));
        }
        let PublicKey::Ec {
            domain: Some(domain),
            point,
            ..
        } = &request.body.public_key
        else {
            return Err(ProductionError::Request(
                "not an EC key with domain parameters",
            ));
        };
        if Curve::from_domain(domain) != Some(DEVICE_CURVE) {
            return Err(ProductionError::Request("not on brainpoolP256r1"));
        }
        keyward_cvc::signature::verify(
            &request.body.public_key,
            None,
            &request.body_raw,
            &request.signature,
        )
        .map_err(|_| ProductionError::Request("self-signature does not verify"))?;
        Ok(point.clone())
    }

    /// Round trip 3: EF.C_DevAut, the card-unique keys, the card life cycle, and chip
    /// authentication with the new device key.
    pub fn finish(
        &mut self,
        c_devaut: &[u8],
        card_keys: &StaticKeys,
        chip: &ChipAuthHost,
    ) -> Result<Batch, ProductionError> {
        let mut b = Batch::default();
        self.store_data(&mut b, &dgi_encode(dgi::C_DEVAUT, c_devaut), true)?;
        let put = scp03::put_key_data(&self.dek, CARD_KVN, card_keys).map_err(|source| {
            ProductionError::SecureChannel {
                step: "PUT KEY",
                source,
            }
        })?;
        // The initial key set (KVN FF) cannot be named in P1 (b8 means "more"): adding the
        // first key set replaces it.
        let replace = if self.kvn & 0x80 != 0 { 0 } else { self.kvn };
        b.scp03(
            &mut self.scp,
            "PUT KEY",
            &apdu([0x80, 0xD8, replace, 0x81], &put, Some(0)),
            OK,
        )?;
        self.secure_card(&mut b)?;
        chip_authentication(&mut b, chip)?;
        Ok(b)
    }

    /// Round trip 2 of a production whose round trip 3 reached the element but not its
    /// answer to the server: the element already has its identity and card-unique keys.
    pub fn resume(
        &mut self,
        external_authenticate: Vec<u8>,
        chip: &ChipAuthHost,
    ) -> Result<Batch, ProductionError> {
        let mut b = Batch::default();
        b.plain("EXTERNAL AUTHENTICATE", external_authenticate, OK);
        self.secure_card(&mut b)?;
        chip_authentication(&mut b, chip)?;
        Ok(b)
    }

    /// SET STATUS INITIALIZED, then SECURED (already there: `6985`).
    fn secure_card(&mut self, b: &mut Batch) -> Result<(), ProductionError> {
        for state in [0x07, 0x0F] {
            b.scp03(
                &mut self.scp,
                "SET STATUS",
                &apdu([0x80, 0xF0, 0x80, state], &[], None),
                &[0x9000, 0x6985],
            )?;
        }
        Ok(())
    }

    /// Checks round trip 3 (or its resumption): the new keys' check values, the card life
    /// cycle, and chip authentication against the certified device key.
    pub fn check_finish(
        &self,
        batch: &Batch,
        responses: &[Vec<u8>],
        card_keys: Option<&StaticKeys>,
        device_point: &[u8],
        chip: ChipAuthHost,
    ) -> Result<SmSession, ProductionError> {
        let answers = batch.check(Some(&self.scp), None, responses)?;
        if let Some(keys) = card_keys {
            let put = crate::batch::answer(&answers, "PUT KEY")
                .ok_or(ProductionError::Malformed("PUT KEY"))?;
            if put.data != scp03::put_key_response(CARD_KVN, keys) {
                return Err(ProductionError::Malformed("PUT KEY"));
            }
        }
        let ga = answers
            .last()
            .ok_or(ProductionError::Malformed("GENERAL AUTHENTICATE"))?;
        chip.finish(device_point, &ga.data)
            .map_err(|source| ProductionError::SecureChannel {
                step: "chip authentication",
                source,
            })
    }
}

/// SELECT the applet, MSE SET AT, GENERAL AUTHENTICATE (plain: selecting the applet ends the
/// SCP03 channel).
fn chip_authentication(b: &mut Batch, chip: &ChipAuthHost) -> Result<(), ProductionError> {
    b.plain(
        "SELECT applet",
        apdu([0x00, 0xA4, 0x04, 0x0C], APPLET_AID, None),
        OK,
    );
    let encode = |c: keyward_apdu::Command| {
        c.encode()
            .map_err(|_| ProductionError::Malformed("chip authentication"))
    };
    b.plain("MSE SET AT", encode(chip.mse_set_at())?, OK);
    let ga = chip
        .general_authenticate()
        .map_err(|source| ProductionError::SecureChannel {
            step: "GENERAL AUTHENTICATE",
            source,
        })?;
    b.plain("GENERAL AUTHENTICATE", encode(ga)?, OK);
    Ok(())
}

/// A DGI: two-byte tag, length (one byte up to `FE`, else `FF` and two bytes), value.
fn dgi_encode(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    if value.len() < 0xFF {
        v.push(value.len() as u8);
    } else {
        v.push(0xFF);
        v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    }
    v.extend_from_slice(value);
    v
}

/// Issues the device certificate for a checked request: EF.C_DevAut = device cert ‖ DICA cert.
pub fn issue_c_devaut<K: CaKey>(
    dica: &mut CvcCa<K>,
    point: &[u8],
    chr: &str,
    from: keyward_cvc::CvDate,
    days: u32,
) -> Result<Vec<u8>, ProductionError> {
    let cert = dica.certify(point, chr, role::DEVICE, from, days)?;
    Ok([cert.raw, dica.certificate.raw.clone()].concat())
}
