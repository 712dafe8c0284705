//! ISO 7816-4 secure messaging as TR-03110 specifies it for AES: AES-128-CBC encryption with
//! IV = E(K_enc, SSC), AES-CMAC (8 bytes) over SSC ‖ padded header ‖ padded data objects, a
//! 16-byte send sequence counter incremented before every command and every response.

use keyward_apdu::tlv::{self, Tlv};
use keyward_apdu::{Command, CommandView, Response, ResponseView, StatusWord};
use keyward_crypto::{aes_cbc_decrypt_iv, aes_cbc_encrypt_iv, aes_cmac, aes_encrypt_block};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::SmError;

/// The session keys from chip authentication.
pub struct SessionKeys {
    pub k_enc: Zeroizing<[u8; 16]>,
    pub k_mac: Zeroizing<[u8; 16]>,
}

/// One secure-messaging channel (either end).
pub struct SmSession {
    keys: SessionKeys,
    ssc: u128,
}

const DO_CRYPTOGRAM_ODD: u32 = 0x85;
const DO_CRYPTOGRAM: u32 = 0x87;
const DO_LE: u32 = 0x97;
const DO_STATUS: u32 = 0x99;
const DO_MAC: u32 = 0x8E;

fn pad(data: &mut Vec<u8>) {
    data.push(0x80);
    while !data.len().is_multiple_of(16) {
        data.push(0);
    }
}

fn unpad(mut data: Vec<u8>) -> Result<Vec<u8>, SmError> {
    while let Some(&b) = data.last() {
        data.pop();
        match b {
            0x00 => {}
            0x80 => return Ok(data),
            _ => break,
        }
    }
    Err(SmError::BadPadding)
}

fn tlv_write(out: &mut Vec<u8>, tag: u32, value: &[u8]) -> Result<(), SmError> {
    tlv::write(out, tag, value).map_err(|_| SmError::TooLong)
}

impl SmSession {
    pub fn new(keys: SessionKeys) -> Self {
        Self { keys, ssc: 0 }
    }

    /// Consumes one SSC step without a message (tests of lost messages).
    #[doc(hidden)]
    pub fn next_for_test(&mut self) -> u128 {
        self.next_ssc();
        self.ssc
    }

    /// The current send sequence counter.
    pub fn ssc(&self) -> u128 {
        self.ssc
    }

    fn next_ssc(&mut self) -> [u8; 16] {
        self.ssc = self.ssc.wrapping_add(1);
        self.ssc.to_be_bytes()
    }

    fn encrypt(&self, ssc: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, SmError> {
        let iv = aes_encrypt_block(&self.keys.k_enc[..], ssc).map_err(|_| SmError::Crypto)?;
        let mut padded = data.to_vec();
        pad(&mut padded);
        aes_cbc_encrypt_iv(&self.keys.k_enc[..], &iv, &padded).map_err(|_| SmError::Crypto)
    }

    fn decrypt(&self, ssc: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, SmError> {
        let iv = aes_encrypt_block(&self.keys.k_enc[..], ssc).map_err(|_| SmError::Crypto)?;
        let plain =
            aes_cbc_decrypt_iv(&self.keys.k_enc[..], &iv, data).map_err(|_| SmError::Malformed)?;
        unpad(plain)
    }

    /// CMAC over SSC ‖ pad(header) ‖ pad(data objects), truncated to 8 bytes.
    fn mac(&self, ssc: &[u8; 16], header: Option<[u8; 4]>, dos: &[u8]) -> Result<[u8; 8], SmError> {
        let mut input = ssc.to_vec();
        if let Some(h) = header {
            input.extend_from_slice(&h);
            pad(&mut input);
        }
        if !dos.is_empty() {
            input.extend_from_slice(dos);
            pad(&mut input);
        }
        let full = aes_cmac(&self.keys.k_mac[..], &input).map_err(|_| SmError::Crypto)?;
        let mut mac = [0u8; 8];
        mac.copy_from_slice(&full[..8]);
        Ok(mac)
    }

    fn check_mac(
        &self,
        ssc: &[u8; 16],
        header: Option<[u8; 4]>,
        dos: &[u8],
        got: &[u8],
    ) -> Result<(), SmError> {
        let expected = self.mac(ssc, header, dos)?;
        if got.len() == 8 && bool::from(expected.ct_eq(got)) {
            Ok(())
        } else {
            Err(SmError::BadMac)
        }
    }

    // ---- host role ---------------------------------------------------------------------------

    /// Protects a plain command for sending.
    pub fn wrap_command(&mut self, cmd: &CommandView<'_>) -> Result<Command, SmError> {
        let ssc = self.next_ssc();
        let cla = cmd.cla | 0x0C;
        let mut dos = Vec::new();
        if !cmd.data.is_empty() {
            let enc = self.encrypt(&ssc, cmd.data)?;
            if cmd.ins & 1 == 1 {
                tlv_write(&mut dos, DO_CRYPTOGRAM_ODD, &enc)?;
            } else {
                tlv_write(&mut dos, DO_CRYPTOGRAM, &[&[0x01][..], &enc].concat())?;
            }
        }
        let extended = cmd.extended || cmd.le.is_some_and(|le| le > 256) || cmd.data.len() > 223;
        if let Some(le) = cmd.le {
            let le_bytes = if extended {
                ((le & 0xFFFF) as u16).to_be_bytes().to_vec()
            } else {
                vec![(le & 0xFF) as u8]
            };
            tlv_write(&mut dos, DO_LE, &le_bytes)?;
        }
        let mac = self.mac(&ssc, Some([cla, cmd.ins, cmd.p1, cmd.p2]), &dos)?;
        tlv_write(&mut dos, DO_MAC, &mac)?;
        let mut out = Command::new(cla, cmd.ins, cmd.p1, cmd.p2)
            .with_data(dos)
            .with_le(if extended { 65536 } else { 256 });
        out.force_extended = extended;
        Ok(out)
    }

    /// Protects a command whose response will be checked later, after more commands were
    /// wrapped (one RAMoverHTTP batch): the response's send sequence counter is reserved and
    /// returned for [`Self::unwrap_response_at`].
    pub fn wrap_command_deferred(
        &mut self,
        cmd: &CommandView<'_>,
    ) -> Result<(Command, u128), SmError> {
        let wrapped = self.wrap_command(cmd)?;
        self.next_ssc();
        Ok((wrapped, self.ssc))
    }

    /// Verifies and decrypts a protected response.
    pub fn unwrap_response(&mut self, rapdu: &[u8]) -> Result<Response, SmError> {
        let ssc = self.next_ssc();
        self.unwrap_with(&ssc, rapdu)
    }

    /// Verifies and decrypts the response to a command wrapped with
    /// [`Self::wrap_command_deferred`].
    pub fn unwrap_response_at(&self, ssc: u128, rapdu: &[u8]) -> Result<Response, SmError> {
        self.unwrap_with(&ssc.to_be_bytes(), rapdu)
    }

    fn unwrap_with(&self, ssc: &[u8; 16], rapdu: &[u8]) -> Result<Response, SmError> {
        let r = ResponseView::parse(rapdu).map_err(|_| SmError::Malformed)?;
        if r.data.is_empty() {
            // A bare status word: the card rejected the command's protection or ended SM.
            return Err(SmError::CardError(r.sw));
        }
        let items = tlv::parse_all(r.data).map_err(|_| SmError::Malformed)?;
        let (mac_do, rest) = items.split_last().ok_or(SmError::MissingDataObject)?;
        if mac_do.tag.0 != DO_MAC {
            return Err(SmError::MissingDataObject);
        }
        let covered: Vec<u8> = rest.iter().flat_map(|t| t.raw.iter().copied()).collect();
        self.check_mac(ssc, None, &covered, mac_do.value)?;
        let (cryptogram, status) = match rest {
            [c, s] if c.tag.0 == DO_CRYPTOGRAM && s.tag.0 == DO_STATUS => (Some(c), s),
            [s] if s.tag.0 == DO_STATUS => (None, s),
            _ => return Err(SmError::Malformed),
        };
        let sw: [u8; 2] = status.value.try_into().map_err(|_| SmError::Malformed)?;
        let data = match cryptogram {
            Some(c) => match c.value.split_first() {
                Some((0x01, enc)) => self.decrypt(ssc, enc)?,
                _ => return Err(SmError::Malformed),
            },
            None => Vec::new(),
        };
        Ok(Response::new(data, StatusWord(u16::from_be_bytes(sw))))
    }

    // ---- card role ---------------------------------------------------------------------------

    /// Verifies and decrypts a protected command (CLA with the SM bits) into the plain command.
    pub fn unwrap_command(&mut self, cmd: &CommandView<'_>) -> Result<Command, SmError> {
        let ssc = self.next_ssc();
        let items = tlv::parse_all(cmd.data).map_err(|_| SmError::Malformed)?;
        let (mac_do, rest) = items.split_last().ok_or(SmError::MissingDataObject)?;
        if mac_do.tag.0 != DO_MAC {
            return Err(SmError::MissingDataObject);
        }
        let covered: Vec<u8> = rest.iter().flat_map(|t| t.raw.iter().copied()).collect();
        self.check_mac(
            &ssc,
            Some([cmd.cla, cmd.ins, cmd.p1, cmd.p2]),
            &covered,
            mac_do.value,
        )?;
        let mut data = Vec::new();
        let mut le = None;
        let mut rest: &[Tlv<'_>] = rest;
        if let Some((first, tail)) = rest.split_first() {
            match first.tag.0 {
                DO_CRYPTOGRAM_ODD => {
                    data = self.decrypt(&ssc, first.value)?;
                    rest = tail;
                }
                DO_CRYPTOGRAM => match first.value.split_first() {
                    Some((0x01, enc)) => {
                        data = self.decrypt(&ssc, enc)?;
                        rest = tail;
                    }
                    _ => return Err(SmError::Malformed),
                },
                _ => {}
            }
        }
        match rest {
            [] => {}
            [l] if l.tag.0 == DO_LE => {
                le = Some(match l.value {
                    [0] => 256,
                    [b] => u32::from(*b),
                    [0, 0] => 65536,
                    [a, b] => u32::from(u16::from_be_bytes([*a, *b])),
                    _ => return Err(SmError::Malformed),
                });
            }
            _ => return Err(SmError::Malformed),
        }
        let mut plain = Command::new(cmd.cla & !0x0C, cmd.ins, cmd.p1, cmd.p2).with_data(data);
        plain.le = le;
        Ok(plain)
    }

    /// Protects a response. The real status word travels in DO 99; the outer one is 9000.
    pub fn wrap_response(&mut self, response: &Response) -> Result<Response, SmError> {
        let ssc = self.next_ssc();
        let mut dos = Vec::new();
        if !response.data.is_empty() {
            let enc = self.encrypt(&ssc, &response.data)?;
            tlv_write(&mut dos, DO_CRYPTOGRAM, &[&[0x01][..], &enc].concat())?;
        }
        tlv_write(&mut dos, DO_STATUS, &response.sw.to_bytes())?;
        let mac = self.mac(&ssc, None, &dos)?;
        tlv_write(&mut dos, DO_MAC, &mac)?;
        Ok(Response::ok(dos))
    }
}
