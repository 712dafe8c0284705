//! Attaches an element to vsmartcard's vpcd (the virtual reader driver inside pcscd) as a virtual
//! card. vpcd listens; the card connects as a TCP client. Every message is a 2-byte big-endian
//! length and a payload; a 1-byte payload is a control code (00 power off, 01 power on, 02 reset,
//! 04 get ATR), anything longer is a command APDU answered with its response APDU.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::SockRef;

use crate::applet::{ATR, Applet, Persist};

const POWER_OFF: u8 = 0x00;
const POWER_ON: u8 = 0x01;
const RESET: u8 = 0x02;
const GET_ATR: u8 = 0x04;

/// How long to wait between attempts to reach vpcd (pcscd not yet running or restarting).
const RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// Serves `applet` to the vpcd at `addr` until `stop` is set, reconnecting whenever the
/// connection drops (e.g. pcscd restarts). Each new connection is a card insertion.
pub fn serve<P: Persist>(applet: &mut Applet<P>, addr: &str, stop: &AtomicBool) {
    let mut announced_wait = false;
    while !stop.load(Ordering::Relaxed) {
        match TcpStream::connect(addr) {
            Ok(stream) => {
                announced_wait = false;
                tracing::info!(addr, "attached to vpcd");
                applet.reset();
                match serve_connection(applet, stream, stop) {
                    Ok(()) => tracing::info!(addr, "vpcd closed the connection"),
                    Err(e) => tracing::warn!(addr, error = %e, "vpcd connection lost"),
                }
                applet.reset();
            }
            Err(e) => {
                if !announced_wait {
                    tracing::info!(addr, error = %e, "waiting for vpcd");
                    announced_wait = true;
                }
                std::thread::sleep(RECONNECT_DELAY);
            }
        }
    }
}

fn serve_connection<P: Persist>(
    applet: &mut Applet<P>,
    mut stream: TcpStream,
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    // A read timeout lets the loop notice `stop` while vpcd is idle.
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut frames = Deframer::default();
    let mut out = Vec::with_capacity(4096);
    loop {
        let Some(payload) = next_frame(&mut stream, &mut frames, stop)? else {
            return Ok(());
        };
        let reply = match payload.as_slice() {
            [POWER_OFF] | [POWER_ON] | [RESET] => {
                applet.reset();
                None
            }
            [GET_ATR] => Some(ATR.to_vec()),
            [other] => {
                tracing::warn!(code = other, "unknown vpcd control code");
                None
            }
            [] => None,
            apdu => Some(applet.transmit(apdu)),
        };
        if let Some(reply) = reply {
            out.clear();
            let n =
                u16::try_from(reply.len()).map_err(|_| io::Error::other("response too long"))?;
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(&reply);
            // Length and payload in one write: two writes would meet Nagle/delayed-ACK stalls.
            stream.write_all(&out)?;
        }
    }
}

/// Reads until `frames` yields a complete frame; `None` when the peer closed or `stop` was set.
fn next_frame(
    stream: &mut TcpStream,
    frames: &mut Deframer,
    stop: &AtomicBool,
) -> io::Result<Option<Vec<u8>>> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(frame) = frames.next_frame() {
            return Ok(Some(frame));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                frames.push(&chunk[..n]);
                // Linux clears TCP_QUICKACK after use; without it every round trip can wait ~40 ms
                // for a delayed ACK (vpcd writes the length and the payload separately).
                let _ = SockRef::from(&*stream).set_tcp_quickack(true);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// vpcd framing without I/O: bytes in, complete `length ‖ payload` frames out.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame's payload, if one has arrived.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        let (len, rest) = self.buf.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        let payload = rest.get(..len)?.to_vec();
        self.buf.drain(..2 + len);
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::Deframer;

    #[test]
    fn deframes_split_and_coalesced_input() {
        let mut d = Deframer::default();
        d.push(&[0x00]);
        assert_eq!(d.next_frame(), None);
        d.push(&[0x01, 0x04, 0x00, 0x03, 0xAA]);
        assert_eq!(d.next_frame(), Some(vec![0x04]));
        assert_eq!(d.next_frame(), None);
        d.push(&[0xBB, 0xCC, 0x00, 0x00]);
        assert_eq!(d.next_frame(), Some(vec![0xAA, 0xBB, 0xCC]));
        assert_eq!(d.next_frame(), Some(vec![]));
        assert_eq!(d.next_frame(), None);
    }
}
