//! T=1 blocks and their frames: NAD ‖ PCB ‖ LEN ‖ INF ‖ EDC.

use alloc::vec::Vec;

use thiserror::Error;

use crate::Profile;

/// R-block error indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RCode {
    Ok,
    /// EDC (or parity) error.
    Edc,
    /// Any other error.
    Other,
    /// NXP: start of frame missed / undefined.
    Undefined,
}

/// S-block types (the PCB's low five bits).
pub struct SKind;

impl SKind {
    pub const RESYNCH: u8 = 0x00;
    pub const IFS: u8 = 0x01;
    pub const ABORT: u8 = 0x02;
    pub const WTX: u8 = 0x03;
    /// GP: communication interface parameters (ISO: VPP error response).
    pub const CIP: u8 = 0x04;
    /// NXP: end of APDU session.
    pub const END_OF_SESSION: u8 = 0x05;
    /// NXP: chip reset; GP: RELEASE.
    pub const CHIP_RESET_OR_RELEASE: u8 = 0x06;
    /// NXP: get ATR.
    pub const GET_ATR: u8 = 0x07;
    /// NXP: interface soft reset; GP: software reset.
    pub const SOFT_RESET: u8 = 0x0F;
    /// NXP: deep power-down.
    pub const DEEP_POWER_DOWN: u8 = 0x1F;
}

/// One T=1 block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Information block: send sequence number (0/1), more-data bit, information field.
    I { ns: u8, more: bool, inf: Vec<u8> },
    /// Receive-ready block: the expected sequence number and an error indication.
    R { nr: u8, code: RCode },
    /// Supervisory block.
    S {
        kind: u8,
        response: bool,
        inf: Vec<u8>,
    },
}

/// Why a frame is not a valid block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame truncated")]
    Truncated,
    #[error("frame length does not match LEN")]
    LengthMismatch,
    #[error("error detection code mismatch")]
    BadEdc,
    #[error("unexpected node address {0:02X}")]
    BadNad(u8),
    #[error("invalid PCB {0:02X}")]
    BadPcb(u8),
    #[error("LEN {0} exceeds the information field size")]
    TooLong(usize),
}

impl Block {
    pub fn pcb(&self) -> u8 {
        match self {
            Self::I { ns, more, .. } => (ns & 1) << 6 | if *more { 0x20 } else { 0 },
            Self::R { nr, code } => {
                0x80 | (nr & 1) << 4
                    | match code {
                        RCode::Ok => 0,
                        RCode::Edc => 1,
                        RCode::Other => 2,
                        RCode::Undefined => 3,
                    }
            }
            Self::S { kind, response, .. } => {
                0xC0 | if *response { 0x20 } else { 0 } | (kind & 0x1F)
            }
        }
    }

    pub fn inf(&self) -> &[u8] {
        match self {
            Self::I { inf, .. } | Self::S { inf, .. } => inf,
            Self::R { .. } => &[],
        }
    }

    /// Encodes the block as a frame with node address `nad`.
    pub fn encode(&self, profile: &Profile, nad: u8) -> Vec<u8> {
        let inf = self.inf();
        let mut out = Vec::with_capacity(inf.len() + 6);
        out.push(nad);
        out.push(self.pcb());
        if profile.len_width() == 2 {
            out.extend_from_slice(&(inf.len() as u16).to_be_bytes());
        } else {
            out.push(inf.len() as u8);
        }
        out.extend_from_slice(inf);
        let edc = profile.edc(&out);
        out.extend_from_slice(&edc[..profile.edc_len()]);
        out
    }

    /// Decodes a complete frame, checking NAD, LEN, EDC and PCB.
    pub fn decode(profile: &Profile, expected_nad: u8, frame: &[u8]) -> Result<Self, FrameError> {
        let lw = profile.len_width();
        let el = profile.edc_len();
        if frame.len() < 2 + lw + el {
            return Err(FrameError::Truncated);
        }
        let len = if lw == 2 {
            usize::from(u16::from_be_bytes([frame[2], frame[3]]))
        } else {
            usize::from(frame[2])
        };
        if lw == 1 && len == 0xFF || len > profile.max_ifs() {
            return Err(FrameError::TooLong(len));
        }
        let body_len = 2 + lw + len;
        if frame.len() != body_len + el {
            return Err(if frame.len() < body_len + el {
                FrameError::Truncated
            } else {
                FrameError::LengthMismatch
            });
        }
        let (body, edc) = frame.split_at(body_len);
        if profile.edc(body)[..el] != *edc {
            return Err(FrameError::BadEdc);
        }
        if frame[0] != expected_nad {
            return Err(FrameError::BadNad(frame[0]));
        }
        let pcb = frame[1];
        let inf = body[2 + lw..].to_vec();
        match pcb {
            p if p & 0x80 == 0 => {
                if p & 0x1F != 0 {
                    return Err(FrameError::BadPcb(p));
                }
                Ok(Self::I {
                    ns: (p >> 6) & 1,
                    more: p & 0x20 != 0,
                    inf,
                })
            }
            p if p & 0xC0 == 0x80 => {
                if p & 0x2C != 0 || !inf.is_empty() {
                    return Err(FrameError::BadPcb(p));
                }
                let code = match p & 0x03 {
                    0 => RCode::Ok,
                    1 => RCode::Edc,
                    2 => RCode::Other,
                    _ => RCode::Undefined,
                };
                Ok(Self::R {
                    nr: (p >> 4) & 1,
                    code,
                })
            }
            p => Ok(Self::S {
                kind: p & 0x1F,
                response: p & 0x20 != 0,
                inf,
            }),
        }
    }

    /// The length of the frame starting at `bytes` once its header is complete, for streams.
    pub fn frame_len(profile: &Profile, bytes: &[u8]) -> Option<usize> {
        let lw = profile.len_width();
        let header = bytes.get(..2 + lw)?;
        let len = if lw == 2 {
            usize::from(u16::from_be_bytes([header[2], header[3]]))
        } else {
            usize::from(header[2])
        };
        Some(2 + lw + len + profile.edc_len())
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    #[test]
    fn reference_frames() {
        // NXP S(RESYNCH) and its response; GP frames; ISO I-block with LRC.
        let resynch = Block::S {
            kind: SKind::RESYNCH,
            response: false,
            inf: vec![],
        };
        assert_eq!(
            resynch.encode(&Profile::NXP_I2C, 0x5A),
            vec![0x5A, 0xC0, 0x00, 0xFF, 0xFC]
        );
        let resp = Block::S {
            kind: SKind::RESYNCH,
            response: true,
            inf: vec![],
        };
        assert_eq!(
            resp.encode(&Profile::NXP_I2C, 0xA5),
            vec![0xA5, 0xE0, 0x00, 0x3F, 0x19]
        );
        assert_eq!(
            Block::decode(&Profile::NXP_I2C, 0xA5, &[0xA5, 0xE0, 0x00, 0x3F, 0x19]),
            Ok(resp)
        );
        let end = Block::S {
            kind: SKind::END_OF_SESSION,
            response: false,
            inf: vec![],
        };
        assert_eq!(
            end.encode(&Profile::NXP_I2C, 0x5A),
            vec![0x5A, 0xC5, 0x00, 0x47, 0x82]
        );
        let ack = Block::R {
            nr: 0,
            code: RCode::Ok,
        };
        assert_eq!(
            ack.encode(&Profile::NXP_I2C, 0x5A),
            vec![0x5A, 0x80, 0x00, 0x99, 0xBA]
        );
        let cip = Block::S {
            kind: SKind::CIP,
            response: false,
            inf: vec![],
        };
        assert_eq!(
            cip.encode(&Profile::GP, 0x21),
            vec![0x21, 0xC4, 0x00, 0x00, 0x06, 0xCD]
        );
        let i = Block::I {
            ns: 0,
            more: false,
            inf: vec![0x00, 0xA4, 0x04, 0x00],
        };
        assert_eq!(
            i.encode(&Profile::GP, 0x21),
            vec![0x21, 0x00, 0x00, 0x04, 0x00, 0xA4, 0x04, 0x00, 0x92, 0xFA]
        );
        let iso = Block::I {
            ns: 0,
            more: false,
            inf: vec![0x00, 0xA4, 0x04, 0x00, 0x00],
        };
        assert_eq!(
            iso.encode(&Profile::ISO, 0),
            vec![0, 0, 5, 0x00, 0xA4, 0x04, 0x00, 0x00, 0xA5]
        );
    }

    #[test]
    fn rejects_bad_frames() {
        let p = Profile::NXP_I2C;
        assert_eq!(
            Block::decode(&p, 0xA5, &[0xA5, 0xE0, 0x00, 0x3F, 0x18]),
            Err(FrameError::BadEdc)
        );
        assert_eq!(
            Block::decode(&p, 0xA5, &[0xA5, 0xE0, 0x00, 0x3F]),
            Err(FrameError::Truncated)
        );
        assert_eq!(
            Block::decode(&p, 0x5A, &[0xA5, 0xE0, 0x00, 0x3F, 0x19]),
            Err(FrameError::BadNad(0xA5))
        );
        let bad_pcb = {
            let mut f = vec![0x5A, 0x01, 0x00];
            let e = p.edc(&f);
            f.extend_from_slice(&e);
            f
        };
        assert_eq!(
            Block::decode(&p, 0x5A, &bad_pcb),
            Err(FrameError::BadPcb(0x01))
        );
    }
}
