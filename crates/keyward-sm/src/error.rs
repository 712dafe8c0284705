use keyward_apdu::StatusWord;
use thiserror::Error;

/// Why chip authentication or secure messaging failed. Every SM error ends the channel.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SmError {
    #[error("malformed secure-messaging data")]
    Malformed,
    #[error("secure-messaging data object missing")]
    MissingDataObject,
    #[error("secure-messaging MAC does not verify (tampered, replayed or out of sequence)")]
    BadMac,
    #[error("padding of the decrypted data is invalid")]
    BadPadding,
    #[error("the card ended secure messaging with status {0}")]
    CardError(StatusWord),
    #[error("chip-authentication token does not verify: the card does not hold the certified key")]
    BadToken,
    #[error("chip authentication failed: {0}")]
    ChipAuthentication(&'static str),
    #[error("command too long for secure messaging")]
    TooLong,
    #[error("cryptographic failure")]
    Crypto,
    #[error("the SCP03 sequence counter is exhausted")]
    CounterExhausted,
}

impl SmError {
    /// The status word a card answers for this error (ISO 7816-4).
    pub fn status_word(&self) -> StatusWord {
        match self {
            Self::MissingDataObject => StatusWord::SM_DATA_MISSING,
            Self::CounterExhausted => StatusWord::CONDITIONS_NOT_SATISFIED,
            _ => StatusWord::SM_DATA_INCORRECT,
        }
    }
}
