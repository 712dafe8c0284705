use keyward_apdu::{Command, Response};
use keyward_sm::SmSession;

use crate::{CardChannel, CardError};

/// Secure messaging over any channel: commands are wrapped, responses verified and unwrapped.
/// An SM error ends the channel (further use fails).
pub struct SecureChannel<C: CardChannel> {
    inner: C,
    session: Option<SmSession>,
}

impl<C: CardChannel> SecureChannel<C> {
    pub fn new(inner: C, session: SmSession) -> Self {
        Self {
            inner,
            session: Some(session),
        }
    }

    pub fn into_inner(self) -> C {
        self.inner
    }

    /// The plain channel underneath (sending on it ends secure messaging at the card).
    pub fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }
}

impl<C: CardChannel> CardChannel for SecureChannel<C> {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        let cmd = keyward_apdu::CommandView::parse(apdu)?;
        Ok(self.transmit(&cmd.to_owned())?.encode())
    }

    fn transmit(&mut self, cmd: &Command) -> Result<Response, CardError> {
        let session = self.session.as_mut().ok_or(keyward_sm::SmError::CardError(
            keyward_apdu::StatusWord::SM_DATA_INCORRECT,
        ))?;
        let wrapped = session.wrap_command(&cmd.view())?;
        let raw = self.inner.transmit_raw(&wrapped.encode()?)?;
        match session.unwrap_response(&raw) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.session = None;
                Err(e.into())
            }
        }
    }
}
