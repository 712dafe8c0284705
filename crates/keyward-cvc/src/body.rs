use keyward_apdu::tlv::{self, Tlv};

use crate::{CvDate, CvcError, PublicKey, tag};

/// Certificate holder authorization template (`7F4C { 06 role OID, 53 relative authorization }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    pub role: Vec<u8>,
    pub authorization: Vec<u8>,
}

/// The certificate body (`7F4E`) of a certificate or request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub cpi: u8,
    /// Certification authority reference; optional in requests.
    pub car: Option<Vec<u8>>,
    pub public_key: PublicKey,
    /// Certificate holder reference.
    pub chr: Vec<u8>,
    pub chat: Option<Chat>,
    pub effective: Option<CvDate>,
    pub expiration: Option<CvDate>,
    /// Raw value of the extensions template `65`.
    pub extensions: Option<Vec<u8>>,
}

impl Body {
    /// Parses the value of a `7F4E` object (elements in TR-03110 order).
    pub fn parse(value: &[u8]) -> Result<Self, CvcError> {
        let items = tlv::parse_all(value)?;
        let mut it = items.iter().peekable();
        let mut next_if = |t: u32| it.next_if(|x: &&Tlv<'_>| x.tag.0 == t).map(|x| x.value);

        let cpi = match next_if(tag::CPI).ok_or(CvcError::Missing(tag::CPI))? {
            [v] => *v,
            _ => return Err(CvcError::Malformed(tag::CPI)),
        };
        let car = next_if(tag::CAR).map(<[u8]>::to_vec);
        let public_key =
            PublicKey::parse(next_if(tag::PUBLIC_KEY).ok_or(CvcError::Missing(tag::PUBLIC_KEY))?)?;
        let chr = next_if(tag::CHR)
            .ok_or(CvcError::Missing(tag::CHR))?
            .to_vec();
        let chat = next_if(tag::CHAT).map(parse_chat).transpose()?;
        let effective = next_if(tag::CED).map(CvDate::parse).transpose()?;
        let expiration = next_if(tag::CXD).map(CvDate::parse).transpose()?;
        let extensions = next_if(tag::EXTENSIONS).map(<[u8]>::to_vec);
        if it.next().is_some() {
            return Err(CvcError::Malformed(tag::BODY));
        }
        Ok(Self {
            cpi,
            car,
            public_key,
            chr,
            chat,
            effective,
            expiration,
            extensions,
        })
    }

    /// Encodes the complete `7F4E` object.
    pub fn encode(&self) -> Result<Vec<u8>, CvcError> {
        let mut v = Vec::new();
        tlv::write(&mut v, tag::CPI, &[self.cpi])?;
        if let Some(car) = &self.car {
            tlv::write(&mut v, tag::CAR, car)?;
        }
        v.extend_from_slice(&self.public_key.encode()?);
        tlv::write(&mut v, tag::CHR, &self.chr)?;
        if let Some(chat) = &self.chat {
            tlv::write_nested(&mut v, tag::CHAT, |c| {
                tlv::write(c, tag::OID, &chat.role)?;
                tlv::write(c, tag::DISCRETIONARY, &chat.authorization)
            })?;
        }
        if let Some(d) = &self.effective {
            tlv::write(&mut v, tag::CED, &d.encode())?;
        }
        if let Some(d) = &self.expiration {
            tlv::write(&mut v, tag::CXD, &d.encode())?;
        }
        if let Some(ext) = &self.extensions {
            tlv::write(&mut v, tag::EXTENSIONS, ext)?;
        }
        Ok(tlv::encode(tag::BODY, &v)?)
    }
}

fn parse_chat(value: &[u8]) -> Result<Chat, CvcError> {
    match tlv::parse_all(value)?.as_slice() {
        [role, auth] if role.tag.0 == tag::OID && auth.tag.0 == tag::DISCRETIONARY => Ok(Chat {
            role: role.value.to_vec(),
            authorization: auth.value.to_vec(),
        }),
        _ => Err(CvcError::Malformed(tag::CHAT)),
    }
}
