use keyward_apdu::{Command, Response};
use keyward_se::{Applet, Persist};
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CardError {
    #[error("PC/SC")]
    Pcsc(#[from] pcsc::Error),
    #[error("no PC/SC reader with a card matches {0:?}")]
    NoReader(String),
    #[error(transparent)]
    Apdu(#[from] keyward_apdu::ApduError),
    #[error(transparent)]
    Sm(#[from] keyward_sm::SmError),
    #[error(
        "unknown transport {0:?} (expected pcsc:READER-PREFIX, t1:unix:PATH[?variant=iso|nxp-i2c|gp] or se:STATE-FILE)"
    )]
    UnknownTransport(String),
    #[error(transparent)]
    T1(#[from] keyward_t1::bus::T1Error),
    #[error("{0}: {1}")]
    Connect(String, std::io::Error),
    #[error(transparent)]
    Element(#[from] keyward_se::StorageError),
    #[error("this transport cannot reset the card")]
    ResetUnsupported,
}

/// Anything that carries APDUs to a card.
pub trait CardChannel {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError>;

    /// The card's ATR (a transport that has none of its own reports the SmartCard-HSM's).
    fn atr(&mut self) -> Vec<u8> {
        keyward_se::ATR.to_vec()
    }

    /// Resets the card and returns its ATR.
    fn reset(&mut self) -> Result<Vec<u8>, CardError> {
        Err(CardError::ResetUnsupported)
    }

    /// Sends a command and parses the response.
    fn transmit(&mut self, cmd: &Command) -> Result<Response, CardError> {
        let raw = self.transmit_raw(&cmd.encode()?)?;
        Ok(Response::parse(&raw)?)
    }
}

impl<C: CardChannel + ?Sized> CardChannel for Box<C> {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        (**self).transmit_raw(apdu)
    }

    fn atr(&mut self) -> Vec<u8> {
        (**self).atr()
    }

    fn reset(&mut self) -> Result<Vec<u8>, CardError> {
        (**self).reset()
    }
}

impl<C: CardChannel + ?Sized> CardChannel for &mut C {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        (**self).transmit_raw(apdu)
    }

    fn atr(&mut self) -> Vec<u8> {
        (**self).atr()
    }

    fn reset(&mut self) -> Result<Vec<u8>, CardError> {
        (**self).reset()
    }
}

/// A virtual element in this process.
pub struct InProcess<P: Persist>(pub Applet<P>);

impl<P: Persist> CardChannel for InProcess<P> {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        Ok(self.0.transmit(apdu))
    }

    fn reset(&mut self) -> Result<Vec<u8>, CardError> {
        self.0.reset();
        Ok(keyward_se::ATR.to_vec())
    }
}

/// A card in a PC/SC reader (real SmartCard-HSM / Nitrokey HSM 2, or an element behind vpcd).
pub struct PcscChannel {
    card: pcsc::Card,
    buf: Vec<u8>,
}

impl PcscChannel {
    /// Connects to the first reader whose name starts with `prefix` and holds a card.
    pub fn connect(prefix: &str) -> Result<Self, CardError> {
        let ctx = pcsc::Context::establish(pcsc::Scope::User)?;
        for reader in ctx.list_readers_owned()? {
            if !reader.to_string_lossy().starts_with(prefix) {
                continue;
            }
            if let Ok(card) = ctx.connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
                return Ok(Self {
                    card,
                    buf: vec![0; 65538],
                });
            }
        }
        Err(CardError::NoReader(prefix.to_string()))
    }
}

impl CardChannel for PcscChannel {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        Ok(self.card.transmit(apdu, &mut self.buf)?.to_vec())
    }

    fn atr(&mut self) -> Vec<u8> {
        self.card
            .status2_owned()
            .map(|s| s.atr().to_vec())
            .unwrap_or_else(|_| keyward_se::ATR.to_vec())
    }

    fn reset(&mut self) -> Result<Vec<u8>, CardError> {
        self.card.reconnect(
            pcsc::ShareMode::Shared,
            pcsc::Protocols::ANY,
            pcsc::Disposition::ResetCard,
        )?;
        Ok(self.atr())
    }
}

/// An element behind a T=1 link (an I2C/SPI secure element, or `keyward se serve --t1`).
pub struct T1Channel(keyward_t1::bus::HostLink<keyward_t1::bus::UnixBus>);

impl T1Channel {
    /// Connects to `keyward se serve --t1 unix:PATH` with the given link variant.
    pub fn connect_unix(path: &str, variant: keyward_t1::Variant) -> Result<Self, CardError> {
        let stream = std::os::unix::net::UnixStream::connect(path)
            .map_err(|e| CardError::Connect(path.to_string(), e))?;
        Self::over(stream, variant)
    }

    /// A T=1 link over a connected stream (e.g. one end of a socket pair).
    pub fn over(
        stream: std::os::unix::net::UnixStream,
        variant: keyward_t1::Variant,
    ) -> Result<Self, CardError> {
        let profile = keyward_t1::Profile::for_variant(variant);
        let bus = keyward_t1::bus::UnixBus::new(stream, profile);
        Ok(Self(keyward_t1::bus::HostLink::open(bus, profile)?))
    }
}

impl CardChannel for T1Channel {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        Ok(self.0.transmit(apdu)?)
    }
}

/// Parses a link variant name: `iso`, `nxp-i2c` or `gp`.
pub fn parse_variant(s: &str) -> Option<keyward_t1::Variant> {
    match s {
        "iso" => Some(keyward_t1::Variant::Iso),
        "nxp-i2c" | "nxp" => Some(keyward_t1::Variant::NxpI2c),
        "gp" => Some(keyward_t1::Variant::Gp),
        _ => None,
    }
}

/// Opens a transport written `pcsc:READER-PREFIX` or `se:STATE-FILE` (an in-process element).
pub fn open_transport(spec: &str) -> Result<Box<dyn CardChannel + Send>, CardError> {
    if let Some(prefix) = spec.strip_prefix("pcsc:") {
        return Ok(Box::new(PcscChannel::connect(prefix)?));
    }
    if let Some(rest) = spec.strip_prefix("t1:unix:") {
        let (path, variant) = match rest.split_once("?variant=") {
            Some((p, v)) => (
                p,
                parse_variant(v).ok_or_else(|| CardError::UnknownTransport(spec.to_string()))?,
            ),
            None => (rest, keyward_t1::Variant::Iso),
        };
        return Ok(Box::new(T1Channel::connect_unix(path, variant)?));
    }
    if let Some(path) = spec.strip_prefix("se:") {
        let path = std::path::Path::new(path);
        let (file, state) =
            keyward_se::StateFile::open(path, &keyward_se::StateFile::default_key_path(path))?;
        return Ok(Box::new(InProcess(Applet::new(state, file))));
    }
    Err(CardError::UnknownTransport(spec.to_string()))
}
