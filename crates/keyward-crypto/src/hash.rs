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
    pub const ALL: [Self; 5] = [
        Self::Sha1,
        Self::Sha224,
        Self::Sha256,
        Self::Sha384,
        Self::Sha512,
    ];

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
        Self::ALL.into_iter().find(|h| h.output_len() == len)
    }

    /// DER prefix of a PKCS#1 DigestInfo for this hash (the hash value follows it).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Self::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04,
                0x14,
            ],
            Self::Sha224 => &DI_SHA2[0],
            Self::Sha256 => &DI_SHA2[1],
            Self::Sha384 => &DI_SHA2[2],
            Self::Sha512 => &DI_SHA2[3],
        }
    }

    /// Splits a DigestInfo into its hash algorithm and value.
    pub fn split_digest_info(data: &[u8]) -> Option<(Self, &[u8])> {
        Self::ALL.into_iter().find_map(|h| {
            data.strip_prefix(h.digest_info_prefix())
                .filter(|v| v.len() == h.output_len())
                .map(|v| (h, v))
        })
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

/// DigestInfo prefixes of SHA-224/256/384/512 (OIDs 2.16.840.1.101.3.4.2.4/1/2/3).
const DI_SHA2: [[u8; 19]; 4] = {
    const fn di(total: u8, oid_last: u8, len: u8) -> [u8; 19] {
        [
            0x30, total, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            oid_last, 0x05, 0x00, 0x04, len,
        ]
    }
    [
        di(0x2D, 0x04, 28),
        di(0x31, 0x01, 32),
        di(0x41, 0x02, 48),
        di(0x51, 0x03, 64),
    ]
};

/// PBKDF2 with HMAC-SHA-256 (RFC 8018): a key of `out.len()` bytes from a password.
pub fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    let Some(rounds) = std::num::NonZeroU32::new(iterations.max(1)) else {
        return;
    };
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password,
        out,
    );
}

#[cfg(test)]
mod pbkdf2_tests {
    /// RFC 7914 §11: PBKDF2-HMAC-SHA256 test vector ("passwd", "salt", c = 1, dkLen = 64).
    #[test]
    fn rfc7914_vector() {
        let mut out = [0u8; 64];
        super::pbkdf2_sha256(b"passwd", b"salt", 1, &mut out);
        assert_eq!(
            hex::encode(out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
    }
}
