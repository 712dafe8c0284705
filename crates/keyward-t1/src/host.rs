//! The host (interface device) role: sends command APDUs (chaining to IFSC), receives responses
//! (acknowledging chains), answers WTX and IFS requests, and recovers from errors per ISO/IEC
//! 7816-3 §11.6: error R-blocks and retransmission (at most `max_retries` times), then
//! S(RESYNCH) (at most `max_resynch` times), then a link error.
//!
//! Exactly-once: after a resynchronisation the host resends a command only if the card cannot
//! have received its last block; otherwise the command may have run, and the host reports
//! [`LinkError::OutcomeUnknown`] instead of running it twice.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use thiserror::Error;

use crate::{Block, FrameError, Profile, RCode, SKind, Variant};

/// How the host runs the link.
#[derive(Debug, Clone, Copy)]
pub struct HostConfig {
    /// Block waiting time in µs.
    pub bwt_us: u64,
    /// Retransmissions of one block before resynchronising (ISO: 2).
    pub max_retries: u8,
    /// S(RESYNCH) attempts before giving up (ISO: 3).
    pub max_resynch: u8,
    /// Information field size the card accepts.
    pub ifsc: usize,
    /// Information field size the host accepts.
    pub ifsd: usize,
}

impl HostConfig {
    pub fn for_profile(profile: &Profile) -> Self {
        let (ifs, bwt_us) = match profile.variant {
            Variant::Iso => (32, 1_600_000),
            Variant::NxpI2c => (254, 1_000_000),
            Variant::Gp => (254, 300_000),
        };
        Self {
            bwt_us,
            max_retries: 2,
            max_resynch: 3,
            ifsc: ifs,
            ifsd: ifs,
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("the card does not answer (no valid block after {0} resynchronisation attempts)")]
    Unresponsive(u8),
    #[error(
        "link failure after the whole command was sent: the card may have executed it once; it was not resent"
    )]
    OutcomeUnknown,
    #[error("the card aborted the exchange")]
    Aborted,
    #[error("an exchange is already in progress")]
    Busy,
    #[error("response longer than allowed")]
    ResponseTooLong,
}

/// What the host engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// The response APDU to the command.
    Response(Vec<u8>),
    /// The card's response to a control S-block request (ATR, CIP, IFS, session end…).
    Control {
        kind: u8,
        inf: Vec<u8>,
    },
    Error(LinkError),
}

#[derive(Debug)]
enum Phase {
    Idle,
    /// Sending a command; `next` is the index of the chunk to send after the next ack.
    Command {
        chunks: Vec<Vec<u8>>,
        next: usize,
        rx: Vec<u8>,
        final_sent: bool,
    },
    /// Waiting for the response to a control S-block request.
    Control {
        kind: u8,
    },
    /// Resynchronising; what to do once the card answers.
    Resynch {
        attempts: u8,
        interrupted: Option<(Vec<Vec<u8>>, bool)>,
    },
}

const MAX_RESPONSE: usize = 65538;

/// Host-side T=1 engine.
pub struct HostEngine {
    profile: Profile,
    config: HostConfig,
    ns: u8,
    nr: u8,
    phase: Phase,
    last: Option<Vec<u8>>,
    last_is_r: bool,
    last_i_ns: u8,
    /// The last I-block sent, for retransmission when the card names it.
    last_i: Option<Vec<u8>>,
    /// Invalid blocks and timeouts in a row.
    errors: u8,
    /// Retransmissions of the current I-block at the card's request.
    retransmits: u8,
    deadline: Option<u64>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<HostEvent>,
    /// After a link error the sequence state is unknown: the next exchange starts with RESYNCH.
    needs_resynch: bool,
    /// Frames sent and received (statistics for benchmarks).
    pub frames_sent: u64,
    pub frames_received: u64,
}

impl HostEngine {
    pub fn new(profile: Profile, config: HostConfig) -> Self {
        Self {
            profile,
            config,
            ns: 0,
            nr: 0,
            phase: Phase::Idle,
            last: None,
            last_is_r: false,
            last_i_ns: 0,
            last_i: None,
            errors: 0,
            retransmits: 0,
            deadline: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            needs_resynch: false,
            frames_sent: 0,
            frames_received: 0,
        }
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Sets the card's information field size (from its ATR or CIP).
    pub fn set_ifsc(&mut self, ifsc: usize) {
        self.config.ifsc = ifsc.clamp(1, self.profile.max_ifs());
    }

    pub fn set_bwt(&mut self, bwt_us: u64) {
        self.config.bwt_us = bwt_us;
    }

    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle)
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }

    /// When [`HostEngine::on_timeout`] is due (µs).
    pub fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    fn send(&mut self, block: &Block, now: u64, wait_multiplier: u64) {
        let frame = block.encode(&self.profile, self.profile.nad_to_card());
        self.last_is_r = matches!(block, Block::R { .. });
        if let Block::I { ns, .. } = block {
            self.last_i_ns = *ns;
            self.last_i = Some(frame.clone());
        }
        self.last = Some(frame.clone());
        self.out.push_back(frame);
        self.frames_sent += 1;
        self.deadline = Some(now + self.config.bwt_us * wait_multiplier.max(1));
    }

    fn resend_last(&mut self, now: u64) {
        if let Some(frame) = self.last.clone() {
            self.out.push_back(frame);
            self.frames_sent += 1;
        }
        self.deadline = Some(now + self.config.bwt_us);
    }

    fn finish(&mut self, event: HostEvent) {
        // After OutcomeUnknown the link was just resynchronised; other failures leave it unknown.
        if let HostEvent::Error(e) = event {
            self.needs_resynch = !matches!(e, LinkError::OutcomeUnknown | LinkError::Busy);
        }
        self.phase = Phase::Idle;
        self.deadline = None;
        self.errors = 0;
        self.events.push_back(event);
    }

    /// Starts sending a command APDU.
    pub fn send_apdu(&mut self, apdu: &[u8], now: u64) {
        if !self.is_idle() {
            self.events.push_back(HostEvent::Error(LinkError::Busy));
            return;
        }
        let chunks: Vec<Vec<u8>> = if apdu.is_empty() {
            alloc::vec![Vec::new()]
        } else {
            apdu.chunks(self.config.ifsc).map(<[u8]>::to_vec).collect()
        };
        self.start_command(chunks, now);
    }

    fn start_command(&mut self, chunks: Vec<Vec<u8>>, now: u64) {
        self.errors = 0;
        self.retransmits = 0;
        if self.needs_resynch {
            // A stale block from the failed exchange must never pass for this command's answer.
            self.start_resynch(Some((chunks, false)), now);
            return;
        }
        self.phase = Phase::Command {
            chunks,
            next: 0,
            rx: Vec::new(),
            final_sent: false,
        };
        self.send_next_chunk(now);
    }

    fn send_next_chunk(&mut self, now: u64) {
        self.retransmits = 0;
        let Phase::Command {
            chunks,
            next,
            final_sent,
            ..
        } = &mut self.phase
        else {
            return;
        };
        let index = *next;
        let more = index + 1 < chunks.len();
        let inf = chunks[index].clone();
        *next += 1;
        if !more {
            *final_sent = true;
        }
        let ns = self.ns;
        self.ns ^= 1;
        self.send(&Block::I { ns, more, inf }, now, 1);
    }

    /// Sends a control S-block request (IFS, GET ATR, CIP, END OF SESSION, RELEASE, soft reset…);
    /// the answer arrives as [`HostEvent::Control`].
    pub fn send_control(&mut self, kind: u8, inf: Vec<u8>, now: u64) {
        if kind == SKind::RESYNCH {
            return self.resynchronise(now);
        }
        if !self.is_idle() {
            self.events.push_back(HostEvent::Error(LinkError::Busy));
            return;
        }
        self.errors = 0;
        self.phase = Phase::Control { kind };
        self.send(
            &Block::S {
                kind,
                response: false,
                inf,
            },
            now,
            1,
        );
    }

    /// Abandons a command whose chain is still being sent (S(ABORT)); the card discards what it
    /// received. Once the last block is out the command may be running and cannot be aborted:
    /// then this does nothing. Completion arrives as [`HostEvent::Control`] with kind ABORT.
    pub fn abort(&mut self, now: u64) {
        if let Phase::Command {
            final_sent: false, ..
        } = self.phase
        {
            self.phase = Phase::Control { kind: SKind::ABORT };
            self.errors = 0;
            self.send_s_request(SKind::ABORT, now);
        }
    }

    /// Starts a resynchronisation (also usable on its own, e.g. when opening an NXP session).
    pub fn resynchronise(&mut self, now: u64) {
        let interrupted = match core::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Command {
                chunks, final_sent, ..
            } => Some((chunks, final_sent)),
            Phase::Resynch { interrupted, .. } => interrupted,
            _ => None,
        };
        self.start_resynch(interrupted, now);
    }

    fn start_resynch(&mut self, interrupted: Option<(Vec<Vec<u8>>, bool)>, now: u64) {
        self.phase = Phase::Resynch {
            attempts: 1,
            interrupted,
        };
        self.send_s_request(SKind::RESYNCH, now);
    }

    /// Sends an S-block request without information field.
    fn send_s_request(&mut self, kind: u8, now: u64) {
        let request = Block::S {
            kind,
            response: false,
            inf: Vec::new(),
        };
        self.send(&request, now, 1);
    }

    /// The deadline passed without a valid block.
    pub fn on_timeout(&mut self, now: u64) {
        if self.deadline.is_some_and(|d| now >= d) {
            self.on_error(RCode::Other, now);
        }
    }

    /// Processes one frame from the card.
    pub fn on_frame(&mut self, frame: &[u8], now: u64) {
        self.frames_received += 1;
        match Block::decode(&self.profile, self.profile.nad_to_host(), frame) {
            Ok(block) => self.on_block(block, now),
            Err(FrameError::BadEdc) => self.on_error(RCode::Edc, now),
            Err(_) => self.on_error(RCode::Other, now),
        }
    }

    /// Rule 7: an invalid block or a timeout.
    fn on_error(&mut self, code: RCode, now: u64) {
        if matches!(self.phase, Phase::Idle) {
            return;
        }
        self.errors += 1;
        if let Phase::Resynch { attempts, .. } = &mut self.phase {
            if *attempts >= self.config.max_resynch {
                let n = *attempts;
                self.finish(HostEvent::Error(LinkError::Unresponsive(n)));
            } else {
                *attempts += 1;
                self.resend_last(now);
            }
            return;
        }
        if self.errors > self.config.max_retries {
            self.resynchronise(now);
            return;
        }
        match self.phase {
            // Rule 7.3: repeat an unanswered S-block request.
            Phase::Control { .. } => self.resend_last(now),
            // Rule 7.2: after an R-block, repeat it; rule 7.1: otherwise name the block expected.
            _ if self.last_is_r => self.resend_last(now),
            _ => {
                let nr = self.nr;
                self.send(&Block::R { nr, code }, now, 1);
            }
        }
    }

    fn on_block(&mut self, block: Block, now: u64) {
        match (&mut self.phase, block) {
            (
                Phase::Resynch { interrupted, .. },
                Block::S {
                    kind: SKind::RESYNCH,
                    response: true,
                    ..
                },
            ) => {
                let interrupted = interrupted.take();
                self.ns = 0;
                self.nr = 0;
                self.errors = 0;
                self.needs_resynch = false;
                match interrupted {
                    // The card cannot have the whole command: send it again from the start.
                    Some((chunks, false)) => self.start_command(chunks, now),
                    Some((_, true)) => self.finish(HostEvent::Error(LinkError::OutcomeUnknown)),
                    None => self.finish(HostEvent::Control {
                        kind: SKind::RESYNCH,
                        inf: Vec::new(),
                    }),
                }
            }
            (Phase::Resynch { .. }, _) => self.on_error(RCode::Other, now),
            (
                Phase::Control { kind },
                Block::S {
                    kind: k,
                    response: true,
                    inf,
                },
            ) if *kind == k => {
                if let (SKind::IFS, Some(v)) = (k, inf.last()) {
                    self.config.ifsd = usize::from(*v);
                }
                self.finish(HostEvent::Control { kind: k, inf });
            }
            (
                Phase::Command { .. } | Phase::Control { .. },
                Block::S {
                    kind: SKind::WTX,
                    response: false,
                    inf,
                },
            ) => {
                let m = u64::from(inf.first().copied().unwrap_or(1));
                self.send(
                    &Block::S {
                        kind: SKind::WTX,
                        response: true,
                        inf,
                    },
                    now,
                    m,
                );
            }
            (
                _,
                Block::S {
                    kind: SKind::IFS,
                    response: false,
                    inf,
                },
            ) => {
                let value = inf.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b));
                if (1..=self.profile.max_ifs()).contains(&value) {
                    self.config.ifsc = value;
                    self.send(
                        &Block::S {
                            kind: SKind::IFS,
                            response: true,
                            inf,
                        },
                        now,
                        1,
                    );
                } else {
                    self.on_error(RCode::Other, now);
                }
            }
            (
                Phase::Command { .. },
                Block::S {
                    kind: SKind::ABORT,
                    response: false,
                    ..
                },
            ) => {
                self.send(
                    &Block::S {
                        kind: SKind::ABORT,
                        response: true,
                        inf: Vec::new(),
                    },
                    now,
                    1,
                );
                self.deadline = None;
                self.finish(HostEvent::Error(LinkError::Aborted));
            }
            (
                Phase::Command {
                    chunks,
                    next,
                    final_sent,
                    rx,
                },
                Block::R { nr, .. },
            ) => {
                let acked = nr == self.ns;
                if acked && !*final_sent && *next < chunks.len() && rx.is_empty() {
                    self.errors = 0;
                    self.send_next_chunk(now);
                } else if nr == self.last_i_ns {
                    // The card names our last I-block: it did not get it.
                    self.errors = 0;
                    self.retransmits += 1;
                    if self.retransmits > self.config.max_retries {
                        self.resynchronise(now);
                    } else if let Some(frame) = self.last_i.clone() {
                        self.last = Some(frame.clone());
                        self.last_is_r = false;
                        self.out.push_back(frame);
                        self.frames_sent += 1;
                        self.deadline = Some(now + self.config.bwt_us);
                    }
                } else {
                    self.on_error(RCode::Other, now);
                }
            }
            (
                Phase::Command {
                    final_sent: true,
                    rx,
                    ..
                },
                Block::I { ns, more, inf },
            ) => {
                if ns != self.nr {
                    // A repetition (our acknowledgement was lost): acknowledge again.
                    let nr = self.nr;
                    self.send(
                        &Block::R {
                            nr,
                            code: RCode::Ok,
                        },
                        now,
                        1,
                    );
                    return;
                }
                if rx.len() + inf.len() > MAX_RESPONSE {
                    self.finish(HostEvent::Error(LinkError::ResponseTooLong));
                    return;
                }
                rx.extend_from_slice(&inf);
                self.errors = 0;
                self.nr ^= 1;
                if more {
                    let nr = self.nr;
                    self.send(
                        &Block::R {
                            nr,
                            code: RCode::Ok,
                        },
                        now,
                        1,
                    );
                } else {
                    let response = core::mem::take(rx);
                    self.finish(HostEvent::Response(response));
                }
            }
            (Phase::Idle, _) => {}
            _ => self.on_error(RCode::Other, now),
        }
    }
}
