use alloc::vec::Vec;

use crate::ApduError;

/// A parsed command APDU borrowing its data field (ISO 7816-4 §5.1, cases 1–4, short and extended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandView<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: &'a [u8],
    /// Maximum number of response bytes expected (1..=65536); `None` when the APDU has no Le field.
    pub le: Option<u32>,
    /// Whether the APDU used the extended-length encoding.
    pub extended: bool,
}

impl<'a> CommandView<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ApduError> {
        let (header, body) = bytes.split_first_chunk::<4>().ok_or(ApduError::TooShort)?;
        let [cla, ins, p1, p2] = *header;
        let mut cmd = CommandView {
            cla,
            ins,
            p1,
            p2,
            data: &[],
            le: None,
            extended: false,
        };
        match body {
            // Case 1.
            [] => {}
            // Case 2S.
            [le] => cmd.le = Some(short_le(*le)),
            // Extended length: a zero byte followed by at least two more.
            [0, rest @ ..] if rest.len() >= 2 => {
                cmd.extended = true;
                let (n, rest) = rest.split_at(2);
                let n = u16::from_be_bytes([n[0], n[1]]);
                if rest.is_empty() {
                    // Case 2E.
                    cmd.le = Some(extended_le(n));
                } else {
                    // Case 3E / 4E.
                    if n == 0 {
                        return Err(ApduError::ZeroLc);
                    }
                    let lc = usize::from(n);
                    if rest.len() < lc {
                        return Err(ApduError::LengthMismatch);
                    }
                    let (data, tail) = rest.split_at(lc);
                    cmd.data = data;
                    match tail {
                        [] => {}
                        [a, b] => cmd.le = Some(extended_le(u16::from_be_bytes([*a, *b]))),
                        _ => return Err(ApduError::LengthMismatch),
                    }
                }
            }
            // Case 3S / 4S.
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                if lc == 0 || rest.len() < lc {
                    return Err(ApduError::LengthMismatch);
                }
                let (data, tail) = rest.split_at(lc);
                cmd.data = data;
                match tail {
                    [] => {}
                    [le] => cmd.le = Some(short_le(*le)),
                    _ => return Err(ApduError::LengthMismatch),
                }
            }
        }
        Ok(cmd)
    }

    /// Le as a buffer size: 0 when absent.
    pub fn le_or_zero(&self) -> usize {
        self.le.map_or(0, |le| le as usize)
    }

    pub fn to_owned(&self) -> Command {
        Command {
            cla: self.cla,
            ins: self.ins,
            p1: self.p1,
            p2: self.p2,
            data: self.data.to_vec(),
            le: self.le,
            force_extended: self.extended,
        }
    }
}

fn short_le(b: u8) -> u32 {
    if b == 0 { 256 } else { u32::from(b) }
}

fn extended_le(n: u16) -> u32 {
    if n == 0 { 65536 } else { u32::from(n) }
}

/// An owned command APDU, encoded in the shortest form that fits unless extended length is forced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
    pub le: Option<u32>,
    pub force_extended: bool,
}

impl Command {
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Self {
            cla,
            ins,
            p1,
            p2,
            data: Vec::new(),
            le: None,
            force_extended: false,
        }
    }

    #[must_use]
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// Expect up to `le` response bytes (1..=65536).
    #[must_use]
    pub fn with_le(mut self, le: u32) -> Self {
        self.le = Some(le);
        self
    }

    #[must_use]
    pub fn extended(mut self) -> Self {
        self.force_extended = true;
        self
    }

    pub fn view(&self) -> CommandView<'_> {
        CommandView {
            cla: self.cla,
            ins: self.ins,
            p1: self.p1,
            p2: self.p2,
            data: &self.data,
            le: self.le,
            extended: self.is_extended(),
        }
    }

    fn is_extended(&self) -> bool {
        self.force_extended || self.data.len() > 255 || self.le.is_some_and(|le| le > 256)
    }

    pub fn encode(&self) -> Result<Vec<u8>, ApduError> {
        if self.data.len() > 65535 {
            return Err(ApduError::DataTooLong(self.data.len()));
        }
        if let Some(le) = self.le.filter(|le| !(1..=65536).contains(le)) {
            return Err(ApduError::LeOutOfRange(le));
        }
        let mut out = Vec::with_capacity(self.data.len() + 9);
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        // The range checks above make the narrowing casts below exact (65536/256 wrap to 0 as ISO wants).
        let case1 = self.data.is_empty() && self.le.is_none();
        if self.is_extended() && !case1 {
            out.push(0);
            if !self.data.is_empty() {
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
                out.extend_from_slice(&self.data);
            }
            if let Some(le) = self.le {
                out.extend_from_slice(&((le & 0xFFFF) as u16).to_be_bytes());
            }
        } else {
            if !self.data.is_empty() {
                out.push(self.data.len() as u8);
                out.extend_from_slice(&self.data);
            }
            if let Some(le) = self.le {
                out.push((le & 0xFF) as u8);
            }
        }
        Ok(out)
    }
}
