//! The inetd side of a probe: is stdio a socket, the bounded read of HAProxy's `agent-send`,
//! the write that says whether the reply was delivered, and the clean ending (half-close,
//! drain) that lets HAProxy see a FIN, not a reset.

use std::io::{self, Read};
use std::time::{Duration, Instant};

/// At most this much of `agent-send` is read; HAProxy sends a short fixed string.
pub const REQUEST_LIMIT: usize = 1024;
/// After the reply, unread input is drained for at most this long and this much.
pub const DRAIN_TIME: Duration = Duration::from_millis(500);
const DRAIN_LIMIT: usize = 64 * 1024;

#[cfg(unix)]
mod os {
    use std::fs::File;
    use std::mem::ManuallyDrop;
    use std::net::TcpStream;
    use std::os::fd::{FromRawFd, RawFd};
    use std::os::unix::fs::FileTypeExt;

    pub fn is_socket(fd: RawFd) -> bool {
        // SAFETY: the File is never dropped, so the descriptor is only looked at, not closed.
        let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        file.metadata().is_ok_and(|m| m.file_type().is_socket())
    }

    /// Socket calls on a descriptor we do not own; `TcpStream` only issues generic socket
    /// calls (read, write, shutdown, SO_RCVTIMEO), which work for any stream socket.
    pub fn borrow(fd: RawFd) -> ManuallyDrop<TcpStream> {
        // SAFETY: as above, ManuallyDrop keeps the descriptor open for the process.
        ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) })
    }

    /// Whether the peer has shut down its side: its FIN (Linux says so even with unread data
    /// before it), a reset, or a hang-up.
    pub fn peer_shut(stream: &TcpStream) -> bool {
        use std::os::fd::AsRawFd;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        const SHUT: libc::c_short = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        const SHUT: libc::c_short = libc::POLLHUP | libc::POLLERR;
        let mut fd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: SHUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the length given; a zero timeout never blocks.
        let ready = unsafe { libc::poll(&mut fd, 1, 0) };
        ready > 0 && fd.revents & SHUT != 0
    }
}

/// Windows gives no shut-down flag without reading: only a failed write tells.
#[cfg(not(unix))]
mod os {
    pub fn peer_shut(_stream: &std::net::TcpStream) -> bool {
        false
    }
}

/// Why a reply does not count as delivered (docs/recovery.md, "Delivered replies").
#[derive(Debug)]
pub enum Undelivered {
    /// The peer had shut down its side before the write: it may never read the reply (a
    /// person's `socat` with empty input, a client gone). The reply was written all the same.
    PeerShut,
    /// The write failed or fell short (a reset, `EPIPE`, a timeout).
    Write(io::Error),
}

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undelivered::PeerShut => write!(f, "the peer had closed its side before the reply"),
            Undelivered::Write(err) => write!(f, "{err}"),
        }
    }
}

/// Writes the whole reply; `Ok` only when the peer had not shut down its side before it and
/// every byte was accepted by the kernel. A reply counts toward recovery only then.
pub fn write_reply(output: &mut std::net::TcpStream, reply: &[u8]) -> Result<(), Undelivered> {
    use std::io::Write;
    let shut = os::peer_shut(output);
    output
        .write_all(reply)
        .and_then(|()| output.flush())
        .map_err(Undelivered::Write)?;
    match shut {
        true => Err(Undelivered::PeerShut),
        false => Ok(()),
    }
}

/// True when stdin, stdout or stderr is a socket: xinetd and systemd hand the connection over
/// as stdio, and then a byte on stderr would reach HAProxy ahead of the reply.
pub fn stdio_is_socket() -> bool {
    #[cfg(unix)]
    {
        (0..=2).any(os::is_socket)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// The connection handed over on stdin/stdout.
#[cfg(unix)]
pub struct Inetd {
    input: std::mem::ManuallyDrop<std::net::TcpStream>,
    output: std::mem::ManuallyDrop<std::net::TcpStream>,
    request: Vec<u8>,
    request_done: bool,
}

/// Off Unix no inetd hands over stdio; the type exists so callers need no `cfg`.
#[cfg(not(unix))]
pub enum Inetd {}

#[cfg(not(unix))]
impl Inetd {
    pub fn read_request(&mut self, _deadline: Instant) -> &[u8] {
        match *self {}
    }

    pub fn finish(self, _reply: &[u8]) -> Result<(), Undelivered> {
        match self {}
    }

    pub fn peer(&self) -> Option<std::net::IpAddr> {
        match *self {}
    }
}

#[cfg(unix)]
impl Inetd {
    /// The connection, when stdin is a socket.
    pub fn from_stdio() -> Option<Inetd> {
        if !os::is_socket(0) {
            return None;
        }
        let output_fd = if os::is_socket(1) { 1 } else { 0 };
        Some(Inetd {
            input: os::borrow(0),
            output: os::borrow(output_fd),
            request: Vec::new(),
            request_done: false,
        })
    }

    /// The load balancer's address (`getpeername`); `None` for a socket without one.
    pub fn peer(&self) -> Option<std::net::IpAddr> {
        self.input.peer_addr().ok().map(|addr| addr.ip())
    }

    /// Reads `agent-send` until a newline, end of input, the size limit or `deadline`,
    /// whichever comes first; later calls return what was read. Never waits past `deadline`.
    pub fn read_request(&mut self, deadline: Instant) -> &[u8] {
        read_line(
            &mut self.input,
            &mut self.request,
            &mut self.request_done,
            deadline,
        );
        &self.request
    }

    /// Writes the reply, half-closes so HAProxy sees the end, then drains what it still
    /// sends so the close does not turn into a reset; says whether the reply was delivered.
    pub fn finish(mut self, reply: &[u8]) -> Result<(), Undelivered> {
        let written = write_reply(&mut self.output, reply);
        let _ = self.output.shutdown(std::net::Shutdown::Write);
        drain(&mut self.input, Instant::now() + DRAIN_TIME);
        written
    }
}

/// Reads `agent-send` from `input` into `request` until a newline, end of input, the size
/// limit or `deadline`; sets `done` when no more is worth reading.
pub fn read_line(
    input: &mut std::net::TcpStream,
    request: &mut Vec<u8>,
    done: &mut bool,
    deadline: Instant,
) {
    let mut chunk = [0u8; REQUEST_LIMIT];
    while !*done {
        let Some(left) = remaining(deadline) else {
            return;
        };
        if input.set_read_timeout(Some(left)).is_err() {
            *done = true;
            return;
        }
        let room = REQUEST_LIMIT - request.len();
        match input.read(&mut chunk[..room]) {
            Ok(0) => *done = true,
            Ok(n) => {
                request.extend_from_slice(&chunk[..n]);
                *done = request.contains(&b'\n') || request.len() >= REQUEST_LIMIT;
            }
            Err(err) if is_timeout(&err) => return,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => *done = true,
        }
    }
}

/// After the reply: reads and drops what the peer still sends, bounded in time and size, so
/// the close is a FIN and not a reset.
pub fn drain(input: &mut std::net::TcpStream, deadline: Instant) {
    let mut chunk = [0u8; 4096];
    let mut total = 0;
    while total < DRAIN_LIMIT {
        let Some(left) = remaining(deadline) else {
            return;
        };
        if input.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match input.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => total += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Time left before `deadline`, or `None` when it has passed (a zero timeout would block).
fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (left >= Duration::from_micros(1)).then_some(left)
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The first line of `agent-send`, trimmed: what selects a profile.
pub fn request_line(request: &[u8]) -> Option<String> {
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn request_line_takes_the_first_trimmed_line() {
        assert_eq!(request_line(b"rdp\n"), Some("rdp".into()));
        assert_eq!(request_line(b" web \r\nmore\n"), Some("web".into()));
        assert_eq!(request_line(b""), None);
        assert_eq!(request_line(b"\n"), None);
    }

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn read_line_stops_at_newline_without_waiting_for_the_deadline() {
        let (mut client, mut server) = pair();
        client.write_all(b"rdp\nignored").unwrap();
        let (mut request, mut done) = (Vec::new(), false);
        let start = Instant::now();
        read_line(
            &mut server,
            &mut request,
            &mut done,
            start + Duration::from_secs(5),
        );
        assert!(done);
        assert!(request.starts_with(b"rdp\n"));
        assert!(start.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn read_line_gives_up_at_the_deadline_when_nothing_comes() {
        let (_client, mut server) = pair();
        let (mut request, mut done) = (Vec::new(), false);
        let start = Instant::now();
        read_line(
            &mut server,
            &mut request,
            &mut done,
            start + Duration::from_millis(100),
        );
        assert!(!done);
        assert!(request.is_empty());
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(90) && waited < Duration::from_secs(3));
    }

    #[test]
    fn read_line_is_bounded() {
        let (mut client, mut server) = pair();
        client.write_all(&[b'x'; 3000]).unwrap();
        let (mut request, mut done) = (Vec::new(), false);
        read_line(
            &mut server,
            &mut request,
            &mut done,
            Instant::now() + Duration::from_secs(5),
        );
        assert!(done);
        assert_eq!(request.len(), REQUEST_LIMIT);
    }
}
