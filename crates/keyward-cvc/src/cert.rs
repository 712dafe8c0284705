use keyward_apdu::tlv::{self, Tlv};

use crate::{Body, CvcError, tag};

/// A CV certificate or self-signed request: `7F21 { 7F4E body, 5F37 signature }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub body: Body,
    /// The encoded `7F4E` exactly as received: the data the signature covers.
    pub body_raw: Vec<u8>,
    pub signature: Vec<u8>,
    /// The complete encoded `7F21`.
    pub raw: Vec<u8>,
}

impl Certificate {
    /// Parses one certificate from the front of `input`, returning the rest.
    pub fn parse_prefix(input: &[u8]) -> Result<(Self, &[u8]), CvcError> {
        let (outer, rest) = Tlv::parse(input)?;
        Ok((Self::from_tlv(&outer)?, rest))
    }

    /// Parses exactly one encoded certificate.
    pub fn parse(input: &[u8]) -> Result<Self, CvcError> {
        match Self::parse_prefix(input)? {
            (cert, []) => Ok(cert),
            _ => Err(CvcError::TrailingData),
        }
    }

    /// Parses a concatenation of certificates (e.g. EF.C_DevAut = device cert ‖ DICA cert).
    pub fn parse_chain(mut input: &[u8]) -> Result<Vec<Self>, CvcError> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (cert, rest) = Self::parse_prefix(input)?;
            out.push(cert);
            input = rest;
        }
        Ok(out)
    }

    fn from_tlv(outer: &Tlv<'_>) -> Result<Self, CvcError> {
        expect_tag(outer, tag::CERTIFICATE)?;
        let (body_tlv, signature) = body_and_signature(outer.value)?;
        Ok(Self {
            body: Body::parse(body_tlv.value)?,
            body_raw: body_tlv.raw.to_vec(),
            signature,
            raw: outer.raw.to_vec(),
        })
    }

    /// Assembles a certificate from an encoded body and its signature.
    pub fn assemble(body: Body, signature: Vec<u8>) -> Result<Self, CvcError> {
        let body_raw = body.encode()?;
        let mut inner = body_raw.clone();
        tlv::write(&mut inner, tag::SIGNATURE, &signature)?;
        let raw = tlv::encode(tag::CERTIFICATE, &inner)?;
        Ok(Self {
            body,
            body_raw,
            signature,
            raw,
        })
    }

    /// The certificate without its outer `7F21` header (`7F4E…‖5F37…`), as PSO VERIFY
    /// CERTIFICATE takes it.
    pub fn inner(&self) -> Result<&[u8], CvcError> {
        Ok(Tlv::parse_exact(&self.raw)?.value)
    }
}

fn expect_tag(t: &Tlv<'_>, expected: u32) -> Result<(), CvcError> {
    if t.tag.0 == expected {
        Ok(())
    } else {
        Err(CvcError::UnexpectedTag {
            expected,
            found: t.tag.0,
        })
    }
}

fn body_and_signature(value: &[u8]) -> Result<(Tlv<'_>, Vec<u8>), CvcError> {
    match tlv::parse_all(value)?.as_slice() {
        [body, sig] => {
            expect_tag(body, tag::BODY)?;
            expect_tag(sig, tag::SIGNATURE)?;
            Ok((*body, sig.value.to_vec()))
        }
        [_] => Err(CvcError::Missing(tag::SIGNATURE)),
        _ => Err(CvcError::Malformed(tag::CERTIFICATE)),
    }
}

/// An authenticated request: `67 { 7F21 request, 42 outer CAR, 5F37 outer signature }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedRequest {
    pub request: Certificate,
    pub outer_car: Vec<u8>,
    pub outer_signature: Vec<u8>,
    pub raw: Vec<u8>,
}

impl AuthenticatedRequest {
    pub fn parse(input: &[u8]) -> Result<Self, CvcError> {
        let outer = Tlv::parse_exact(input)?;
        expect_tag(&outer, tag::AUTHENTICATED_REQUEST)?;
        match tlv::parse_all(outer.value)?.as_slice() {
            [req, car, sig] => {
                expect_tag(car, tag::CAR)?;
                expect_tag(sig, tag::SIGNATURE)?;
                Ok(Self {
                    request: Certificate::from_tlv(req)?,
                    outer_car: car.value.to_vec(),
                    outer_signature: sig.value.to_vec(),
                    raw: input.to_vec(),
                })
            }
            _ => Err(CvcError::Malformed(tag::AUTHENTICATED_REQUEST)),
        }
    }

    /// The data the outer signature covers: encoded `7F21` ‖ encoded `42`.
    pub fn outer_signed_data(request: &Certificate, outer_car: &[u8]) -> Result<Vec<u8>, CvcError> {
        let mut data = request.raw.clone();
        tlv::write(&mut data, tag::CAR, outer_car)?;
        Ok(data)
    }

    pub fn assemble(
        request: Certificate,
        outer_car: Vec<u8>,
        outer_signature: Vec<u8>,
    ) -> Result<Self, CvcError> {
        let mut inner = Self::outer_signed_data(&request, &outer_car)?;
        tlv::write(&mut inner, tag::SIGNATURE, &outer_signature)?;
        let raw = tlv::encode(tag::AUTHENTICATED_REQUEST, &inner)?;
        Ok(Self {
            request,
            outer_car,
            outer_signature,
            raw,
        })
    }
}
