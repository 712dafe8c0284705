use alloc::vec::Vec;

use crate::{ApduError, StatusWord};

/// A parsed response APDU borrowing its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseView<'a> {
    pub data: &'a [u8],
    pub sw: StatusWord,
}

impl<'a> ResponseView<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ApduError> {
        let split = bytes.len().checked_sub(2).ok_or(ApduError::NoStatusWord)?;
        let (data, sw) = bytes.split_at(split);
        Ok(Self {
            data,
            sw: StatusWord(u16::from_be_bytes([sw[0], sw[1]])),
        })
    }
}

/// An owned response APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

impl Response {
    pub fn new(data: Vec<u8>, sw: StatusWord) -> Self {
        Self { data, sw }
    }

    pub fn ok(data: Vec<u8>) -> Self {
        Self::new(data, StatusWord::SUCCESS)
    }

    pub fn status(sw: StatusWord) -> Self {
        Self::new(Vec::new(), sw)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let view = ResponseView::parse(bytes)?;
        Ok(Self::new(view.data.to_vec(), view.sw))
    }
}

impl From<StatusWord> for Response {
    fn from(sw: StatusWord) -> Self {
        Self::status(sw)
    }
}
