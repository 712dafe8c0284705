//! A batch of commands for one RAMoverHTTP round trip, and the checks of its answers. Commands
//! may be plain, SCP03-protected (the card manager) or under ISO secure messaging (the applet
//! after chip authentication); since every command of a batch is protected before any answer
//! arrives, each remembers what checking its own answer needs.

use keyward_apdu::{Command, CommandView};
use keyward_sm::scp03::{ResponseContext, Scp03Session};
use keyward_sm::{SmError, SmSession};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("{step}: the element answered {sw:04X}")]
    Status { step: &'static str, sw: u16 },
    #[error("{0}: the element's answer is malformed")]
    Malformed(&'static str),
    #[error("the batch got {got} answers for {sent} commands")]
    Incomplete { sent: usize, got: usize },
    #[error("{step}: {source}")]
    SecureChannel { step: &'static str, source: SmError },
}

/// How a command was protected.
enum Protection {
    Plain,
    Scp03(ResponseContext),
    /// ISO secure messaging: the send sequence counter of the answer.
    Sm(u128),
}

struct Expect {
    step: &'static str,
    protection: Protection,
    ok: &'static [u16],
}

/// A batch of commands for one round trip.
#[derive(Default)]
pub struct Batch {
    apdus: Vec<Vec<u8>>,
    expect: Vec<Expect>,
}

/// A checked answer: status word and (unwrapped) data.
#[derive(Debug, Clone)]
pub struct Answer {
    pub step: &'static str,
    pub sw: u16,
    pub data: Vec<u8>,
}

/// `9000` only.
pub const OK: &[u16] = &[0x9000];

/// A short APDU from header, data and Le.
pub fn apdu(header: [u8; 4], data: &[u8], le: Option<u8>) -> Vec<u8> {
    let mut v = header.to_vec();
    if !data.is_empty() {
        v.push(data.len() as u8);
        v.extend_from_slice(data);
    }
    v.extend(le);
    v
}

fn encode(step: &'static str, c: &Command) -> Result<Vec<u8>, BatchError> {
    c.encode().map_err(|_| BatchError::Malformed(step))
}

impl Batch {
    pub fn plain(&mut self, step: &'static str, apdu: Vec<u8>, ok: &'static [u16]) {
        self.apdus.push(apdu);
        self.expect.push(Expect {
            step,
            protection: Protection::Plain,
            ok,
        });
    }

    pub fn plain_command(
        &mut self,
        step: &'static str,
        cmd: &Command,
        ok: &'static [u16],
    ) -> Result<(), BatchError> {
        self.plain(step, encode(step, cmd)?, ok);
        Ok(())
    }

    /// A command protected by the SCP03 channel.
    pub fn scp03(
        &mut self,
        scp: &mut Scp03Session,
        step: &'static str,
        apdu: &[u8],
        ok: &'static [u16],
    ) -> Result<(), BatchError> {
        let (wrapped, ctx) = scp
            .wrap_command_deferred(apdu)
            .map_err(|source| BatchError::SecureChannel { step, source })?;
        self.apdus.push(wrapped);
        self.expect.push(Expect {
            step,
            protection: Protection::Scp03(ctx),
            ok,
        });
        Ok(())
    }

    /// A command under ISO secure messaging.
    pub fn sm(
        &mut self,
        sm: &mut SmSession,
        step: &'static str,
        cmd: &Command,
        ok: &'static [u16],
    ) -> Result<(), BatchError> {
        let raw = encode(step, cmd)?;
        let view = CommandView::parse(&raw).map_err(|_| BatchError::Malformed(step))?;
        let (wrapped, ssc) = sm
            .wrap_command_deferred(&view)
            .map_err(|source| BatchError::SecureChannel { step, source })?;
        self.apdus.push(encode(step, &wrapped)?);
        self.expect.push(Expect {
            step,
            protection: Protection::Sm(ssc),
            ok,
        });
        Ok(())
    }

    /// The C-APDUs to send.
    pub fn apdus(&self) -> &[Vec<u8>] {
        &self.apdus
    }

    /// Checks every answer (MACs, decryption, expected status words) in order.
    pub fn check(
        &self,
        scp: Option<&Scp03Session>,
        sm: Option<&SmSession>,
        responses: &[Vec<u8>],
    ) -> Result<Vec<Answer>, BatchError> {
        if responses.len() != self.apdus.len() {
            return Err(BatchError::Incomplete {
                sent: self.apdus.len(),
                got: responses.len(),
            });
        }
        let mut out = Vec::with_capacity(responses.len());
        for (e, r) in self.expect.iter().zip(responses) {
            let step = e.step;
            let channel = |source| BatchError::SecureChannel { step, source };
            let (data, sw) = match (&e.protection, scp, sm) {
                (Protection::Scp03(ctx), Some(scp), _) => {
                    split(step, scp.unwrap_deferred(ctx, r).map_err(channel)?)?
                }
                (Protection::Sm(ssc), _, Some(sm)) => {
                    let resp = sm.unwrap_response_at(*ssc, r).map_err(channel)?;
                    (resp.data, resp.sw.0)
                }
                (Protection::Plain, _, _) => split(step, r.clone())?,
                _ => return Err(BatchError::Malformed(step)),
            };
            if !e.ok.contains(&sw) {
                return Err(BatchError::Status { step, sw });
            }
            out.push(Answer { step, sw, data });
        }
        Ok(out)
    }
}

fn split(step: &'static str, mut r: Vec<u8>) -> Result<(Vec<u8>, u16), BatchError> {
    let n = r.len().checked_sub(2).ok_or(BatchError::Malformed(step))?;
    let sw = u16::from_be_bytes([r[n], r[n + 1]]);
    r.truncate(n);
    Ok((r, sw))
}

/// The answer of the first command named `step`.
pub fn answer<'a>(answers: &'a [Answer], step: &str) -> Option<&'a Answer> {
    answers.iter().find(|a| a.step == step)
}
