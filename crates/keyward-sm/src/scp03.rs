//! GlobalPlatform SCP03 (Card Specification Amendment D), both roles, sans-io: the SP 800-108
//! counter-mode KDF with AES-CMAC, session keys and cryptograms, the pseudo-random card
//! challenge, and command/response protection (C-MAC with MAC chaining, C-DECRYPTION with the
//! encryption counter, R-MAC, R-ENCRYPTION), in S8 mode.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::SmError;
use keyward_crypto as crypto;

/// Security-level bits (P1 of EXTERNAL AUTHENTICATE).
pub mod level {
    pub const C_MAC: u8 = 0x01;
    pub const C_DECRYPTION: u8 = 0x02;
    pub const R_MAC: u8 = 0x10;
    pub const R_ENCRYPTION: u8 = 0x20;
}

/// KDF derivation constants.
mod constant {
    pub const CARD_CRYPTOGRAM: u8 = 0x00;
    pub const HOST_CRYPTOGRAM: u8 = 0x01;
    pub const CARD_CHALLENGE: u8 = 0x02;
    pub const S_ENC: u8 = 0x04;
    pub const S_MAC: u8 = 0x06;
    pub const S_RMAC: u8 = 0x07;
}

/// A static SCP03 key set (Key-ENC, Key-MAC, Key-DEK of one length: 16, 24 or 32 bytes).
#[derive(Clone)]
pub struct StaticKeys {
    pub enc: Zeroizing<Vec<u8>>,
    pub mac: Zeroizing<Vec<u8>>,
    pub dek: Zeroizing<Vec<u8>>,
}

impl StaticKeys {
    pub fn new(enc: &[u8], mac: &[u8], dek: &[u8]) -> Result<Self, SmError> {
        let n = enc.len();
        if ![16, 24, 32].contains(&n) || mac.len() != n || dek.len() != n {
            return Err(SmError::Crypto);
        }
        Ok(Self {
            enc: Zeroizing::new(enc.to_vec()),
            mac: Zeroizing::new(mac.to_vec()),
            dek: Zeroizing::new(dek.to_vec()),
        })
    }
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StaticKeys(AES-{}, KCV {})",
            self.enc.len() * 8,
            hex(&kcv(&self.enc))
        )
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// NIST SP 800-108 KDF in counter mode with AES-CMAC, in SCP03's data layout: 11 zero bytes,
/// the derivation constant, a zero separator, L (bits, 2 bytes), the counter, the context.
pub fn kdf(
    key: &[u8],
    constant: u8,
    context: &[u8],
    bits: u16,
) -> Result<Zeroizing<Vec<u8>>, SmError> {
    let len = usize::from(bits / 8);
    let mut out = Zeroizing::new(Vec::with_capacity(len + 16));
    let mut counter = 1u8;
    while out.len() < len {
        let mut input = Zeroizing::new(vec![0u8; 11]);
        input.push(constant);
        input.push(0);
        input.extend_from_slice(&bits.to_be_bytes());
        input.push(counter);
        input.extend_from_slice(context);
        out.extend_from_slice(&crypto::aes_cmac(key, &input).map_err(|_| SmError::Crypto)?);
        counter += 1;
    }
    out.truncate(len);
    Ok(out)
}

/// Key check value of an AES key: the first 3 bytes of AES(key, 01…01).
pub fn kcv(key: &[u8]) -> [u8; 3] {
    let block = crypto::aes_encrypt_block(key, &[1; 16]).unwrap_or([0; 16]);
    [block[0], block[1], block[2]]
}

/// The pseudo-random card challenge: KDF(Key-ENC, 02, sequence counter ‖ SD AID, 64 bits).
pub fn card_challenge(enc: &[u8], counter: [u8; 3], aid: &[u8]) -> Result<[u8; 8], SmError> {
    let v = kdf(
        enc,
        constant::CARD_CHALLENGE,
        &[&counter[..], aid].concat(),
        64,
    )?;
    v.as_slice().try_into().map_err(|_| SmError::Crypto)
}

/// ISO 9797-1 padding method 2.
fn pad80(data: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(data.to_vec());
    v.push(0x80);
    while !v.len().is_multiple_of(16) {
        v.push(0);
    }
    v
}

fn unpad80(data: &[u8]) -> Result<Zeroizing<Vec<u8>>, SmError> {
    let end = data
        .iter()
        .rposition(|b| *b != 0)
        .ok_or(SmError::BadPadding)?;
    if data[end] != 0x80 || data.len() - end > 16 {
        return Err(SmError::BadPadding);
    }
    Ok(Zeroizing::new(data[..end].to_vec()))
}

/// An established SCP03 session (either role).
pub struct Scp03Session {
    s_enc: Zeroizing<Vec<u8>>,
    s_mac: Zeroizing<Vec<u8>>,
    s_rmac: Zeroizing<Vec<u8>>,
    mcv: [u8; 16],
    counter: u128,
    level: u8,
}

/// The MAC chaining value and counter of a wrapped command, to check its response later.
#[derive(Debug, Clone)]
pub struct ResponseContext {
    mcv: [u8; 16],
    counter: u128,
}

/// Session keys and both cryptograms from the static keys and the two challenges.
pub struct Handshake {
    pub session: Scp03Session,
    pub card_cryptogram: [u8; 8],
    pub host_cryptogram: [u8; 8],
}

impl Scp03Session {
    /// Derives session keys and cryptograms (S8 mode).
    pub fn derive(
        keys: &StaticKeys,
        host_challenge: &[u8; 8],
        card_challenge: &[u8; 8],
    ) -> Result<Handshake, SmError> {
        let ctx = [&host_challenge[..], &card_challenge[..]].concat();
        let bits = (keys.enc.len() * 8) as u16;
        let s_mac = kdf(&keys.mac, constant::S_MAC, &ctx, bits)?;
        let crypto8 = |c| -> Result<[u8; 8], SmError> {
            kdf(&s_mac, c, &ctx, 64)?
                .as_slice()
                .try_into()
                .map_err(|_| SmError::Crypto)
        };
        let card_cryptogram = crypto8(constant::CARD_CRYPTOGRAM)?;
        let host_cryptogram = crypto8(constant::HOST_CRYPTOGRAM)?;
        Ok(Handshake {
            session: Self {
                s_enc: kdf(&keys.enc, constant::S_ENC, &ctx, bits)?,
                s_rmac: kdf(&keys.mac, constant::S_RMAC, &ctx, bits)?,
                s_mac,
                mcv: [0; 16],
                counter: 0,
                level: 0,
            },
            card_cryptogram,
            host_cryptogram,
        })
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    fn mac(&mut self, header: [u8; 4], lc: usize, data: &[u8]) -> Result<[u8; 8], SmError> {
        let mut input = Vec::with_capacity(16 + 7 + data.len());
        input.extend_from_slice(&self.mcv);
        input.extend_from_slice(&header);
        if lc > 255 {
            input.push(0);
            input.extend_from_slice(
                &u16::try_from(lc)
                    .map_err(|_| SmError::TooLong)?
                    .to_be_bytes(),
            );
        } else {
            input.push(lc as u8);
        }
        input.extend_from_slice(data);
        let full = crypto::aes_cmac(&self.s_mac, &input).map_err(|_| SmError::Crypto)?;
        self.mcv.copy_from_slice(&full);
        let mut m = [0u8; 8];
        m.copy_from_slice(&full[..8]);
        Ok(m)
    }

    fn icv(&self, response: bool) -> Result<[u8; 16], SmError> {
        self.icv_at(self.counter, response)
    }

    fn icv_at(&self, counter: u128, response: bool) -> Result<[u8; 16], SmError> {
        let mut block = counter.to_be_bytes();
        if response {
            block[0] = 0x80;
        }
        crypto::aes_encrypt_block(&self.s_enc, &block).map_err(|_| SmError::Crypto)
    }

    /// Host: EXTERNAL AUTHENTICATE with the host cryptogram at security level `level`.
    pub fn external_authenticate(
        &mut self,
        host_cryptogram: &[u8; 8],
        level: u8,
    ) -> Result<Vec<u8>, SmError> {
        let header = [0x84, 0x82, level, 0x00];
        let mac = self.mac(header, 16, host_cryptogram)?;
        self.level = level;
        Ok([&header[..], &[16], host_cryptogram, &mac].concat())
    }

    /// Host: protects a plain command APDU (short encoding) at the session's level.
    pub fn wrap_command(&mut self, apdu: &[u8]) -> Result<Vec<u8>, SmError> {
        let (header, data, le) = split_short(apdu)?;
        self.counter += 1;
        let data: Zeroizing<Vec<u8>> = if self.level & level::C_DECRYPTION != 0 && !data.is_empty()
        {
            let icv = self.icv(false)?;
            Zeroizing::new(
                crypto::aes_cbc_encrypt_iv(&self.s_enc, &icv, &pad80(data))
                    .map_err(|_| SmError::Crypto)?,
            )
        } else {
            Zeroizing::new(data.to_vec())
        };
        if self.level & level::C_MAC == 0 {
            return Ok(apdu.to_vec());
        }
        let cla = (header[0] & 0xF0) | 0x04;
        let header = [cla, header[1], header[2], header[3]];
        let lc = data.len() + 8;
        let mac = self.mac(header, lc, &data)?;
        let mut out = header.to_vec();
        if lc > 255 {
            return Err(SmError::TooLong);
        }
        out.push(lc as u8);
        out.extend_from_slice(&data);
        out.extend_from_slice(&mac);
        if let Some(le) = le {
            out.push(le);
        }
        Ok(out)
    }

    /// Host: checks and removes R-MAC / R-ENC from a response (`data ‖ SW1 SW2`).
    pub fn unwrap_response(&mut self, response: &[u8]) -> Result<Vec<u8>, SmError> {
        self.unwrap_response_at(self.mcv, self.counter, response)
    }

    /// Host: wraps a command whose response will be checked later, after more commands were
    /// wrapped (the commands of one RAMoverHTTP batch); returns what checking it needs.
    pub fn wrap_command_deferred(
        &mut self,
        apdu: &[u8],
    ) -> Result<(Vec<u8>, ResponseContext), SmError> {
        let wrapped = self.wrap_command(apdu)?;
        Ok((
            wrapped,
            ResponseContext {
                mcv: self.mcv,
                counter: self.counter,
            },
        ))
    }

    /// Host: checks the response to a command wrapped with [`Self::wrap_command_deferred`].
    pub fn unwrap_deferred(
        &self,
        ctx: &ResponseContext,
        response: &[u8],
    ) -> Result<Vec<u8>, SmError> {
        self.unwrap_response_at(ctx.mcv, ctx.counter, response)
    }

    fn unwrap_response_at(
        &self,
        mcv: [u8; 16],
        counter: u128,
        response: &[u8],
    ) -> Result<Vec<u8>, SmError> {
        let (body, sw) =
            response.split_at(response.len().checked_sub(2).ok_or(SmError::Malformed)?);
        if self.level & level::R_MAC == 0 || !protected_sw(sw) {
            return Ok(response.to_vec());
        }
        let (data, rmac) = body.split_at(body.len().checked_sub(8).ok_or(SmError::Malformed)?);
        let expected = self.rmac_with(&mcv, data, sw)?;
        if !bool::from(expected.ct_eq(rmac)) {
            return Err(SmError::BadMac);
        }
        let plain = if self.level & level::R_ENCRYPTION != 0 && !data.is_empty() {
            let icv = self.icv_at(counter, true)?;
            let p = Zeroizing::new(
                crypto::aes_cbc_decrypt_iv(&self.s_enc, &icv, data)
                    .map_err(|_| SmError::BadPadding)?,
            );
            unpad80(&p)?.to_vec()
        } else {
            data.to_vec()
        };
        Ok([&plain[..], sw].concat())
    }

    fn rmac(&self, data: &[u8], sw: &[u8]) -> Result<[u8; 8], SmError> {
        self.rmac_with(&self.mcv, data, sw)
    }

    fn rmac_with(&self, mcv: &[u8; 16], data: &[u8], sw: &[u8]) -> Result<[u8; 8], SmError> {
        let input = [&mcv[..], data, sw].concat();
        let full = crypto::aes_cmac(&self.s_rmac, &input).map_err(|_| SmError::Crypto)?;
        let mut m = [0u8; 8];
        m.copy_from_slice(&full[..8]);
        Ok(m)
    }

    /// Card: verifies EXTERNAL AUTHENTICATE (`84 82 P1 00 10 cryptogram mac`) against the
    /// expected host cryptogram; on success the session runs at level P1.
    pub fn card_external_authenticate(
        &mut self,
        apdu: &[u8],
        host_cryptogram: &[u8; 8],
    ) -> Result<(), SmError> {
        let (header, data, _) = split_short(apdu)?;
        if header[..2] != [0x84, 0x82] || data.len() != 16 {
            return Err(SmError::Malformed);
        }
        let level = header[2];
        if ![0x00, 0x01, 0x03, 0x11, 0x13, 0x33].contains(&level) {
            return Err(SmError::Malformed);
        }
        let mac = self.mac(header, 16, &data[..8])?;
        if !bool::from(data[..8].ct_eq(host_cryptogram)) || !bool::from(mac.ct_eq(&data[8..])) {
            return Err(SmError::BadMac);
        }
        self.level = level;
        Ok(())
    }

    /// Card: checks and removes C-MAC / C-DEC, returning the plain command (GP CLA `80`).
    pub fn unwrap_command(&mut self, apdu: &[u8]) -> Result<Vec<u8>, SmError> {
        let (header, data, le) = split_short(apdu)?;
        self.counter += 1;
        if self.level & level::C_MAC == 0 {
            return Ok(apdu.to_vec());
        }
        if header[0] & 0x04 == 0 {
            return Err(SmError::MissingDataObject);
        }
        let (body, mac) = data.split_at(data.len().checked_sub(8).ok_or(SmError::Malformed)?);
        let saved = self.mcv;
        let expected = self.mac(
            [(header[0] & 0xF0) | 0x04, header[1], header[2], header[3]],
            data.len(),
            body,
        )?;
        if !bool::from(expected.ct_eq(mac)) {
            self.mcv = saved;
            return Err(SmError::BadMac);
        }
        let plain = if self.level & level::C_DECRYPTION != 0 && !body.is_empty() {
            let icv = self.icv(false)?;
            let p = Zeroizing::new(
                crypto::aes_cbc_decrypt_iv(&self.s_enc, &icv, body)
                    .map_err(|_| SmError::BadPadding)?,
            );
            unpad80(&p)?
        } else {
            Zeroizing::new(body.to_vec())
        };
        let mut out = vec![header[0] & !0x04, header[1], header[2], header[3]];
        if !plain.is_empty() {
            out.push(u8::try_from(plain.len()).map_err(|_| SmError::TooLong)?);
            out.extend_from_slice(&plain);
        }
        if let Some(le) = le {
            out.push(le);
        }
        Ok(out)
    }

    /// Card: adds R-ENC / R-MAC to a response (only for 9000, 62xx, 63xx).
    pub fn wrap_response(&mut self, data: &[u8], sw: [u8; 2]) -> Result<Vec<u8>, SmError> {
        if self.level & level::R_MAC == 0 || !protected_sw(&sw) {
            return Ok([data, &sw[..]].concat());
        }
        let data = if self.level & level::R_ENCRYPTION != 0 && !data.is_empty() {
            let icv = self.icv(true)?;
            crypto::aes_cbc_encrypt_iv(&self.s_enc, &icv, &pad80(data))
                .map_err(|_| SmError::Crypto)?
        } else {
            data.to_vec()
        };
        let rmac = self.rmac(&data, &sw)?;
        Ok([&data[..], &rmac, &sw].concat())
    }
}

fn protected_sw(sw: &[u8]) -> bool {
    matches!(sw, [0x90, 0x00] | [0x62, _] | [0x63, _])
}

/// A short APDU's header, data and Le.
type Parts<'a> = ([u8; 4], &'a [u8], Option<u8>);

/// Splits a short APDU into header, data and Le.
fn split_short(apdu: &[u8]) -> Result<Parts<'_>, SmError> {
    let header: [u8; 4] = apdu
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or(SmError::Malformed)?;
    match apdu.len() {
        4 => Ok((header, &[], None)),
        5 => Ok((header, &[], Some(apdu[4]))),
        n => {
            let lc = usize::from(apdu[4]);
            match n.checked_sub(5 + lc) {
                Some(0) if lc > 0 => Ok((header, &apdu[5..], None)),
                Some(1) if lc > 0 => Ok((header, &apdu[5..5 + lc], Some(apdu[n - 1]))),
                _ => Err(SmError::Malformed),
            }
        }
    }
}

/// The host's side of opening a session: INITIALIZE UPDATE, then the card's answer.
pub struct Scp03Host {
    keys: StaticKeys,
    host_challenge: [u8; 8],
    kvn: u8,
}

/// What the card said in its INITIALIZE UPDATE response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardInfo {
    pub key_diversification_data: [u8; 10],
    pub kvn: u8,
    pub i: u8,
    pub card_challenge: [u8; 8],
    pub sequence_counter: Option<[u8; 3]>,
}

impl Scp03Host {
    pub fn new(keys: StaticKeys, kvn: u8, host_challenge: [u8; 8]) -> Self {
        Self {
            keys,
            host_challenge,
            kvn,
        }
    }

    /// `80 50 KVN 00 08 host-challenge 00`.
    pub fn initialize_update(&self) -> Vec<u8> {
        [
            &[0x80, 0x50, self.kvn, 0x00, 0x08][..],
            &self.host_challenge,
            &[0x00],
        ]
        .concat()
    }

    /// Checks the card cryptogram and returns the session with its EXTERNAL AUTHENTICATE.
    pub fn finish(
        &self,
        response_data: &[u8],
        level: u8,
    ) -> Result<(Scp03Session, CardInfo, Vec<u8>), SmError> {
        let info = parse_initialize_update(response_data)?;
        let hs = Scp03Session::derive(&self.keys, &self.host_challenge, &info.card_challenge)?;
        if !bool::from(hs.card_cryptogram.ct_eq(&response_data[21..29])) {
            return Err(SmError::BadToken);
        }
        let mut session = hs.session;
        let ea = session.external_authenticate(&hs.host_cryptogram, level)?;
        Ok((session, info, ea))
    }
}

/// Parses the S8 INITIALIZE UPDATE response data (29 or 32 bytes).
pub fn parse_initialize_update(r: &[u8]) -> Result<CardInfo, SmError> {
    if r.len() != 29 && r.len() != 32 {
        return Err(SmError::Malformed);
    }
    let mut kdd = [0u8; 10];
    kdd.copy_from_slice(&r[..10]);
    if r[11] != 0x03 {
        return Err(SmError::Malformed);
    }
    let mut challenge = [0u8; 8];
    challenge.copy_from_slice(&r[13..21]);
    Ok(CardInfo {
        key_diversification_data: kdd,
        kvn: r[10],
        i: r[12],
        card_challenge: challenge,
        sequence_counter: (r.len() == 32).then(|| [r[29], r[30], r[31]]),
    })
}

/// Key diversification of a card's static keys from a master key (KMC) and the card's key
/// diversification data, in GlobalPlatformPro's "KDF3" form (SP 800-108 counter mode with
/// AES-CMAC under the KMC; per key: `i ‖ 00 00 00 ‖ kk ‖ 00 ‖ KDD`, kk = 01 ENC, 02 MAC, 03 DEK).
/// GlobalPlatform standardises no scheme; this one interoperates with `gp --key-kdf kdf3`.
pub fn diversify(kmc: &[u8], kdd: &[u8; 10]) -> Result<StaticKeys, SmError> {
    let derive = |kk: u8| -> Result<Zeroizing<Vec<u8>>, SmError> {
        let mut out = Zeroizing::new(Vec::with_capacity(kmc.len() + 16));
        let mut i = 1u8;
        while out.len() < kmc.len() {
            let input = [&[i, 0, 0, 0, kk, 0][..], kdd].concat();
            out.extend_from_slice(&crypto::aes_cmac(kmc, &input).map_err(|_| SmError::Crypto)?);
            i += 1;
        }
        out.truncate(kmc.len());
        Ok(out)
    };
    StaticKeys::new(&derive(1)?, &derive(2)?, &derive(3)?)
}

/// PUT KEY data for a whole SCP03 key set (new KVN, then ENC, MAC, DEK as `88` components
/// encrypted under the current Key-DEK, each with its KCV), as GlobalPlatformPro sends it.
pub fn put_key_data(dek: &[u8], kvn: u8, keys: &StaticKeys) -> Result<Vec<u8>, SmError> {
    let mut out = vec![kvn];
    for key in [&keys.enc, &keys.mac, &keys.dek] {
        // AES-192 is padded with 8 bytes to whole blocks.
        let mut clear = Zeroizing::new(key.to_vec());
        while !clear.len().is_multiple_of(16) {
            clear.push(0);
        }
        let ct = crypto::aes_cbc_encrypt(dek, &clear).map_err(|_| SmError::Crypto)?;
        out.push(0x88);
        out.push((ct.len() + 1) as u8);
        out.push(key.len() as u8);
        out.extend_from_slice(&ct);
        out.push(0x03);
        out.extend_from_slice(&kcv(key));
    }
    Ok(out)
}

/// Card side of PUT KEY for a key set: decrypts the components under Key-DEK, checks each KCV
/// (`6982` on a mismatch), and returns the new KVN with the keys. Both encodings of GPCS
/// §11.8.2.3 are accepted: `88 L len ct 03 kcv` and, for keys of whole blocks, `88 L ct 03 kcv`.
pub fn parse_put_key(dek: &[u8], data: &[u8]) -> Result<(u8, StaticKeys), SmError> {
    let (&kvn, mut rest) = data.split_first().ok_or(SmError::Malformed)?;
    let mut keys: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    while !rest.is_empty() {
        let [0x88, l, tail @ ..] = rest else {
            return Err(SmError::Malformed);
        };
        let l = usize::from(*l);
        let (block, tail) = (tail.get(..l).ok_or(SmError::Malformed)?, &tail[l..]);
        let (key_len, ct) = if block.len().is_multiple_of(16) {
            (block.len(), block)
        } else {
            let (n, ct) = block.split_first().ok_or(SmError::Malformed)?;
            (usize::from(*n), ct)
        };
        if ct.is_empty() || !ct.len().is_multiple_of(16) || key_len > ct.len() {
            return Err(SmError::Malformed);
        }
        let [0x03, k1, k2, k3, tail2 @ ..] = tail else {
            return Err(SmError::Malformed);
        };
        let clear = Zeroizing::new(crypto::aes_cbc_decrypt(dek, ct).map_err(|_| SmError::Crypto)?);
        let key = Zeroizing::new(clear[..key_len].to_vec());
        if !bool::from(kcv(&key).ct_eq(&[*k1, *k2, *k3])) {
            return Err(SmError::BadMac);
        }
        keys.push(key);
        rest = tail2;
    }
    let [enc, mac, dek_new] = keys.as_slice() else {
        return Err(SmError::Malformed);
    };
    Ok((kvn, StaticKeys::new(enc, mac, dek_new)?))
}

/// The PUT KEY response data: KVN ‖ the three KCVs.
pub fn put_key_response(kvn: u8, keys: &StaticKeys) -> Vec<u8> {
    let mut out = vec![kvn];
    for key in [&keys.enc, &keys.mac, &keys.dek] {
        out.extend_from_slice(&kcv(key));
    }
    out
}

/// The card's answer to INITIALIZE UPDATE in pseudo-random challenge mode.
pub struct CardGreeting {
    /// Response data: KDD ‖ KVN 03 i ‖ card challenge ‖ card cryptogram ‖ sequence counter.
    pub response: Vec<u8>,
    /// The session keys and the host cryptogram EXTERNAL AUTHENTICATE must carry.
    pub handshake: Handshake,
}

/// Card side of INITIALIZE UPDATE (S8, pseudo-random challenge): increments the key set's
/// sequence counter (the caller persists it before answering), derives the card challenge from
/// it and the security domain's AID, and answers with the card cryptogram. `6985` semantics:
/// an exhausted counter is refused.
pub fn card_initialize_update(
    keys: &StaticKeys,
    kvn: u8,
    i: u8,
    counter: &mut u32,
    kdd: &[u8; 10],
    aid: &[u8],
    host_challenge: &[u8],
) -> Result<CardGreeting, SmError> {
    let host_challenge: &[u8; 8] = host_challenge.try_into().map_err(|_| SmError::Malformed)?;
    if *counter >= 0x00FF_FFFF {
        return Err(SmError::CounterExhausted);
    }
    *counter += 1;
    let [_, c1, c2, c3] = counter.to_be_bytes();
    let card_challenge = card_challenge(&keys.enc, [c1, c2, c3], aid)?;
    let handshake = Scp03Session::derive(keys, host_challenge, &card_challenge)?;
    let mut response = kdd.to_vec();
    response.extend_from_slice(&[kvn, 0x03, i]);
    response.extend_from_slice(&card_challenge);
    response.extend_from_slice(&handshake.card_cryptogram);
    response.extend_from_slice(&[c1, c2, c3]);
    Ok(CardGreeting {
        response,
        handshake,
    })
}
