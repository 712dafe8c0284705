//! GENERATE ASYMMETRIC KEY PAIR (with the attestation: an authenticated CV request signed by the
//! device key) and GENERATE SYMMETRIC KEY.

use keyward_apdu::{CommandView, Response, StatusWord as Sw, tlv};
use keyward_cvc::{AuthenticatedRequest, Body, Certificate, EcDomain, PublicKey, oid, tag};

use crate::applet::{Applet, CmdResult, Persist, fid};
use crate::state::{HexBytes, KeyMaterial, KeyObject, SecretBytes};
use keyward_crypto::{self as crypto, Curve, EcKey, PrivateKey, RsaKey};

/// What a GAKP template asks for.
struct KeySpec<'a> {
    car: Option<&'a [u8]>,
    chr: Option<&'a [u8]>,
    algorithm: &'a [u8],
    kind: KeyKind,
    usage: Usage,
}

enum KeyKind {
    Rsa { bits: usize },
    Ec(Curve),
}

/// Key usage controls shared by asymmetric and symmetric keys (tags `90`, `91`, `92`).
#[derive(Default)]
struct Usage {
    use_counter: Option<u32>,
    algorithms: Option<Vec<u8>>,
    domain: Option<u8>,
}

impl Usage {
    /// Takes a usage-control TLV; false if the tag is not one.
    fn take(&mut self, tag: u32, value: &[u8]) -> Result<bool, Sw> {
        match tag {
            0x90 => {
                let v: [u8; 4] = value.try_into().map_err(|_| Sw::WRONG_DATA)?;
                let n = u32::from_be_bytes(v);
                if n == 0 {
                    return Err(Sw::WRONG_DATA);
                }
                self.use_counter = Some(n);
            }
            0x91 if (1..=16).contains(&value.len()) => self.algorithms = Some(value.to_vec()),
            0x92 => {
                self.domain = Some(
                    *value
                        .first()
                        .filter(|_| value.len() == 1)
                        .ok_or(Sw::WRONG_DATA)?,
                )
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn into_object(self, material: KeyMaterial) -> KeyObject {
        KeyObject {
            material,
            use_counter: self.use_counter,
            algorithms: self.algorithms.map(HexBytes),
            domain: self.domain,
        }
    }
}

impl<'a> KeySpec<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, Sw> {
        let mut car = None;
        let mut chr = None;
        let mut key = None;
        let mut usage = Usage::default();
        for item in tlv::TlvIter::new(data) {
            let item = item.map_err(|_| Sw::WRONG_DATA)?;
            match item.tag.0 {
                tag::CPI if item.value == [0] => {}
                tag::CAR => car = Some(item.value),
                tag::CHR => chr = Some(item.value),
                tag::PUBLIC_KEY => key = Some(item.value),
                // Outer CAR of old firmware's P2 form: the device key always signs here.
                0x45 => {}
                t if usage.take(t, item.value)? => {}
                _ => return Err(Sw::WRONG_DATA),
            }
        }
        let (algorithm, kind) = parse_key_template(key.ok_or(Sw::WRONG_DATA)?)?;
        Ok(Self {
            car,
            chr,
            algorithm,
            kind,
            usage,
        })
    }
}

fn parse_key_template(value: &[u8]) -> Result<(&[u8], KeyKind), Sw> {
    let items = tlv::parse_all(value).map_err(|_| Sw::WRONG_DATA)?;
    let get = |t: u32| items.iter().find(|i| i.tag.0 == t).map(|i| i.value);
    let algorithm = get(tag::OID).ok_or(Sw::WRONG_DATA)?;
    if oid::is_rsa(algorithm) {
        let bits = get(0x02).ok_or(Sw::WRONG_DATA)?;
        let bits = bits.iter().fold(0usize, |a, b| {
            a.saturating_mul(256).saturating_add(usize::from(*b))
        });
        // Only F4 is generated; absent means F4 too.
        if get(0x82).is_some_and(|e| strip(e) != [1, 0, 1]) {
            return Err(Sw::WRONG_DATA);
        }
        if !crypto::rsa_sizes().contains(&bits) {
            return Err(Sw::WRONG_DATA);
        }
        return Ok((algorithm, KeyKind::Rsa { bits }));
    }
    if !oid::is_ecdsa(algorithm) {
        return Err(Sw::WRONG_DATA);
    }
    let part = |t: u32| get(t).map(<[u8]>::to_vec).ok_or(Sw::WRONG_DATA);
    let domain = EcDomain {
        p: part(0x81)?,
        a: part(0x82)?,
        b: part(0x83)?,
        g: part(0x84)?,
        n: part(0x85)?,
        h: part(0x87).unwrap_or_else(|_| vec![1]),
    };
    let curve = Curve::from_domain(&domain).ok_or(Sw::WRONG_DATA)?;
    Ok((algorithm, KeyKind::Ec(curve)))
}

fn strip(v: &[u8]) -> &[u8] {
    let i = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    &v[i..]
}

impl<P: Persist> Applet<P> {
    /// A key may belong to a key domain only once that domain's DKEK is complete.
    fn check_domain(&self, domain: Option<u8>) -> Result<(), Sw> {
        let Some(kd) = domain else {
            return Ok(());
        };
        match self.require_initialized()?.domain(kd) {
            Some((_, d)) if d.outstanding == 0 => Ok(()),
            Some(_) => Err(Sw::CONDITIONS_NOT_SATISFIED),
            None => Err(Sw::REFERENCE_NOT_FOUND),
        }
    }

    fn check_key_creation(&self, kid: u8) -> Result<(), Sw> {
        let config = self.require_initialized()?;
        self.require_user()?;
        if kid == 0 {
            // PrK.DevAut is created once, with the element.
            return Err(Sw::INCORRECT_P1P2);
        }
        if config.dkek.as_ref().is_some_and(|d| d.outstanding > 0) {
            // Keys must not exist before the DKEK they would be backed up under is complete.
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        Ok(())
    }

    pub(crate) fn generate_key_pair(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let kid = cmd.p1;
        if cmd.p2 != 0 {
            return Err(Sw::INCORRECT_P1P2);
        }
        self.check_key_creation(kid)?;
        let spec = KeySpec::parse(cmd.data)?;
        self.check_domain(spec.usage.domain)?;
        let (key, material, public_key) = match spec.kind {
            KeyKind::Rsa { bits } => {
                let k = RsaKey::generate(bits).map_err(|_| Sw::UNKNOWN)?;
                let (n, e, d, p, q) = k.parts().map_err(|_| Sw::UNKNOWN)?;
                let public = PublicKey::Rsa {
                    algorithm: spec.algorithm.to_vec(),
                    modulus: n.clone(),
                    exponent: e.clone(),
                };
                let material = KeyMaterial::Rsa {
                    n: HexBytes(n),
                    e: HexBytes(e),
                    d: SecretBytes::from_zeroizing(d),
                    p: SecretBytes::from_zeroizing(p),
                    q: SecretBytes::from_zeroizing(q),
                };
                (PrivateKey::Rsa(Box::new(k)), material, public)
            }
            KeyKind::Ec(curve) => {
                let k = EcKey::generate(curve).map_err(|_| Sw::UNKNOWN)?;
                let public = PublicKey::Ec {
                    algorithm: spec.algorithm.to_vec(),
                    domain: Some(curve.domain()),
                    point: k.public_point().to_vec(),
                };
                let material = KeyMaterial::Ec {
                    curve,
                    private: SecretBytes::new(k.private_bytes().to_vec()),
                    public: HexBytes(k.public_point().to_vec()),
                };
                (PrivateKey::Ec(k), material, public)
            }
        };
        let body = Body {
            cpi: 0,
            car: spec.car.map(<[u8]>::to_vec),
            public_key,
            chr: spec
                .chr
                .map_or_else(|| self.default_chr(kid), <[u8]>::to_vec),
            chat: None,
            effective: None,
            expiration: None,
            extensions: None,
        };
        let attestation = self.attest(&key, spec.algorithm, body)?;
        let object = spec.usage.into_object(material);
        self.mutate(|s| {
            s.keys.insert(kid, object);
            s.files.insert(
                u16::from_be_bytes([fid::CERT_PREFIX, kid]),
                HexBytes(attestation.clone()),
            );
            Ok(())
        })?;
        self.invalidate_keys();
        Ok(Response::ok(attestation))
    }

    /// CHR for a request whose template names none: the device id's serial part and the key id.
    fn default_chr(&self, kid: u8) -> Vec<u8> {
        let chr = self.state.device_chr();
        let serial = &chr[..chr.len().saturating_sub(5)];
        format!("{serial}{kid:05}").into_bytes()
    }

    /// Self-signs the request with the new key (proof of possession), then wraps it in an
    /// authenticated request signed by PrK.DevAut (proof of origin).
    fn attest(&self, key: &PrivateKey, algorithm: &[u8], body: Body) -> Result<Vec<u8>, Sw> {
        let inner_sig =
            keyward_cvc::signature::sign(key, algorithm, &body.encode().map_err(|_| Sw::UNKNOWN)?)
                .map_err(|_| Sw::UNKNOWN)?;
        let request = Certificate::assemble(body, inner_sig).map_err(|_| Sw::UNKNOWN)?;
        let device_chr = self.state.device_chr().as_bytes().to_vec();
        let signed = AuthenticatedRequest::outer_signed_data(&request, &device_chr)
            .map_err(|_| Sw::UNKNOWN)?;
        let device = crate::dev_pki::device_key(&self.state).map_err(|_| Sw::UNKNOWN)?;
        let outer_sig = keyward_cvc::signature::sign(&device, oid::TA_ECDSA_SHA256, &signed)
            .map_err(|_| Sw::UNKNOWN)?;
        let ar = AuthenticatedRequest::assemble(request, device_chr, outer_sig)
            .map_err(|_| Sw::UNKNOWN)?;
        Ok(ar.raw)
    }

    pub(crate) fn generate_symmetric_key(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let kid = cmd.p1;
        let len = match cmd.p2 {
            0xB0 => 16,
            0xB1 => 24,
            0xB2 => 32,
            _ => return Err(Sw::INCORRECT_P1P2),
        };
        self.check_key_creation(kid)?;
        let mut usage = Usage::default();
        for item in tlv::TlvIter::new(cmd.data) {
            let item = item.map_err(|_| Sw::WRONG_DATA)?;
            // `93` names a wrapping key for import, which arrives with the DKEK work.
            if !usage.take(item.tag.0, item.value)? {
                return Err(Sw::WRONG_DATA);
            }
        }
        self.check_domain(usage.domain)?;
        let key = crypto::random(len).map_err(|_| Sw::UNKNOWN)?;
        let object = usage.into_object(KeyMaterial::Aes {
            key: SecretBytes::from_zeroizing(key),
        });
        self.mutate(|s| {
            s.keys.insert(kid, object);
            s.files.remove(&u16::from_be_bytes([fid::CERT_PREFIX, kid]));
            Ok(())
        })?;
        self.invalidate_keys();
        Ok(Response::ok(Vec::new()))
    }
}
