use sha2::Digest;

/// The hash functions of the SmartCard-HSM algorithm ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Self::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha224 => 28,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The hash whose output has `len` bytes (how PSS over a supplied hash learns the hash).
    pub fn from_output_len(len: usize) -> Option<Self> {
        [Self::Sha1, Self::Sha224, Self::Sha256, Self::Sha384, Self::Sha512]
            .into_iter()
            .find(|h| h.output_len() == len)
    }

    /// The hash of algorithm-id low nibble 1..5 (x1 = SHA-1 … x5 = SHA-512).
    pub fn from_alg_nibble(n: u8) -> Option<Self> {
        match n {
            1 => Some(Self::Sha1),
            2 => Some(Self::Sha224),
            3 => Some(Self::Sha256),
            4 => Some(Self::Sha384),
            5 => Some(Self::Sha512),
            _ => None,
        }
    }
}
