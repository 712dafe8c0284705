//! The card (secure element) role. It never originates RESYNCH, answers every valid request
//! S-block, acknowledges chains, retransmits its last block when the host names it, and hands
//! each complete command APDU to the application exactly once: a repeated I-block (the host lost
//! the answer) is answered by repeating the answer, never by executing again.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::{Block, Profile, RCode, SKind, Variant};

/// What the card engine tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardEvent {
    /// A complete command APDU; answer with [`CardEngine::respond`].
    Apdu(Vec<u8>),
    /// The host ended the session (NXP end of APDU session, GP RELEASE) or reset the link.
    SessionEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the host's next I-block (or receiving its chain).
    Idle,
    /// A command was handed to the application; its response is pending.
    Processing,
    /// Sending a chained response; waiting for the host's acknowledgement.
    Sending,
}

/// Card-side T=1 engine.
pub struct CardEngine {
    profile: Profile,
    /// What the host may send in one block (announced by the card).
    ifsc: usize,
    /// What the card may send in one block (the host's receive size).
    ifsd: usize,
    ns: u8,
    nr: u8,
    state: State,
    rx: Vec<u8>,
    tx: Vec<u8>,
    tx_pos: usize,
    /// The last block sent, for retransmission.
    last: Option<Vec<u8>>,
    /// N(S) of the last I-block sent, if any.
    last_i_ns: Option<u8>,
    /// The ATR (NXP) or CIP (GP) this element reports.
    atr: Vec<u8>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<CardEvent>,
}

impl CardEngine {
    /// `ifsc`: the information field size this card accepts; `atr`: the answer to GET ATR /
    /// CIP (NXP / GP variants).
    pub fn new(profile: Profile, ifsc: usize, atr: Vec<u8>) -> Self {
        let default_ifsd = match profile.variant {
            Variant::Iso => 32,
            _ => 254,
        };
        Self {
            profile,
            ifsc: ifsc.clamp(1, profile.max_ifs()),
            ifsd: default_ifsd,
            ns: 0,
            nr: 0,
            state: State::Idle,
            rx: Vec::new(),
            tx: Vec::new(),
            tx_pos: 0,
            last: None,
            last_i_ns: None,
            atr,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn ifsc(&self) -> usize {
        self.ifsc
    }

    pub fn ifsd(&self) -> usize {
        self.ifsd
    }

    /// Sets the host's receive size as a completed S(IFS) exchange would (hosts of all three
    /// variants announce 254 when they open the link).
    pub fn set_ifsd(&mut self, ifsd: usize) {
        self.ifsd = ifsd.clamp(1, self.profile.max_ifs());
    }

    /// The next frame to put on the bus.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CardEvent> {
        self.events.pop_front()
    }

    fn send(&mut self, block: &Block) {
        let frame = block.encode(&self.profile, self.profile.nad_to_host());
        if let Block::I { ns, .. } = block {
            self.last_i_ns = Some(*ns);
        }
        self.last = Some(frame.clone());
        self.out.push_back(frame);
    }

    fn resend_last(&mut self) {
        match self.last.clone() {
            Some(frame) => self.out.push_back(frame),
            None => self.send(&Block::R {
                nr: self.nr,
                code: RCode::Other,
            }),
        }
    }

    fn reset_link(&mut self) {
        self.ns = 0;
        self.nr = 0;
        self.rx.clear();
        self.tx.clear();
        self.tx_pos = 0;
        self.last = None;
        self.last_i_ns = None;
        if self.state != State::Processing {
            self.state = State::Idle;
        }
    }

    /// Asks the host for more time while the application works (S(WTX request, multiplier)).
    pub fn request_wtx(&mut self, multiplier: u8) {
        if self.state == State::Processing {
            self.send(&Block::S {
                kind: SKind::WTX,
                response: false,
                inf: alloc::vec![multiplier.max(1)],
            });
        }
    }

    /// The application's response APDU to the last [`CardEvent::Apdu`].
    pub fn respond(&mut self, rapdu: Vec<u8>) {
        if self.state != State::Processing {
            return;
        }
        self.tx = rapdu;
        self.tx_pos = 0;
        self.send_next_chunk();
    }

    fn send_next_chunk(&mut self) {
        let end = (self.tx_pos + self.ifsd).min(self.tx.len());
        let more = end < self.tx.len();
        let inf = self.tx[self.tx_pos..end].to_vec();
        self.tx_pos = end;
        let ns = self.ns;
        self.ns ^= 1;
        self.state = if more { State::Sending } else { State::Idle };
        self.send(&Block::I { ns, more, inf });
    }

    /// Processes one frame from the host.
    pub fn on_frame(&mut self, frame: &[u8]) {
        let block = match Block::decode(&self.profile, self.profile.nad_to_card(), frame) {
            Ok(b) => b,
            Err(e) => {
                let code = if e == crate::FrameError::BadEdc {
                    RCode::Edc
                } else {
                    RCode::Other
                };
                // Rule 7.2: after an R-block, repeat it; otherwise ask for the expected block.
                match self.last.clone() {
                    Some(last)
                        if Block::decode(&self.profile, self.profile.nad_to_host(), &last)
                            .is_ok_and(|b| matches!(b, Block::R { .. })) =>
                    {
                        self.out.push_back(last)
                    }
                    _ if self.state == State::Processing => {}
                    _ => self.send(&Block::R { nr: self.nr, code }),
                }
                return;
            }
        };
        match block {
            Block::I { ns, more, inf } => self.on_i_block(ns, more, inf),
            Block::R { nr, .. } => self.on_r_block(nr),
            Block::S {
                kind,
                response: false,
                inf,
            } => self.on_s_request(kind, inf),
            // Responses to our requests (WTX, IFS) need no action.
            Block::S { response: true, .. } => {}
        }
    }

    fn on_i_block(&mut self, ns: u8, more: bool, inf: Vec<u8>) {
        if self.state == State::Processing {
            // The host repeats while we work: tell it to wait.
            self.send(&Block::S {
                kind: SKind::WTX,
                response: false,
                inf: alloc::vec![1],
            });
            return;
        }
        if ns != self.nr {
            // A repetition of a block we already took: the host missed our answer. Repeat the
            // answer; never take (or execute) the block twice.
            self.resend_last();
            return;
        }
        if inf.len() > self.ifsc {
            self.send(&Block::R {
                nr: self.nr,
                code: RCode::Other,
            });
            return;
        }
        if self.state == State::Sending {
            // The host starts a new command: our chained answer is abandoned.
            self.tx.clear();
            self.state = State::Idle;
        }
        self.nr ^= 1;
        self.rx.extend_from_slice(&inf);
        if more {
            self.send(&Block::R {
                nr: self.nr,
                code: RCode::Ok,
            });
        } else {
            self.state = State::Processing;
            let apdu = core::mem::take(&mut self.rx);
            self.events.push_back(CardEvent::Apdu(apdu));
        }
    }

    fn on_r_block(&mut self, nr: u8) {
        match self.state {
            State::Sending if nr == self.ns => self.send_next_chunk(),
            State::Processing => self.send(&Block::S {
                kind: SKind::WTX,
                response: false,
                inf: alloc::vec![1],
            }),
            _ if Some(nr) == self.last_i_ns => self.resend_last(),
            // The host is waiting for something we never got: name the block we expect.
            _ => self.send(&Block::R {
                nr: self.nr,
                code: RCode::Ok,
            }),
        }
    }

    fn on_s_request(&mut self, kind: u8, inf: Vec<u8>) {
        let variant = self.profile.variant;
        let reply = |s: &mut Self, inf: Vec<u8>| {
            s.send(&Block::S {
                kind,
                response: true,
                inf,
            })
        };
        match kind {
            SKind::RESYNCH => {
                self.reset_link();
                reply(self, Vec::new());
            }
            SKind::IFS => {
                let value = inf.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b));
                if value == 0 || value > self.profile.max_ifs() || inf.is_empty() || inf.len() > 2 {
                    self.send(&Block::R {
                        nr: self.nr,
                        code: RCode::Other,
                    });
                } else {
                    self.ifsd = value;
                    reply(self, inf);
                }
            }
            SKind::ABORT => {
                self.rx.clear();
                self.tx.clear();
                if self.state == State::Sending {
                    self.state = State::Idle;
                }
                reply(self, Vec::new());
            }
            SKind::CIP if variant == Variant::Gp => {
                let atr = self.atr.clone();
                reply(self, atr);
            }
            SKind::GET_ATR if variant == Variant::NxpI2c => {
                let atr = self.atr.clone();
                reply(self, atr);
            }
            SKind::END_OF_SESSION if variant == Variant::NxpI2c => {
                self.events.push_back(CardEvent::SessionEnd);
                reply(self, Vec::new());
            }
            SKind::CHIP_RESET_OR_RELEASE if variant != Variant::Iso => {
                if variant == Variant::NxpI2c {
                    self.reset_link();
                }
                self.events.push_back(CardEvent::SessionEnd);
                reply(self, Vec::new());
            }
            SKind::SOFT_RESET if variant != Variant::Iso => {
                self.reset_link();
                self.events.push_back(CardEvent::SessionEnd);
                let inf = if variant == Variant::NxpI2c {
                    self.atr.clone()
                } else {
                    Vec::new()
                };
                reply(self, inf);
            }
            SKind::DEEP_POWER_DOWN if variant == Variant::NxpI2c => reply(self, Vec::new()),
            // WTX requests come only from cards; unknown requests are errors.
            _ => self.send(&Block::R {
                nr: self.nr,
                code: RCode::Other,
            }),
        }
    }
}
