//! A custom monitor's HTTP source: one plain `http://` GET over a socket of its own (no TLS:
//! the source is a local endpoint; no proxy, no redirects, `Connection: close`), within the
//! source's timeout for connecting, sending and reading, the head at most 16 KiB and the body
//! at most [`MAX_OUTPUT`]; a status other than 2xx is a failure. A client crate (ureq) cost
//! every probe 5 % in start-up relocations whether or not a config had an HTTP source.

mod response;
mod url;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use response::{Chunked, Framing, HEAD_MAX, too_long};
use url::Target;

use super::MAX_OUTPUT;

pub fn get(url: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let target = url::parse(url)?;
    let mut connection = Connection::open(&target, Clock { deadline, timeout })?;
    connection.send(request(&target).as_bytes())?;
    let body = connection.receive()?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn request(target: &Target) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lb-feedback/{}\r\nConnection: close\r\n\r\n",
        target.path,
        target.authority,
        env!("CARGO_PKG_VERSION")
    )
}

/// The one deadline every step shares.
#[derive(Clone, Copy)]
struct Clock {
    deadline: Instant,
    timeout: Duration,
}

impl Clock {
    /// The time left for `doing`, or the failure if there is none.
    fn left(self, doing: &str) -> Result<Duration, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out(doing));
        }
        Ok(left)
    }

    fn timed_out(self, doing: &str) -> String {
        format!("timed out after {} ms {doing}", self.timeout.as_millis())
    }
}

struct Connection {
    stream: TcpStream,
    clock: Clock,
    buffer: [u8; 4096],
}

impl Connection {
    /// Connects to the first of the host's addresses that answers.
    fn open(target: &Target, clock: Clock) -> Result<Connection, String> {
        // The name lookup is the one step no timeout reaches (getaddrinfo has none); the
        // source's collector stops waiting for it at the deadline all the same.
        let addresses = (target.host, target.port)
            .to_socket_addrs()
            .map_err(|err| format!("cannot resolve {}: {err}", target.host))?;
        let mut failures = Vec::new();
        for address in addresses {
            let doing = format!("connecting to {address}");
            match TcpStream::connect_timeout(&address, clock.left(&doing)?) {
                Ok(stream) => {
                    return Ok(Connection {
                        stream,
                        clock,
                        buffer: [0; 4096],
                    });
                }
                Err(err) if timed_out(err.kind()) => return Err(clock.timed_out(&doing)),
                Err(err) => failures.push(format!("{address}: {err}")),
            }
        }
        if failures.is_empty() {
            return Err(format!("{} has no address", target.host));
        }
        Err(format!("cannot connect to {}", failures.join("; ")))
    }

    fn send(&mut self, mut request: &[u8]) -> Result<(), String> {
        const DOING: &str = "sending the request";
        while !request.is_empty() {
            let left = self.clock.left(DOING)?;
            self.stream
                .set_write_timeout(Some(left))
                .map_err(|err| format!("{DOING}: {err}"))?;
            match self.stream.write(request) {
                Ok(0) => return Err(format!("{DOING}: the connection closed")),
                Ok(sent) => request = &request[sent..],
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if timed_out(err.kind()) => return Err(self.clock.timed_out(DOING)),
                Err(err) => return Err(format!("{DOING}: {err}")),
            }
        }
        Ok(())
    }

    /// The next bytes from the server, none when it has closed the connection.
    fn read(&mut self, doing: &str) -> Result<&[u8], String> {
        loop {
            let left = self.clock.left(doing)?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|err| format!("{doing}: {err}"))?;
            match self.stream.read(&mut self.buffer) {
                Ok(read) => return Ok(&self.buffer[..read]),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if timed_out(err.kind()) => return Err(self.clock.timed_out(doing)),
                Err(err) => return Err(format!("{doing}: {err}")),
            }
        }
    }

    /// The body of a 2xx response.
    fn receive(&mut self) -> Result<Vec<u8>, String> {
        const DOING: &str = "waiting for the response head";
        let mut head = Vec::new();
        let (framing, start) = loop {
            let bytes = self.read(DOING)?;
            if bytes.is_empty() {
                return Err(match head.len() {
                    0 => "the connection closed without a response".into(),
                    got => format!("the connection closed after {got} bytes of response head"),
                });
            }
            // A head ends with a line: parse again only when one has.
            let line_ended = bytes.contains(&b'\n');
            head.extend_from_slice(bytes);
            if line_ended && let Some(found) = response::head(&head[..head.len().min(HEAD_MAX)])? {
                break found;
            }
            if head.len() >= HEAD_MAX {
                return Err(format!("response head longer than {} KiB", HEAD_MAX / 1024));
            }
        };
        let early = &head[start..];
        match framing {
            Framing::Length(length) => self.exactly(length, early),
            Framing::Close => self.until_close(early),
            Framing::Chunked => self.chunked(early),
        }
    }

    fn exactly(&mut self, length: usize, early: &[u8]) -> Result<Vec<u8>, String> {
        let mut body = early[..early.len().min(length)].to_vec();
        while body.len() < length {
            let bytes = self.read("reading the body")?;
            if bytes.is_empty() {
                return Err(format!(
                    "the connection closed after {} of the {length} bytes of body",
                    body.len()
                ));
            }
            body.extend_from_slice(&bytes[..bytes.len().min(length - body.len())]);
        }
        Ok(body)
    }

    fn until_close(&mut self, early: &[u8]) -> Result<Vec<u8>, String> {
        let mut body = early.to_vec();
        while body.len() <= MAX_OUTPUT {
            let bytes = self.read("reading the body")?;
            if bytes.is_empty() {
                return Ok(body);
            }
            body.extend_from_slice(bytes);
        }
        Err(too_long())
    }

    fn chunked(&mut self, early: &[u8]) -> Result<Vec<u8>, String> {
        let mut decoder = Chunked::default();
        let mut body = Vec::new();
        let mut done = decoder.feed(early, &mut body)?;
        while !done {
            let bytes = self.read("reading the chunked body")?;
            if bytes.is_empty() {
                return Err("the connection closed inside the chunked body".into());
            }
            done = decoder.feed(bytes, &mut body)?;
        }
        Ok(body)
    }
}

/// A socket's timeout: `WouldBlock` on Unix, `TimedOut` on Windows and for connect.
fn timed_out(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddr, TcpListener};
    use std::sync::mpsc;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A real server for one connection on `bind`: it reads the request head, hands it to
    /// the returned channel and lets `answer` do what it will with the socket.
    fn server_on(
        bind: &str,
        answer: impl FnOnce(&mut TcpStream) + Send + 'static,
    ) -> Option<(SocketAddr, mpsc::Receiver<String>)> {
        let listener = TcpListener::bind(bind).ok()?;
        let address = listener.local_addr().unwrap();
        let (send, request) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut head = Vec::new();
            let mut byte = [0];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = send.send(String::from_utf8_lossy(&head).into_owned());
            answer(&mut stream);
        });
        Some((address, request))
    }

    fn server(answer: impl FnOnce(&mut TcpStream) + Send + 'static) -> SocketAddr {
        server_on("127.0.0.1:0", answer).unwrap().0
    }

    /// A server that writes `response` in pieces of `piece` bytes, then closes.
    fn canned(response: impl AsRef<[u8]> + Send + 'static, piece: usize) -> SocketAddr {
        server(move |stream| {
            stream.set_nodelay(true).unwrap();
            for part in response.as_ref().chunks(piece) {
                if stream.write_all(part).is_err() {
                    return;
                }
            }
        })
    }

    fn fetch(address: SocketAddr, timeout: Duration) -> Result<String, String> {
        get(&format!("http://{address}/"), timeout)
    }

    /// Reads until the client has gone, answering nothing.
    fn silent(stream: &mut TcpStream) {
        let _ = stream.read_to_end(&mut Vec::new());
    }

    #[test]
    fn the_request_and_a_body_of_a_given_length() {
        let (address, request) = server_on("127.0.0.1:0", |stream| {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n20\nignored");
        })
        .unwrap();
        assert_eq!(
            get(&format!("http://{address}/load?x=1#top"), TIMEOUT),
            Ok("20\n".into())
        );
        assert_eq!(
            request.recv().unwrap(),
            format!(
                "GET /load?x=1 HTTP/1.1\r\nHost: {address}\r\nUser-Agent: lb-feedback/{}\r\n\
                 Connection: close\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn a_chunked_body_after_an_interim_response_in_small_pieces() {
        let response =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                         4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nT: v\r\n\r\n";
        assert_eq!(fetch(canned(response, 3), TIMEOUT), Ok("Wikipedia".into()));
    }

    #[test]
    fn a_body_that_ends_when_the_server_closes() {
        let response = b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\n{\"load\": 20}";
        assert_eq!(
            fetch(canned(response, 5), TIMEOUT),
            Ok("{\"load\": 20}".into())
        );
        let most = format!("HTTP/1.0 200 OK\r\n\r\n{}", "7".repeat(MAX_OUTPUT));
        assert_eq!(
            fetch(canned(most, 1000), TIMEOUT).map(|body| body.len()),
            Ok(MAX_OUTPUT)
        );
    }

    #[test]
    fn failures_from_the_server_say_what_went_wrong() {
        let check = |response: String, expected: &str| {
            assert_eq!(fetch(canned(response, 4096), TIMEOUT), Err(expected.into()));
        };
        check(
            "HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\n35\n".into(),
            "HTTP status 500",
        );
        check(
            "SSH-2.0-OpenSSH_9.2\r\n".into(),
            "not an HTTP/1 response: invalid HTTP version",
        );
        check(String::new(), "the connection closed without a response");
        check(
            "HTTP/1.1 200 OK\r\n".into(),
            "the connection closed after 17 bytes of response head",
        );
        check(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n123".into(),
            "the connection closed after 3 of the 10 bytes of body",
        );
        check(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12".into(),
            "the connection closed inside the chunked body",
        );
        check(
            format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "x".repeat(HEAD_MAX)),
            "response head longer than 16 KiB",
        );
        check(
            format!("HTTP/1.0 200 OK\r\n\r\n{}", "7".repeat(MAX_OUTPUT + 1)),
            "body longer than 64 KiB",
        );
        let chunk = format!("8000\r\n{}\r\n", "7".repeat(0x8000));
        check(
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}1\r\n"),
            "body longer than 64 KiB",
        );
        check(
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n".into(),
            "body longer than 64 KiB (Content-Length 99999999)",
        );
    }

    #[test]
    fn a_server_that_never_answers_or_stops_halfway_meets_the_deadline() {
        let timeout = Duration::from_millis(300);
        assert_eq!(
            fetch(server(silent), timeout),
            Err("timed out after 300 ms waiting for the response head".into())
        );
        let halfway = server(|stream| {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n2");
            silent(stream);
        });
        assert_eq!(
            fetch(halfway, timeout),
            Err("timed out after 300 ms reading the body".into())
        );
        // A byte at a time, each in time: the deadline is the whole request's, not a read's.
        let dripping = server(|stream| {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(20));
                if stream.write_all(b"7").is_err() {
                    return;
                }
            }
        });
        assert_eq!(
            fetch(dripping, timeout),
            Err("timed out after 300 ms reading the body".into())
        );
    }

    #[test]
    fn nothing_listening_is_refused_with_the_address() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = fetch(closed, TIMEOUT).unwrap_err();
        assert!(
            err.starts_with(&format!("cannot connect to {closed}: ")),
            "{err}"
        );
    }

    #[test]
    fn a_name_and_an_ipv6_address() {
        let (address, request) = server_on("127.0.0.1:0", |stream| {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n4");
        })
        .unwrap();
        let url = format!("http://localhost:{}/", address.port());
        assert_eq!(get(&url, TIMEOUT), Ok("4".into()));
        assert!(
            request
                .recv()
                .unwrap()
                .contains(&format!("\r\nHost: localhost:{}\r\n", address.port()))
        );
        let answer = |stream: &mut TcpStream| {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n6");
        };
        let Some((address, request)) = server_on("[::1]:0", answer) else {
            eprintln!("skipped: no IPv6 loopback here");
            return;
        };
        assert_eq!(get(&format!("http://{address}/"), TIMEOUT), Ok("6".into()));
        assert!(
            request
                .recv()
                .unwrap()
                .contains(&format!("\r\nHost: {address}\r\n"))
        );
    }

    #[test]
    fn an_unresolvable_name() {
        let err = get("http://nowhere.invalid/", TIMEOUT).unwrap_err();
        assert!(err.starts_with("cannot resolve nowhere.invalid: "), "{err}");
    }
}
