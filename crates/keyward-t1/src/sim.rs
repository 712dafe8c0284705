//! A simulated bus between a host and a card engine: bit rate, per-byte timing, latency and
//! seeded fault injection (bit flips, dropped, inserted and truncated frames, stuck-busy, NACK),
//! on a virtual clock so that runs are fast and reproducible.

use alloc::vec::Vec;

use crate::{CardEngine, CardEvent, HostEngine, HostEvent, LinkError};

/// Physical link parameters.
#[derive(Debug, Clone, Copy)]
pub struct BusTiming {
    /// Bits per second on the wire.
    pub bit_rate: u64,
    /// Clock cycles per byte (I2C: 9 with the ACK bit; SPI: 8).
    pub bits_per_byte: u64,
    /// Fixed per-frame overhead in µs (addressing, turnaround, polling).
    pub latency_us: u64,
}

impl BusTiming {
    pub const I2C_100K: Self = Self {
        bit_rate: 100_000,
        bits_per_byte: 9,
        latency_us: 100,
    };
    pub const I2C_400K: Self = Self {
        bit_rate: 400_000,
        bits_per_byte: 9,
        latency_us: 25,
    };
    pub const I2C_1M: Self = Self {
        bit_rate: 1_000_000,
        bits_per_byte: 9,
        latency_us: 10,
    };
    pub const SPI_10M: Self = Self {
        bit_rate: 10_000_000,
        bits_per_byte: 8,
        latency_us: 5,
    };

    /// Time to move `bytes` bytes, µs (rounded up).
    pub fn transfer_us(&self, bytes: usize) -> u64 {
        (bytes as u64 * self.bits_per_byte * 1_000_000).div_ceil(self.bit_rate) + self.latency_us
    }
}

/// Fault probabilities (per bit for flips, per frame otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub bit_error_rate: f64,
    /// A whole frame is lost.
    pub drop: f64,
    /// One byte of the frame is lost.
    pub drop_byte: f64,
    /// A byte is inserted into the frame.
    pub insert: f64,
    pub truncate: f64,
    /// The receiver is busy and the frame is lost (host must time out).
    pub stuck_busy: f64,
    /// Address NACK: the write fails and the frame is lost.
    pub nack: f64,
}

/// Polling parameters (µs); zero means an interrupt-driven or byte-serial link.
#[derive(Debug, Clone, Copy, Default)]
pub struct Polling {
    pub guard_us: u64,
    pub poll_interval_us: u64,
    /// How long the element works on each command before its answer is ready.
    pub processing_us: u64,
}

impl Polling {
    /// NXP SE05x defaults from its ATR: SEGT 100 µs, MPOT 1 ms.
    pub const NXP: Self = Self {
        guard_us: 100,
        poll_interval_us: 1000,
        processing_us: 0,
    };
    /// GP T=1' over I2C: RWGT 10 µs, MPOT 1 ms.
    pub const GP: Self = Self {
        guard_us: 10,
        poll_interval_us: 1000,
        processing_us: 0,
    };

    /// When a host that started polling at `since` finds an answer ready at `ready`.
    fn found_at(&self, since: u64, ready: u64) -> u64 {
        if self.poll_interval_us == 0 || ready <= since {
            return ready.max(since);
        }
        let polls = (ready - since).div_ceil(self.poll_interval_us);
        since + polls * self.poll_interval_us
    }
}

/// A small deterministic PRNG (xorshift64*), for reproducible fault patterns.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform value in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// One direction-agnostic simulated wire.
#[derive(Debug, Clone)]
pub struct SimBus {
    pub timing: BusTiming,
    pub faults: Faults,
    rng: Rng,
    /// Host polling of a busy element: guard time after each host write (NXP SEGT / GP RWGT),
    /// and the polling interval (MPOT) at which the host finds the element's answer (the element
    /// NACKs its address until it is ready).
    pub polling: Polling,
    /// Bytes that went over the wire (raw capacity use).
    pub bytes: u64,
    /// With a profile set: corrupted frames whose error detection code still matched (errors
    /// no EDC can catch; LRC misses any even number of flips in one bit position).
    pub undetected: u64,
    profile: Option<crate::Profile>,
}

impl SimBus {
    pub fn new(timing: BusTiming, faults: Faults, seed: u64) -> Self {
        Self {
            timing,
            faults,
            rng: Rng::new(seed),
            polling: Polling::default(),
            bytes: 0,
            undetected: 0,
            profile: None,
        }
    }

    /// Models host polling (see [`Polling`]).
    pub fn with_polling(mut self, polling: Polling) -> Self {
        self.polling = polling;
        self
    }

    /// Counts corrupted frames that still pass `profile`'s EDC check (see `undetected`).
    pub fn watch_edc(mut self, profile: crate::Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Moves a frame: returns what the receiver gets (if anything) and the time it took.
    pub fn transfer(&mut self, frame: &[u8]) -> (Option<Vec<u8>>, u64) {
        let us = self.timing.transfer_us(frame.len());
        self.bytes += frame.len() as u64;
        let f = self.faults;
        if self.rng.chance(f.nack) || self.rng.chance(f.stuck_busy) || self.rng.chance(f.drop) {
            return (None, us);
        }
        let mut out = frame.to_vec();
        if f.bit_error_rate > 0.0 {
            // Per byte: an error with probability ≈ 8 × BER (exact to first order for small
            // rates), in a uniformly chosen bit.
            let per_byte = 8.0 * f.bit_error_rate;
            for byte in &mut out {
                if self.rng.chance(per_byte) {
                    *byte ^= 1 << (self.rng.next_u64() % 8);
                }
            }
        }
        if self.rng.chance(f.drop_byte) && !out.is_empty() {
            let at = (self.rng.next_u64() as usize) % out.len();
            out.remove(at);
        }
        if self.rng.chance(f.insert) {
            let at = (self.rng.next_u64() as usize) % (out.len() + 1);
            out.insert(at, self.rng.next_u64() as u8);
        }
        if self.rng.chance(f.truncate) && !out.is_empty() {
            let keep = (self.rng.next_u64() as usize) % out.len();
            out.truncate(keep);
        }
        if let Some(p) = self.profile.filter(|_| out != frame) {
            let el = p.edc_len();
            if out.len() > el && p.edc(&out[..out.len() - el])[..el] == out[out.len() - el..] {
                self.undetected += 1;
            }
        }
        (Some(out), us)
    }
}

/// The outcome of one simulated exchange.
#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::{CardEngine, HostConfig, HostEngine, Profile};

    #[test]
    fn polling_finds_answers_on_poll_boundaries() {
        let p = Polling {
            guard_us: 100,
            poll_interval_us: 1000,
            processing_us: 2500,
        };
        assert_eq!(p.found_at(1000, 3500), 4000);
        assert_eq!(p.found_at(1000, 1000), 1000);
        let profile = Profile::NXP_I2C;
        let run = |polling: Polling| {
            let mut host = HostEngine::new(profile, HostConfig::for_profile(&profile));
            let mut card = CardEngine::new(profile, 254, vec![]);
            let mut bus =
                SimBus::new(BusTiming::I2C_400K, Faults::default(), 1).with_polling(polling);
            let mut now = 0;
            exchange(
                &mut host,
                &mut card,
                &mut bus,
                &mut now,
                &[0; 40],
                &mut |_| vec![0; 80],
            )
            .elapsed_us
        };
        let plain = run(Polling::default());
        let polled = run(p);
        // Guard time, processing, and the wait until the next poll all show.
        assert!(polled >= plain + 100 + 2500, "{plain} {polled}");
        assert!(polled <= plain + 100 + 2500 + 1000, "{plain} {polled}");
    }
}

#[derive(Debug)]
pub struct Exchange {
    pub result: Result<Vec<u8>, LinkError>,
    /// Virtual time taken, µs.
    pub elapsed_us: u64,
    /// How many times the card application executed the command.
    pub executions: u32,
}

/// Runs one APDU from `host` to `card` over `bus`, with `app` as the card application.
/// `now` is the virtual clock (advanced).
pub fn exchange(
    host: &mut HostEngine,
    card: &mut CardEngine,
    bus: &mut SimBus,
    now: &mut u64,
    apdu: &[u8],
    app: &mut dyn FnMut(&[u8]) -> Vec<u8>,
) -> Exchange {
    let start = *now;
    let mut executions = 0;
    host.send_apdu(apdu, *now);
    loop {
        let mut progressed = false;
        while let Some(frame) = host.poll_transmit() {
            progressed = true;
            let (delivered, us) = bus.transfer(&frame);
            *now += us + bus.polling.guard_us;
            let polling_since = *now;
            if let Some(d) = delivered {
                card.on_frame(&d);
            }
            while let Some(ev) = card.poll_event() {
                if let CardEvent::Apdu(cmd) = ev {
                    executions += 1;
                    *now += bus.polling.processing_us;
                    let r = app(&cmd);
                    card.respond(r);
                }
            }
            let mut first = true;
            while let Some(cf) = card.poll_transmit() {
                if first {
                    // The host finds the answer at its next poll.
                    *now = bus.polling.found_at(polling_since, *now);
                    first = false;
                }
                let (delivered, us) = bus.transfer(&cf);
                *now += us;
                if let Some(d) = delivered {
                    host.on_frame(&d, *now);
                }
            }
        }
        if let Some(ev) = host.poll_event() {
            let result = match ev {
                HostEvent::Response(r) => Ok(r),
                HostEvent::Error(e) => Err(e),
                HostEvent::Control { .. } => continue,
            };
            return Exchange {
                result,
                elapsed_us: *now - start,
                executions,
            };
        }
        if !progressed {
            match host.deadline() {
                Some(d) => {
                    *now = (*now).max(d);
                    host.on_timeout(*now);
                }
                None => {
                    return Exchange {
                        result: Err(LinkError::Unresponsive(0)),
                        elapsed_us: *now - start,
                        executions,
                    };
                }
            }
        }
    }
}
