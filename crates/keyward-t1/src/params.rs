//! Link parameter blocks: the NXP ATR (answer to S(GET ATR) / S(soft reset)) and the GP CIP
//! (answer to S(CIP)), as far as the host needs them: block waiting time and IFSC.

use alloc::vec::Vec;

/// What the host takes from an ATR / CIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkParams {
    pub bwt_ms: u16,
    pub ifsc: u16,
}

/// Our element's vendor/issuer id in these blocks ("KWARD").
const VENDOR: [u8; 5] = *b"KWARD";

/// NXP UM11225 ATR: PVER ‖ vendor id (5) ‖ DLLP len ‖ BWT ‖ IFSC ‖ PLID ‖ PLP len ‖ PLP ‖ HB len ‖ HB.
pub fn nxp_atr(p: LinkParams, historical: &[u8]) -> Vec<u8> {
    let mut v = alloc::vec![0x00];
    v.extend_from_slice(&VENDOR);
    v.push(4);
    v.extend_from_slice(&p.bwt_ms.to_be_bytes());
    v.extend_from_slice(&p.ifsc.to_be_bytes());
    // PLID 2 (I2C); PLP: MCF 1000 kHz, config 00, MPOT 1 ms, RFU, SEGT 100 µs, WUT 0.
    v.extend_from_slice(&[
        0x02, 0x0B, 0x03, 0xE8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00,
    ]);
    v.push(historical.len() as u8);
    v.extend_from_slice(historical);
    v
}

/// GP CIP: PVER ‖ IIN len ‖ IIN ‖ PLID ‖ PLP len ‖ PLP ‖ DLLP len ‖ BWT ‖ IFSC ‖ HB len ‖ HB.
pub fn gp_cip(p: LinkParams, historical: &[u8]) -> Vec<u8> {
    let mut v = alloc::vec![0x01, 0x03];
    v.extend_from_slice(&VENDOR[..3]);
    // PLID 2 (I2C); PLP: config, PWT 25 ms, MCF 1000 kHz, PST 0, MPOT 10 (×100 µs), RWGT 10 µs.
    v.extend_from_slice(&[0x02, 0x08, 0x00, 0x19, 0x03, 0xE8, 0x00, 0x0A, 0x00, 0x0A]);
    v.push(4);
    v.extend_from_slice(&p.bwt_ms.to_be_bytes());
    v.extend_from_slice(&p.ifsc.to_be_bytes());
    v.push(historical.len() as u8);
    v.extend_from_slice(historical);
    v
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (h, t) = (b.get(..n)?, b.get(n..)?);
    *b = t;
    Some(h)
}

fn dllp(d: &[u8]) -> Option<LinkParams> {
    Some(LinkParams {
        bwt_ms: u16::from_be_bytes([*d.first()?, *d.get(1)?]),
        ifsc: u16::from_be_bytes([*d.get(2)?, *d.get(3)?]),
    })
}

/// Parses the DLLP out of an NXP ATR.
pub fn parse_nxp_atr(mut b: &[u8]) -> Option<LinkParams> {
    take(&mut b, 6)?;
    let n = usize::from(*take(&mut b, 1)?.first()?);
    dllp(take(&mut b, n)?)
}

/// Parses the DLLP out of a GP CIP.
pub fn parse_gp_cip(mut b: &[u8]) -> Option<LinkParams> {
    take(&mut b, 1)?;
    let iin = usize::from(*take(&mut b, 1)?.first()?);
    take(&mut b, iin + 1)?;
    let plp = usize::from(*take(&mut b, 1)?.first()?);
    take(&mut b, plp)?;
    let n = usize::from(*take(&mut b, 1)?.first()?);
    dllp(take(&mut b, n)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reference_atr() {
        let p = LinkParams {
            bwt_ms: 1000,
            ifsc: 254,
        };
        assert_eq!(parse_nxp_atr(&nxp_atr(p, b"KEYWARD")), Some(p));
        assert_eq!(parse_gp_cip(&gp_cip(p, b"KEYWARD")), Some(p));
        // A JCOP4 SE05x ATR (public example).
        let jcop = [
            0x00, 0xA0, 0x00, 0x00, 0x03, 0x96, 0x04, 0x03, 0xE8, 0x00, 0xFE, 0x02, 0x0B, 0x03,
            0xE8, 0x08, 0x01, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x0A, 0x4A, 0x43, 0x4F,
            0x50, 0x34, 0x20, 0x41, 0x54, 0x50, 0x4F,
        ];
        assert_eq!(
            parse_nxp_atr(&jcop),
            Some(LinkParams {
                bwt_ms: 1000,
                ifsc: 254
            })
        );
        assert_eq!(parse_nxp_atr(&[0, 1]), None);
        assert_eq!(parse_gp_cip(&[1, 9]), None);
    }
}
