//! Symmetric key files: the Key for Secure Transport a producer shares with the chip maker, the
//! producer's master key (KMC), a server's master key. Text, one `name = hex` per line, `#`
//! comments; e.g. `kvn = FF`, `enc = …`, `mac = …`, `dek = …`, or `key = …` alone for a single
//! key (an SCP03 key set then uses it as ENC, MAC and DEK alike).

use zeroize::Zeroizing;

use crate::scp03::StaticKeys;

/// Why a key file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFileError {
    #[error("line {0}: expected `name = hex`")]
    Syntax(usize),
    #[error("line {0}: the value is not hex")]
    NotHex(usize),
    #[error("`{0}` appears twice")]
    Duplicate(String),
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{0}` has the wrong length")]
    Length(&'static str),
}

/// A parsed key file; values are zeroized when dropped.
pub struct KeyFile {
    entries: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        write!(f, "KeyFile({names:?})")
    }
}

impl KeyFile {
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let mut entries: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let (name, value) = line.split_once('=').ok_or(KeyFileError::Syntax(i + 1))?;
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(KeyFileError::Syntax(i + 1));
            }
            let value: String = value.split_whitespace().collect();
            let bytes = Zeroizing::new(decode_hex(&value).ok_or(KeyFileError::NotHex(i + 1))?);
            if entries.iter().any(|(n, _)| *n == name) {
                return Err(KeyFileError::Duplicate(name));
            }
            entries.push((name, bytes));
        }
        Ok(Self { entries })
    }

    /// Writes entries in the format `parse` reads.
    pub fn encode(entries: &[(&str, &[u8])]) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        for (name, value) in entries {
            out.push_str(name);
            out.push_str(" = ");
            for b in *value {
                out.push_str(&format!("{b:02X}"));
            }
            out.push('\n');
        }
        out
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A single AES key (`key`, or the entry named `name`), 16, 24 or 32 bytes.
    pub fn aes_key(&self, name: &'static str) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
        let v = self
            .get(name)
            .or_else(|| self.get("key"))
            .ok_or(KeyFileError::Missing(name))?;
        if ![16, 24, 32].contains(&v.len()) {
            return Err(KeyFileError::Length(name));
        }
        Ok(Zeroizing::new(v.to_vec()))
    }

    /// An SCP03 key set and its key version (`kvn`, default `FF`, the factory-key convention).
    pub fn scp03_key_set(&self) -> Result<(u8, StaticKeys), KeyFileError> {
        let kvn = match self.get("kvn") {
            None => 0xFF,
            Some([v]) => *v,
            Some(_) => return Err(KeyFileError::Length("kvn")),
        };
        let (enc, mac, dek) = (
            self.aes_key("enc")?,
            self.aes_key("mac")?,
            self.aes_key("dek")?,
        );
        let keys = StaticKeys::new(&enc, &mac, &dek).map_err(|_| KeyFileError::Length("enc"))?;
        Ok((kvn, keys))
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused(text in ".{0,200}") {
            if let Ok(f) = KeyFile::parse(&text) {
                let _ = f.scp03_key_set();
            }
        }

        #[test]
        fn encoded_entries_read_back(
            entries in prop::collection::btree_map("[a-z][a-z0-9_]{0,8}", prop::collection::vec(any::<u8>(), 1..40), 0..6)
        ) {
            let list: Vec<(&str, &[u8])> = entries.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            let f = KeyFile::parse(&KeyFile::encode(&list)).unwrap();
            for (k, v) in &entries {
                prop_assert_eq!(f.get(k), Some(v.as_slice()));
            }
        }
    }

    #[test]
    fn key_set_forms() {
        let one = KeyFile::parse("# KST\nkey = 404142434445464748494A4B4C4D4E4F\n").unwrap();
        let (kvn, k) = one.scp03_key_set().unwrap();
        assert_eq!(kvn, 0xFF);
        assert_eq!(k.enc.as_slice(), k.dek.as_slice());
        let three = KeyFile::parse(
            "kvn=01\nenc = 00112233445566778899AABBCCDDEEFF\nmac = 00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF\ndek=00112233445566778899AABBCCDDEEFF\n",
        )
        .unwrap();
        assert_eq!(
            three.scp03_key_set().unwrap_err(),
            KeyFileError::Length("enc")
        );
        let text = KeyFile::encode(&[("kvn", &[1]), ("key", &[7; 32])]);
        let (kvn, k) = KeyFile::parse(&text).unwrap().scp03_key_set().unwrap();
        assert_eq!((kvn, k.mac.as_slice()), (1, &[7u8; 32][..]));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            KeyFile::parse("key 0011").unwrap_err(),
            KeyFileError::Syntax(1)
        );
        assert_eq!(
            KeyFile::parse("\nkey = 0G").unwrap_err(),
            KeyFileError::NotHex(2)
        );
        assert_eq!(
            KeyFile::parse("a=00\na=01").unwrap_err(),
            KeyFileError::Duplicate("a".into())
        );
        assert_eq!(
            KeyFile::parse("").unwrap().scp03_key_set().unwrap_err(),
            KeyFileError::Missing("enc")
        );
    }
}
