//! The device's firewall between a back end and its element. Commands under secure messaging
//! (ISO SM or GlobalPlatform SCP, flagged in the class byte) pass: the element checks their MACs,
//! so nobody but the end-to-end peer can make them. Plain commands pass only if the service
//! needs them and they cannot use or change what the element protects — so an impersonated or
//! intercepted back end cannot, say, sign with a key while the device's PIN is verified.

use crate::client::Card;

/// A plain command the device relays: class, instruction and, if fixed, P1-P2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainRule {
    pub cla: u8,
    pub ins: u8,
    pub p1p2: Option<[u8; 2]>,
}

const fn rule(cla: u8, ins: u8, p1p2: Option<[u8; 2]>) -> PlainRule {
    PlainRule { cla, ins, p1p2 }
}

/// What production and provisioning send in plain: SELECT, INITIALIZE UPDATE (opens SCP03),
/// READ BINARY of EF.C_DevAut (the public device chain), ENUMERATE OBJECTS, MSE SET AT and
/// GENERAL AUTHENTICATE (chip authentication), GET RESPONSE, GET DATA.
pub const BACK_END_SERVICES: &[PlainRule] = &[
    rule(0x00, 0xA4, None),
    rule(0x80, 0x50, None),
    rule(0x00, 0xB1, Some([0x2F, 0x02])),
    rule(0x80, 0x58, None),
    rule(0x00, 0x22, None),
    rule(0x00, 0x86, None),
    rule(0x00, 0xC0, None),
    rule(0x00, 0xCA, None),
    rule(0x80, 0xCA, None),
];

/// Status word answered for a refused command: security status not satisfied.
pub const REFUSED: [u8; 2] = [0x69, 0x82];

/// Whether the class byte announces secure messaging (ISO b4-b3, GP `84`), first interindustry
/// and proprietary classes.
pub fn secure_messaging(cla: u8) -> bool {
    cla & 0x40 == 0 && cla & 0x0C != 0
}

/// Whether `apdu` may pass under `rules`.
pub fn allowed(rules: &[PlainRule], apdu: &[u8]) -> bool {
    let [cla, ins, p1, p2, ..] = *apdu else {
        return false;
    };
    secure_messaging(cla)
        || rules
            .iter()
            .any(|r| r.cla == cla && r.ins == ins && r.p1p2.is_none_or(|fixed| fixed == [p1, p2]))
}

/// A card behind the firewall; refused commands never reach the element.
pub struct Guarded<'a, C: Card + ?Sized> {
    card: &'a mut C,
    rules: &'a [PlainRule],
    /// Headers (CLA INS P1 P2) of the commands refused so far.
    pub refused: Vec<[u8; 4]>,
}

impl<'a, C: Card + ?Sized> Guarded<'a, C> {
    pub fn new(card: &'a mut C, rules: &'a [PlainRule]) -> Self {
        Self {
            card,
            rules,
            refused: Vec::new(),
        }
    }
}

impl<C: Card + ?Sized> Card for Guarded<'_, C> {
    fn atr(&mut self) -> Vec<u8> {
        self.card.atr()
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
        if allowed(self.rules, apdu) {
            return self.card.transmit(apdu);
        }
        let mut header = [0u8; 4];
        for (h, b) in header.iter_mut().zip(apdu) {
            *h = *b;
        }
        tracing::warn!(header = %hex::encode_upper(header), "command refused by the device's firewall");
        self.refused.push(header);
        Ok(REFUSED.to_vec())
    }

    fn reset(&mut self) -> Result<Vec<u8>, String> {
        self.card.reset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_use_of_keys_is_refused_secure_messaging_passes() {
        let ok = |a: &[u8]| allowed(BACK_END_SERVICES, a);
        assert!(ok(&[0x00, 0xA4, 0x04, 0x00, 0x01, 0xE8]));
        assert!(ok(&[
            0x00, 0xB1, 0x2F, 0x02, 0x04, 0x54, 0x02, 0x00, 0x00, 0x00
        ]));
        assert!(ok(&[0x0C, 0x46, 0x01, 0x00, 0x00]), "ISO SM");
        assert!(
            ok(&[0x8C, 0x68, 0x01, 0x73, 0x00]),
            "ISO SM, proprietary class"
        );
        assert!(ok(&[0x84, 0xE2, 0x88, 0x00, 0x00]), "SCP03");
        for refused in [
            &[0x80, 0x68, 0x01, 0x73, 0x20][..], // SIGN
            &[0x80, 0x62, 0x01, 0x81, 0x00],     // DECIPHER
            &[0x00, 0x46, 0x01, 0x00, 0x00],     // GENERATE ASYMMETRIC KEY PAIR
            &[0x00, 0x24, 0x00, 0x81, 0x00],     // CHANGE REFERENCE DATA
            &[0x00, 0x20, 0x00, 0x81, 0x00],     // VERIFY
            &[0x00, 0xB1, 0xCD, 0x01, 0x00],     // READ BINARY of a private data object
            &[0x00, 0xD7, 0x2F, 0x02, 0x00],     // UPDATE BINARY
            &[0x00, 0xE4, 0x02, 0x00, 0x00],     // DELETE FILE
            &[0x4C, 0x68, 0x01, 0x73, 0x00],     // further interindustry class
            &[0x00, 0xA4],                       // too short to be a command
        ] {
            assert!(!ok(refused), "{refused:02X?}");
        }
    }
}
