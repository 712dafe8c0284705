//! Real I/O for the engines: a `Bus` trait (send a frame, receive one with a timeout, reset), a
//! Unix-socket bus (host and element as two processes, optionally paced like an I2C/SPI link),
//! a host link that turns a bus into an APDU channel, and the card-side serving loop.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::params::{self, LinkParams};
use crate::sim::BusTiming;
use crate::{
    Block, CardEngine, CardEvent, HostConfig, HostEngine, HostEvent, LinkError, Profile, SKind,
    Variant,
};

/// A frame-oriented link to the other side.
pub trait Bus {
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// The next frame, or `None` if `timeout` passed first.
    fn recv(&mut self, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>>;
    fn reset(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// T=1 frames over a Unix stream socket, delimited by their own headers; optionally paced to
/// the speed of a real bus.
pub struct UnixBus {
    stream: UnixStream,
    profile: Profile,
    pace: Option<BusTiming>,
    /// Character waiting time: a started frame whose rest does not follow within it is handed
    /// over as it is (and rejected by the engine), as a receiver on a byte-serial link does.
    cwt: Duration,
    buf: Vec<u8>,
}

impl UnixBus {
    pub fn new(stream: UnixStream, profile: Profile) -> Self {
        Self {
            stream,
            profile,
            pace: None,
            cwt: Duration::from_millis(20),
            buf: Vec::new(),
        }
    }

    /// Delays every frame, in both directions, by the time a real bus would need for it (the
    /// paced end accounts for the other end's frames when it receives them: one shared,
    /// half-duplex bus).
    pub fn paced(mut self, timing: BusTiming) -> Self {
        self.pace = Some(timing);
        self
    }

    fn take_frame(&mut self) -> Option<Vec<u8>> {
        let len = Block::frame_len(&self.profile, &self.buf)?;
        if self.buf.len() < len {
            return None;
        }
        Some(self.buf.drain(..len).collect())
    }
}

impl Bus for UnixBus {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if let Some(t) = self.pace {
            std::thread::sleep(Duration::from_micros(t.transfer_us(frame.len())));
        }
        self.stream.write_all(frame)
    }

    fn recv(&mut self, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(frame) = self.take_frame() {
                if let Some(t) = self.pace {
                    std::thread::sleep(Duration::from_micros(t.transfer_us(frame.len())));
                }
                return Ok(Some(frame));
            }
            let mut wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(w) if !w.is_zero() => Some(w),
                    _ => return Ok(None),
                },
                None => None,
            };
            let partial = !self.buf.is_empty();
            if partial {
                wait = Some(wait.map_or(self.cwt, |w| w.min(self.cwt)));
            }
            self.stream.set_read_timeout(wait)?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the other side closed the link",
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // CWT expired inside a frame: hand the fragment over as an invalid frame.
                    return Ok(partial.then(|| std::mem::take(&mut self.buf)));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Why a host exchange over a real bus failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum T1Error {
    #[error("T=1 link: {0}")]
    Link(#[from] LinkError),
    #[error("T=1 bus: {0}")]
    Io(#[from] io::Error),
}

/// The host end of a T=1 link over a bus: an APDU channel.
pub struct HostLink<B: Bus> {
    engine: HostEngine,
    bus: B,
    epoch: Instant,
}

impl<B: Bus> HostLink<B> {
    /// Opens the link the way each variant's hosts do: ISO announces IFSD 254; NXP resynchronises
    /// and reads the ATR; GP resynchronises and reads the CIP (taking BWT and IFSC from them).
    pub fn open(bus: B, profile: Profile) -> Result<Self, T1Error> {
        let mut link = Self {
            engine: HostEngine::new(profile, HostConfig::for_profile(&profile)),
            bus,
            epoch: Instant::now(),
        };
        match profile.variant {
            Variant::Iso => {
                link.control(SKind::IFS, vec![0xFE])?;
            }
            Variant::NxpI2c => {
                link.control(SKind::RESYNCH, Vec::new())?;
                let atr = link.control(SKind::GET_ATR, Vec::new())?;
                link.apply(params::parse_nxp_atr(&atr));
            }
            Variant::Gp => {
                link.control(SKind::RESYNCH, Vec::new())?;
                let cip = link.control(SKind::CIP, Vec::new())?;
                link.apply(params::parse_gp_cip(&cip));
            }
        }
        Ok(link)
    }

    fn apply(&mut self, p: Option<LinkParams>) {
        if let Some(p) = p {
            self.engine.set_ifsc(usize::from(p.ifsc));
            self.engine.set_bwt(u64::from(p.bwt_ms.max(1)) * 1000);
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Sends a control S-block request and returns the response's information field.
    pub fn control(&mut self, kind: u8, inf: Vec<u8>) -> Result<Vec<u8>, T1Error> {
        let now = self.now();
        self.engine.send_control(kind, inf, now);
        match self.run()? {
            HostEvent::Control { inf, .. } => Ok(inf),
            HostEvent::Error(e) => Err(e.into()),
            HostEvent::Response(_) => Err(LinkError::Aborted.into()),
        }
    }

    /// Sends a command APDU and returns the response APDU.
    pub fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, T1Error> {
        let now = self.now();
        self.engine.send_apdu(apdu, now);
        match self.run()? {
            HostEvent::Response(r) => Ok(r),
            HostEvent::Error(e) => Err(e.into()),
            HostEvent::Control { .. } => Err(LinkError::Aborted.into()),
        }
    }

    fn run(&mut self) -> Result<HostEvent, T1Error> {
        loop {
            while let Some(frame) = self.engine.poll_transmit() {
                self.bus.send(&frame)?;
            }
            if let Some(ev) = self.engine.poll_event() {
                return Ok(ev);
            }
            let now = self.now();
            let wait = self
                .engine
                .deadline()
                .map(|d| Duration::from_micros(d.saturating_sub(now)));
            match self.bus.recv(wait)? {
                Some(frame) => {
                    let now = self.now();
                    self.engine.on_frame(&frame, now);
                }
                None => {
                    let now = self.now();
                    self.engine.on_timeout(now);
                }
            }
        }
    }
}

/// Serves a card engine on a bus until the other side goes away. Each complete command goes to
/// `app` on a worker thread; while it works, the card asks for more time (S(WTX)) every
/// `wtx_interval`.
pub fn serve_card<B: Bus, F: FnMut(&[u8]) -> Vec<u8> + Send>(
    bus: &mut B,
    engine: &mut CardEngine,
    app: &mut F,
    wtx_interval: Duration,
) -> io::Result<()> {
    loop {
        let Some(frame) = (match bus.recv(None) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            other => other?,
        }) else {
            continue;
        };
        engine.on_frame(&frame);
        while let Some(ev) = engine.poll_event() {
            if let CardEvent::Apdu(cmd) = ev {
                let response = run_with_wtx(bus, engine, app, &cmd, wtx_interval)?;
                engine.respond(response);
            }
        }
        while let Some(out) = engine.poll_transmit() {
            bus.send(&out)?;
        }
    }
}

fn run_with_wtx<B: Bus, F: FnMut(&[u8]) -> Vec<u8> + Send>(
    bus: &mut B,
    engine: &mut CardEngine,
    app: &mut F,
    cmd: &[u8],
    wtx_interval: Duration,
) -> io::Result<Vec<u8>> {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        s.spawn(move || {
            let _ = tx.send(app(cmd));
        });
        loop {
            match rx.recv_timeout(wtx_interval) {
                Ok(r) => return Ok(r),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    engine.request_wtx(1);
                    while let Some(out) = engine.poll_transmit() {
                        bus.send(&out)?;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("the application panicked"));
                }
            }
        }
    })
}

/// What a card served by [`serve_unix`] is told.
#[derive(Debug)]
pub enum CardRequest<'a> {
    /// A host connected: the card powers on (the answer is ignored).
    PowerOn,
    Apdu(&'a [u8]),
    /// The connection ended with a link error (the answer is ignored).
    LinkError(&'a io::Error),
}

/// Serves a card as a T=1 secure element on every connection of a Unix listener (each
/// connection is a power-on), with the link parameters of `variant` and optional bus pacing.
pub fn serve_unix<F: FnMut(CardRequest<'_>) -> Vec<u8> + Send>(
    listener: &std::os::unix::net::UnixListener,
    variant: Variant,
    pace: Option<BusTiming>,
    mut card: F,
) -> io::Result<()> {
    for stream in listener.incoming() {
        serve_stream(stream?, variant, pace, &mut card);
    }
    Ok(())
}

/// Serves one host connection (power-on to disconnect) of a T=1 card on `stream`.
pub fn serve_stream<F: FnMut(CardRequest<'_>) -> Vec<u8> + Send>(
    stream: UnixStream,
    variant: Variant,
    pace: Option<BusTiming>,
    card: &mut F,
) {
    let profile = Profile::for_variant(variant);
    let link = |bwt_ms| LinkParams { bwt_ms, ifsc: 254 };
    let (bwt_ms, params) = match variant {
        Variant::Iso => (1600, Vec::new()),
        Variant::NxpI2c => (1000, params::nxp_atr(link(1000), b"KEYWARD")),
        Variant::Gp => (300, params::gp_cip(link(300), b"KEYWARD")),
    };
    card(CardRequest::PowerOn);
    let mut bus = UnixBus::new(stream, profile);
    if let Some(t) = pace {
        bus = bus.paced(t);
    }
    let mut engine = CardEngine::new(profile, 254, params);
    let mut app = |apdu: &[u8]| card(CardRequest::Apdu(apdu));
    let wtx = Duration::from_millis(bwt_ms / 3);
    if let Err(e) = serve_card(&mut bus, &mut engine, &mut app, wtx) {
        card(CardRequest::LinkError(&e));
    }
}
