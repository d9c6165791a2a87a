//! An HTTP/1 response read as bytes arrive: the head (httparse parses it; 1xx interim heads
//! skipped, a status other than 2xx a failure), how its body ends, and a chunked body
//! decoded under the same bounds as the others.

use super::super::{MAX_OUTPUT, brief};

/// The largest response head, interim heads included.
pub const HEAD_MAX: usize = 16 * 1024;

/// Header lines in one head: more than a real server sends, few enough for the stack.
const HEADERS_MAX: usize = 64;

/// The largest chunk-size line, extensions included.
const SIZE_LINE_MAX: usize = 1024;

/// How the body after a head ends.
#[derive(Debug, PartialEq)]
pub enum Framing {
    /// After this many bytes (`Content-Length`; 0 for a 204), at most [`MAX_OUTPUT`].
    Length(usize),
    Chunked,
    /// When the server closes the connection.
    Close,
}

pub fn too_long() -> String {
    format!("body longer than {} KiB", MAX_OUTPUT / 1024)
}

/// The final response head at the start of `bytes`: how its body ends and where the body
/// starts; `None` while it is incomplete. 1xx heads before it are skipped.
pub fn head(bytes: &[u8]) -> Result<Option<(Framing, usize)>, String> {
    let mut start = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut response = httparse::Response::new(&mut headers);
        let end = match response.parse(&bytes[start..]) {
            Ok(httparse::Status::Complete(len)) => start + len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(format!(
                    "response head with more than {HEADERS_MAX} header lines"
                ));
            }
            Err(err) => return Err(format!("not an HTTP/1 response: {err}")),
        };
        // A complete parse always has a code; 0 is no status and refused below.
        let status = response.code.unwrap_or_default();
        match status {
            101 => return Err("HTTP status 101: switched protocols unasked".into()),
            100..=199 => start = end,
            200..=299 => return Ok(Some((framing(status, response.headers)?, end))),
            _ => return Err(format!("HTTP status {status}")),
        }
    }
}

fn framing(status: u16, headers: &[httparse::Header]) -> Result<Framing, String> {
    if status == 204 {
        return Ok(Framing::Length(0));
    }
    // Transfer-Encoding overrides Content-Length (RFC 9112 6.3). Only chunked is decoded:
    // the request asks for no other coding.
    let mut codings = values(headers, "transfer-encoding").peekable();
    if codings.peek().is_some() {
        let codings: Vec<&[u8]> = codings.collect();
        return match codings[..] {
            [coding] if coding.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            _ => Err(format!(
                "Transfer-Encoding {:?} (only chunked is read)",
                shown(&codings.join(&b", "[..]))
            )),
        };
    }
    let mut length = None;
    for value in values(headers, "content-length") {
        let number = Some(value)
            .filter(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
            .ok_or_else(|| format!("bad Content-Length {:?}", shown(value)))?;
        if length.is_some_and(|length| length != number) {
            return Err("Content-Length given twice, differently".into());
        }
        length = Some(number);
    }
    match length {
        None => Ok(Framing::Close),
        Some(length) => usize::try_from(length)
            .ok()
            .filter(|&length| length <= MAX_OUTPUT)
            .map(Framing::Length)
            .ok_or_else(|| format!("{} (Content-Length {length})", too_long())),
    }
}

/// The comma-separated members of every `name` header, trimmed.
fn values<'a>(headers: &'a [httparse::Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

/// Bytes from the server, as text for a message.
fn shown(bytes: &[u8]) -> String {
    brief(&String::from_utf8_lossy(bytes))
}

/// A chunked body being decoded (RFC 9112 7.1): bytes go in as they arrive, the body comes
/// out, at most [`MAX_OUTPUT`] of it; chunk extensions and trailers are read and dropped.
#[derive(Debug, Default)]
pub struct Chunked {
    state: State,
    /// The chunk-size or trailer line so far.
    line: Vec<u8>,
    /// The trailer's bytes so far, bounded like a head.
    trailer: usize,
}

#[derive(Debug, Default, PartialEq)]
enum State {
    #[default]
    Size,
    Data(usize),
    /// After a chunk's data: its CR still to come (`false`), or its LF (`true`).
    DataEnd(bool),
    Trailer,
    Done,
}

impl Chunked {
    /// Decodes `input` onto `body`; whether the body is complete. Bytes after its end are
    /// ignored (the request asked for the connection to close).
    pub fn feed(&mut self, mut input: &[u8], body: &mut Vec<u8>) -> Result<bool, String> {
        while !input.is_empty() && self.state != State::Done {
            match self.state {
                State::Size | State::Trailer => {
                    let (take, ended) = match input.iter().position(|&b| b == b'\n') {
                        Some(at) => (at + 1, true),
                        None => (input.len(), false),
                    };
                    let max = match self.state {
                        State::Size => SIZE_LINE_MAX,
                        _ => HEAD_MAX - self.trailer,
                    };
                    if self.line.len() + take > max {
                        return Err(match self.state {
                            State::Size => format!("chunk-size line longer than {max} bytes"),
                            _ => format!("chunked trailer longer than {} KiB", HEAD_MAX / 1024),
                        });
                    }
                    self.line.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if ended {
                        self.line_ended(body.len())?;
                    }
                }
                State::Data(left) => {
                    let take = left.min(input.len());
                    body.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = match left - take {
                        0 => State::DataEnd(false),
                        left => State::Data(left),
                    };
                }
                State::DataEnd(cr_seen) => {
                    let expected = if cr_seen { b'\n' } else { b'\r' };
                    if input[0] != expected {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    input = &input[1..];
                    self.state = if cr_seen {
                        State::Size
                    } else {
                        State::DataEnd(true)
                    };
                }
                State::Done => {}
            }
        }
        Ok(self.state == State::Done)
    }

    /// A whole chunk-size or trailer line is in `line`; `had` body bytes came before it.
    fn line_ended(&mut self, had: usize) -> Result<(), String> {
        if self.state == State::Trailer {
            self.trailer += self.line.len();
            if self.line == b"\r\n" {
                self.state = State::Done;
            }
            self.line.clear();
            return Ok(());
        }
        // httparse takes an empty line for size 0: a size needs a digit first.
        let size = match httparse::parse_chunk_size(&self.line) {
            Ok(httparse::Status::Complete((_, size)))
                if self.line.first().is_some_and(u8::is_ascii_hexdigit) =>
            {
                size
            }
            _ => return Err(format!("bad chunk-size line {:?}", shown(&self.line))),
        };
        self.line.clear();
        self.state = match usize::try_from(size) {
            Ok(0) => State::Trailer,
            Ok(size) if size <= MAX_OUTPUT - had => State::Data(size),
            _ => return Err(too_long()),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing_of(head_text: &str) -> Result<Option<(Framing, usize)>, String> {
        head(head_text.as_bytes())
    }

    fn framing_with(headers: &str) -> Result<Framing, String> {
        let text = format!("HTTP/1.1 200 OK\r\n{headers}\r\n");
        Ok(framing_of(&text)?.expect("a complete head").0)
    }

    #[test]
    fn a_head_its_end_and_its_framing() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n20";
        assert_eq!(
            framing_of(text),
            Ok(Some((Framing::Length(2), text.len() - 2)))
        );
        assert_eq!(
            framing_with("Content-Length: 5, 5\r\nContent-Length: 5\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing_with("content-length:  7 \r\n"),
            Ok(Framing::Length(7))
        );
        assert_eq!(framing_with(""), Ok(Framing::Close));
        assert_eq!(
            framing_with("Transfer-Encoding: chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing_with("Content-Length: 3\r\nTransfer-Encoding: Chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing_of("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n")
                .unwrap()
                .unwrap()
                .0,
            Framing::Length(0)
        );
        assert_eq!(
            framing_of("HTTP/1.0 200 OK\n\nbare line feeds")
                .unwrap()
                .unwrap()
                .0,
            Framing::Close
        );
        assert_eq!(
            framing_with(&format!("Content-Length: {MAX_OUTPUT}\r\n")),
            Ok(Framing::Length(MAX_OUTPUT))
        );
    }

    #[test]
    fn interim_heads_are_skipped_and_a_protocol_switch_refused() {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n5";
        assert_eq!(
            framing_of(text),
            Ok(Some((Framing::Length(1), text.len() - 1)))
        );
        assert_eq!(
            framing_of("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2"),
            Ok(None)
        );
        assert_eq!(
            framing_of("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
            Err("HTTP status 101: switched protocols unasked".into())
        );
    }

    #[test]
    fn failures_say_what_was_wrong() {
        assert_eq!(
            framing_of("HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err("HTTP status 500".into())
        );
        assert_eq!(
            framing_of("HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n"),
            Err("HTTP status 301".into())
        );
        assert_eq!(
            framing_of("SSH-2.0-OpenSSH_9.2\r\n"),
            Err("not an HTTP/1 response: invalid HTTP version".into())
        );
        assert_eq!(
            framing_of("HTTP/2 200\r\n\r\n"),
            Err("not an HTTP/1 response: invalid HTTP version".into())
        );
        assert_eq!(
            framing_of("HTTP/1.1 2000 OK\r\n\r\n"),
            Err("not an HTTP/1 response: invalid response status".into())
        );
        let many = "X: y\r\n".repeat(HEADERS_MAX + 1);
        assert_eq!(
            framing_with(&many),
            Err(format!(
                "response head with more than {HEADERS_MAX} header lines"
            ))
        );
        assert_eq!(
            framing_with(&format!("Content-Length: {}\r\n", MAX_OUTPUT + 1)),
            Err(format!(
                "body longer than 64 KiB (Content-Length {})",
                MAX_OUTPUT + 1
            ))
        );
        assert_eq!(
            framing_with("Content-Length: 18446744073709551615\r\n"),
            Err("body longer than 64 KiB (Content-Length 18446744073709551615)".into())
        );
        for bad in ["-1", "", "0x10", "1e3", "18446744073709551616", "٣"] {
            assert_eq!(
                framing_with(&format!("Content-Length: {bad}\r\n")),
                Err(format!("bad Content-Length {:?}", bad.trim())),
                "{bad}"
            );
        }
        assert_eq!(
            framing_with("Content-Length: 5,\r\n"),
            Err("bad Content-Length \"\"".into())
        );
        assert_eq!(
            framing_with("Content-Length: 5\r\nContent-Length: 6\r\n"),
            Err("Content-Length given twice, differently".into())
        );
        assert_eq!(
            framing_with("Transfer-Encoding: gzip, chunked\r\n"),
            Err("Transfer-Encoding \"gzip, chunked\" (only chunked is read)".into())
        );
        assert_eq!(
            framing_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            Err("Transfer-Encoding \"chunked, chunked\" (only chunked is read)".into())
        );
    }

    #[test]
    fn every_truncated_head_is_incomplete() {
        let text = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: x\r\n\r\n";
        for end in 0..text.len() {
            assert_eq!(head(&text[..end]), Ok(None), "{end}");
        }
        assert!(head(text).unwrap().is_some());
    }

    /// Every response in `samples` cut anywhere and with any one byte changed to each of a
    /// few telling values: no panic, whatever the answer.
    fn mutations(samples: &[&[u8]], mut check: impl FnMut(&[u8])) {
        for sample in samples {
            for end in 0..=sample.len() {
                check(&sample[..end]);
            }
            for at in 0..sample.len() {
                for byte in [0, b'\r', b'\n', b' ', b':', b';', b'0', b'f', b'g', 0xff] {
                    let mut mutated = sample.to_vec();
                    mutated[at] = byte;
                    check(&mutated);
                }
            }
        }
    }

    const CHUNKED: &[u8] = b"4\r\nWiki\r\n5;name=value\r\npedia\r\n0\r\nExpires: never\r\n\r\n";

    #[test]
    fn the_parsers_never_panic() {
        mutations(
            &[
                b"HTTP/1.1 103 Early\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"HTTP/1.0 204 No Content\r\n\r\n",
            ],
            |bytes| {
                let _ = head(bytes);
            },
        );
        mutations(&[CHUNKED], |bytes| {
            let mut body = Vec::new();
            let _ = Chunked::default().feed(bytes, &mut body);
            assert!(body.len() <= MAX_OUTPUT);
        });
    }

    fn decode(pieces: &[&[u8]]) -> Result<(bool, Vec<u8>), String> {
        let mut decoder = Chunked::default();
        let mut body = Vec::new();
        let mut done = false;
        for piece in pieces {
            done = decoder.feed(piece, &mut body)?;
        }
        Ok((done, body))
    }

    #[test]
    fn a_chunked_body_whole_or_a_byte_at_a_time() {
        assert_eq!(decode(&[CHUNKED]), Ok((true, b"Wikipedia".to_vec())));
        let bytes: Vec<&[u8]> = CHUNKED.chunks(1).collect();
        assert_eq!(decode(&bytes), Ok((true, b"Wikipedia".to_vec())));
        assert_eq!(decode(&[b"0\r\n\r\n"]), Ok((true, Vec::new())));
        assert_eq!(
            decode(&[b"A \r\n0123456789\r\n0\r\n\r\nafter the end"]),
            Ok((true, b"0123456789".to_vec()))
        );
        for end in 0..CHUNKED.len() {
            assert_eq!(
                decode(&[&CHUNKED[..end]]).map(|(done, _)| done),
                Ok(false),
                "{end}"
            );
        }
    }

    #[test]
    fn bad_chunks_are_refused() {
        let err = |bytes: &[u8]| decode(&[bytes]).unwrap_err();
        assert_eq!(err(b"x\r\n"), "bad chunk-size line \"x\"");
        assert_eq!(err(b"\r\n"), "bad chunk-size line \"\"");
        assert_eq!(err(b";ext\r\n"), "bad chunk-size line \";ext\"");
        assert_eq!(err(b"5\n"), "bad chunk-size line \"5\"");
        assert_eq!(err(b"5;a\n"), "bad chunk-size line \"5;a\"");
        assert_eq!(err(b"1 2\r\n"), "bad chunk-size line \"1 2\"");
        assert_eq!(err(b"-1\r\n"), "bad chunk-size line \"-1\"");
        assert_eq!(
            err(b"10000000000000000\r\n"),
            "bad chunk-size line \"10000000000000000\""
        );
        assert_eq!(err(b"4\r\nWikiX"), "chunk data not followed by CRLF");
        assert_eq!(err(b"4\r\nWiki\rX"), "chunk data not followed by CRLF");
        assert_eq!(err(b"4\r\nWiki\n"), "chunk data not followed by CRLF");
        assert_eq!(err(b"ffffffffffffffff\r\n"), "body longer than 64 KiB");
        assert_eq!(err(b"10001\r\n"), "body longer than 64 KiB");
        let half = format!("8000\r\n{}\r\n", "x".repeat(0x8000));
        assert_eq!(
            decode(&[half.as_bytes(), half.as_bytes(), b"0\r\n\r\n"])
                .unwrap()
                .1
                .len(),
            MAX_OUTPUT
        );
        assert_eq!(
            decode(&[half.as_bytes(), half.as_bytes(), b"1\r\n"]).unwrap_err(),
            "body longer than 64 KiB"
        );
        let extension = format!("1;{}\r\n", "e".repeat(SIZE_LINE_MAX));
        assert_eq!(
            err(extension.as_bytes()),
            format!("chunk-size line longer than {SIZE_LINE_MAX} bytes")
        );
        let trailer = format!("0\r\n{}", "T: v\r\n".repeat(HEAD_MAX / 6 + 1));
        assert_eq!(
            err(trailer.as_bytes()),
            "chunked trailer longer than 16 KiB"
        );
    }
}
