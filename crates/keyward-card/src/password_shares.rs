//! n-of-m sharing of a DKEK share file's password, as OpenSC's `sc-hsm-tool` does it: the
//! password is 8 random bytes (first byte 01..7F, so it is a 63-bit number that survives the
//! round trip through minimal big-endian bytes), shared by Shamir's scheme over the field of a
//! random 64-bit safe prime; a share is `(id, value)` with ids 1..n.

use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharesError {
    #[error("a threshold of 2..=n and 3..=9 shares are needed")]
    Parameters,
    #[error("shares must have distinct ids in 1..=9 and values below the prime")]
    Share,
    #[error("the prime is not a 64-bit prime")]
    Prime,
    #[error("no random numbers")]
    Random,
}

/// One share as sc-hsm-tool prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: u64,
    pub value: u64,
}

fn mul(a: u64, b: u64, p: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) % u128::from(p)) as u64
}

fn add(a: u64, b: u64, p: u64) -> u64 {
    ((u128::from(a) + u128::from(b)) % u128::from(p)) as u64
}

fn pow(mut b: u64, mut e: u64, p: u64) -> u64 {
    let mut r = 1 % p;
    b %= p;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, b, p);
        }
        b = mul(b, b, p);
        e >>= 1;
    }
    r
}

/// Deterministic Miller-Rabin for 64-bit numbers (these bases suffice below 2^64).
pub fn is_prime(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for b in BASES {
        if n.is_multiple_of(b) {
            return n == b;
        }
    }
    let (mut d, mut s) = (n - 1, 0);
    while d.is_multiple_of(2) {
        d /= 2;
        s += 1;
    }
    'bases: for a in BASES {
        let mut x = pow(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x, n);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

fn random_u64() -> Result<u64, SharesError> {
    let b = keyward_crypto::random(8).map_err(|_| SharesError::Random)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(&b);
    Ok(u64::from_be_bytes(a))
}

/// A random 64-bit safe prime `p = 2q + 1` (top bit set).
fn safe_prime() -> Result<u64, SharesError> {
    loop {
        let q = (random_u64()? >> 1) | (1 << 62) | 1;
        if is_prime(q) && is_prime(2 * q + 1) {
            return Ok(2 * q + 1);
        }
    }
}

/// A split password: the password (8 bytes), the prime, the shares.
pub type Split = (Zeroizing<[u8; 8]>, u64, Vec<Share>);

/// A new password and its `total` shares, `threshold` of which recover it.
pub fn split(threshold: u64, total: u64) -> Result<Split, SharesError> {
    if !(3..=9).contains(&total) || !(2..=total).contains(&threshold) {
        return Err(SharesError::Parameters);
    }
    let mut password = Zeroizing::new([0u8; 8]);
    loop {
        password.copy_from_slice(&keyward_crypto::random(8).map_err(|_| SharesError::Random)?);
        password[0] &= 0x7F;
        if password[0] != 0 {
            break;
        }
    }
    let secret = u64::from_be_bytes(*password);
    let p = safe_prime()?;
    let mut coefficients = Zeroizing::new(vec![secret]);
    for _ in 1..threshold {
        coefficients.push(random_u64()? % p);
    }
    let shares = (1..=total)
        .map(|x| {
            // Horner's rule, highest coefficient first.
            let value = coefficients
                .iter()
                .rev()
                .fold(0, |acc, c| add(mul(acc, x, p), *c, p));
            Share { id: x, value }
        })
        .collect();
    Ok((password, p, shares))
}

/// The password from `shares` (at least the threshold) over `prime`.
pub fn recover(prime: u64, shares: &[Share]) -> Result<Zeroizing<[u8; 8]>, SharesError> {
    if !is_prime(prime) || prime < (1 << 63) {
        return Err(SharesError::Prime);
    }
    for (i, s) in shares.iter().enumerate() {
        if !(1..=9).contains(&s.id) || s.value >= prime || shares[..i].iter().any(|t| t.id == s.id)
        {
            return Err(SharesError::Share);
        }
    }
    let mut secret = 0u64;
    for (i, si) in shares.iter().enumerate() {
        let (mut num, mut den) = (1u64, 1u64);
        for (j, sj) in shares.iter().enumerate() {
            if i != j {
                num = mul(num, sj.id, prime);
                den = mul(den, add(sj.id, prime - si.id, prime), prime);
            }
        }
        let basis = mul(num, pow(den, prime - 2, prime), prime);
        secret = add(secret, mul(si.value, basis, prime), prime);
    }
    Ok(Zeroizing::new(secret.to_be_bytes()))
}

/// `xx:xx:…` of a number's minimal big-endian bytes (OpenSSL's `BN_bn2bin`).
pub fn colon_hex(v: u64) -> String {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count().min(7);
    b[skip..]
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A number from hex with optional `:` or space separators.
pub fn parse_hex(s: &str) -> Option<u64> {
    let digits: String = s.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(&digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A 2-of-3 example worked out by hand with sc-hsm-tool's arithmetic.
    #[test]
    fn a_worked_example() {
        let p = parse_hex("f5:56:46:c9:a5:a1:01:87").unwrap();
        assert!(is_prime(p) && is_prime((p - 1) / 2), "a safe prime");
        let shares = [
            Share {
                id: 1,
                value: parse_hex("4c:88:be:de:eb:1e:32:29").unwrap(),
            },
            Share {
                id: 2,
                value: parse_hex("4d:ac:04:46:74:ca:00:18").unwrap(),
            },
            Share {
                id: 3,
                value: parse_hex("4e:cf:49:ad:fe:75:ce:07").unwrap(),
            },
        ];
        for pair in [[0, 2], [1, 2], [0, 1]] {
            let two = [shares[pair[0]].clone(), shares[pair[1]].clone()];
            assert_eq!(&*recover(p, &two).unwrap(), b"Keyward:");
        }
        assert_ne!(&*recover(p, &shares[..1]).unwrap(), b"Keyward:");
        assert_eq!(colon_hex(p), "f5:56:46:c9:a5:a1:01:87");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn threshold_shares_recover_fewer_do_not(total in 3u64..=9, t in 2u64..=9) {
            let threshold = t.min(total);
            let (password, p, shares) = split(threshold, total).unwrap();
            prop_assert!(password[0] != 0 && password[0] < 0x80);
            let picked: Vec<Share> = shares.iter().rev().take(threshold as usize).cloned().collect();
            prop_assert_eq!(&*recover(p, &picked).unwrap(), &*password);
            let fewer: Vec<Share> = shares.iter().take(threshold as usize - 1).cloned().collect();
            if !fewer.is_empty() {
                prop_assert_ne!(&*recover(p, &fewer).unwrap(), &*password);
            }
        }

        #[test]
        fn parsing_never_panics(s in ".{0,40}", p in any::<u64>(), id in any::<u64>(), v in any::<u64>()) {
            let _ = parse_hex(&s);
            let _ = recover(p, &[Share { id, value: v }, Share { id: id ^ 1, value: v }]);
        }
    }
}
