//! RAMoverHTTP messages, encoded and decoded byte for byte as CardContact's clients and server
//! exchange them:
//! - initiation (device → server, first POST): `E8 { C0 ATR [, C1 max C-APDU, C2 max R-APDU] }`;
//! - command script (server → device, 200 body): `AA { 22 C-APDU | C0 (reset) | E0 notify … }`;
//! - response script (device → server): `AB { 23 R-APDU…, [C0 ATR], [E1 close], 80 count }`.

use crate::RamError;
use crate::tlv::{self, Item};

pub mod tag {
    pub const INITIATION: u8 = 0xE8;
    pub const COMMAND_SCRIPT: u8 = 0xAA;
    pub const RESPONSE_SCRIPT: u8 = 0xAB;
    pub const C_APDU: u8 = 0x22;
    pub const R_APDU: u8 = 0x23;
    pub const EXECUTED: u8 = 0x80;
    /// `C0`: "reset" in a command script; the ATR in initiation and response scripts.
    pub const RESET_ATR: u8 = 0xC0;
    pub const MAX_CAPDU: u8 = 0xC1;
    pub const MAX_RAPDU: u8 = 0xC2;
    pub const TIME_TO_COMPLETION: u8 = 0xC3;
    pub const NOTIFY: u8 = 0xE0;
    pub const CLOSE: u8 = 0xE1;
    pub const INTEGER: u8 = 0x02;
    pub const UTF8: u8 = 0x0C;
}

/// The first POST of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiation {
    pub atr: Vec<u8>,
    pub max_capdu: Option<u32>,
    pub max_rapdu: Option<u32>,
}

/// One item of a command script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Apdu(Vec<u8>),
    Reset,
    /// A message for the device's user; a negative id ends the session.
    Notify {
        id: i64,
        text: String,
        time_to_completion: Option<u32>,
    },
}

/// One item of a response script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Apdu(Vec<u8>),
    Atr(Vec<u8>),
    /// The device gave up on the card (`E1 { 0C reason }`).
    Close(String),
}

/// A response script: the items in order and the number of C-APDUs executed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseScript {
    pub items: Vec<Response>,
    pub executed: u32,
}

impl ResponseScript {
    /// The R-APDUs, in order.
    pub fn apdus(&self) -> impl Iterator<Item = &[u8]> {
        self.items.iter().filter_map(|r| match r {
            Response::Apdu(a) => Some(a.as_slice()),
            _ => None,
        })
    }

    /// The reason the device closed, if it did.
    pub fn close_reason(&self) -> Option<&str> {
        self.items.iter().find_map(|r| match r {
            Response::Close(c) => Some(c.as_str()),
            _ => None,
        })
    }
}

fn outer<'a>(input: &'a [u8], want: u8) -> Result<Vec<Item<'a>>, RamError> {
    let (item, rest) = tlv::parse(input)?;
    if item.tag != want {
        return Err(RamError::UnexpectedTag(item.tag));
    }
    if !rest.is_empty() {
        return Err(RamError::TrailingData);
    }
    tlv::parse_all(item.value)
}

fn uint(v: &[u8]) -> Result<u32, RamError> {
    u32::try_from(tlv::decode_int(v)?).map_err(|_| RamError::BadInteger)
}

fn utf8(v: &[u8]) -> Result<String, RamError> {
    String::from_utf8(v.to_vec()).map_err(|_| RamError::BadText)
}

impl Initiation {
    /// The initiation with only the ATR, as the C client sends it.
    pub fn new(atr: Vec<u8>) -> Self {
        Self {
            atr,
            max_capdu: None,
            max_rapdu: None,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, RamError> {
        let mut v = Vec::new();
        tlv::write(&mut v, tag::RESET_ATR, &self.atr)?;
        if let Some(n) = self.max_capdu {
            tlv::write(&mut v, tag::MAX_CAPDU, &tlv::encode_int(i64::from(n)))?;
        }
        if let Some(n) = self.max_rapdu {
            tlv::write(&mut v, tag::MAX_RAPDU, &tlv::encode_int(i64::from(n)))?;
        }
        let mut out = Vec::new();
        tlv::write(&mut out, tag::INITIATION, &v)?;
        Ok(out)
    }

    pub fn decode(input: &[u8]) -> Result<Self, RamError> {
        let mut init = Self {
            atr: Vec::new(),
            max_capdu: None,
            max_rapdu: None,
        };
        let mut atr = None;
        for item in outer(input, tag::INITIATION)? {
            match item.tag {
                tag::RESET_ATR => atr = Some(item.value.to_vec()),
                tag::MAX_CAPDU => init.max_capdu = Some(uint(item.value)?),
                tag::MAX_RAPDU => init.max_rapdu = Some(uint(item.value)?),
                t => return Err(RamError::UnexpectedTag(t)),
            }
        }
        init.atr = atr.ok_or(RamError::MissingAtr)?;
        Ok(init)
    }
}

/// Encodes a command script (only `22`, `C0` and `E0`: anything else stops the C client).
pub fn encode_commands(commands: &[Command]) -> Result<Vec<u8>, RamError> {
    let mut v = Vec::new();
    for c in commands {
        match c {
            Command::Apdu(a) => tlv::write(&mut v, tag::C_APDU, a)?,
            Command::Reset => tlv::write(&mut v, tag::RESET_ATR, &[])?,
            Command::Notify {
                id,
                text,
                time_to_completion,
            } => {
                let mut n = Vec::new();
                tlv::write(&mut n, tag::INTEGER, &tlv::encode_int(*id))?;
                tlv::write(&mut n, tag::UTF8, text.as_bytes())?;
                if let Some(t) = time_to_completion {
                    tlv::write(
                        &mut n,
                        tag::TIME_TO_COMPLETION,
                        &tlv::encode_int(i64::from(*t)),
                    )?;
                }
                tlv::write(&mut v, tag::NOTIFY, &n)?;
            }
        }
    }
    let mut out = Vec::new();
    tlv::write(&mut out, tag::COMMAND_SCRIPT, &v)?;
    Ok(out)
}

/// Decodes a command script (what the device does).
pub fn decode_commands(input: &[u8]) -> Result<Vec<Command>, RamError> {
    outer(input, tag::COMMAND_SCRIPT)?
        .into_iter()
        .map(|item| match item.tag {
            tag::C_APDU => Ok(Command::Apdu(item.value.to_vec())),
            tag::RESET_ATR if item.value.is_empty() => Ok(Command::Reset),
            tag::NOTIFY => {
                let (mut id, mut text, mut ttc) = (None, None, None);
                for n in tlv::parse_all(item.value)? {
                    match n.tag {
                        tag::INTEGER => id = Some(tlv::decode_int(n.value)?),
                        tag::UTF8 => text = Some(utf8(n.value)?),
                        tag::TIME_TO_COMPLETION => ttc = Some(uint(n.value)?),
                        t => return Err(RamError::UnexpectedTag(t)),
                    }
                }
                Ok(Command::Notify {
                    id: id.ok_or(RamError::BadNotify)?,
                    text: text.unwrap_or_default(),
                    time_to_completion: ttc,
                })
            }
            t => Err(RamError::UnexpectedTag(t)),
        })
        .collect()
}

impl ResponseScript {
    /// Encodes as the C client does: items in order, then `80` with the count.
    pub fn encode(&self) -> Result<Vec<u8>, RamError> {
        let mut v = Vec::new();
        for r in &self.items {
            match r {
                Response::Apdu(a) => tlv::write(&mut v, tag::R_APDU, a)?,
                Response::Atr(a) => tlv::write(&mut v, tag::RESET_ATR, a)?,
                Response::Close(reason) => {
                    let mut c = Vec::new();
                    tlv::write(&mut c, tag::UTF8, reason.as_bytes())?;
                    tlv::write(&mut v, tag::CLOSE, &c)?;
                }
            }
        }
        tlv::write(
            &mut v,
            tag::EXECUTED,
            &tlv::encode_int(i64::from(self.executed)),
        )?;
        let mut out = Vec::new();
        tlv::write(&mut out, tag::RESPONSE_SCRIPT, &v)?;
        Ok(out)
    }

    /// Decodes a response script; the count is read as a full INTEGER wherever it stands.
    pub fn decode(input: &[u8]) -> Result<Self, RamError> {
        let mut script = Self::default();
        let mut executed = None;
        for item in outer(input, tag::RESPONSE_SCRIPT)? {
            match item.tag {
                tag::R_APDU => script.items.push(Response::Apdu(item.value.to_vec())),
                tag::RESET_ATR => script.items.push(Response::Atr(item.value.to_vec())),
                tag::CLOSE => {
                    let reason = tlv::parse_all(item.value)?
                        .into_iter()
                        .find(|t| t.tag == tag::UTF8)
                        .map(|t| utf8(t.value))
                        .transpose()?
                        .unwrap_or_default();
                    script.items.push(Response::Close(reason));
                }
                tag::EXECUTED => executed = Some(uint(item.value)?),
                t => return Err(RamError::UnexpectedTag(t)),
            }
        }
        script.executed = executed.ok_or(RamError::MissingCount)?;
        Ok(script)
    }
}
