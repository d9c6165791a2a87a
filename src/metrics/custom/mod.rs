//! Custom monitors' values: each source runs in a thread of its own, started before the CPU
//! window and collected after it, so a probe is no slower than its window, and each gives a
//! number or a failure within its own deadline. The value rule is pure: the first number in
//! the output, or the number at a JSON pointer.

pub mod command;
pub mod file;
pub mod http;
mod monitor;
pub mod orphans;

pub use monitor::Custom;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::{Source, SourceKind};

/// The most a command's output, a file or an HTTP body may hold; more is a failure.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// A source's collector waits this long past the source's deadline for its thread to report,
/// then gives up on it: a killed command's last bytes or a slow close need a moment, and a
/// source stuck in the kernel (a hung network file system) must not hold the reply.
const GRACE: Duration = Duration::from_millis(200);

/// One source's outcome in a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub source: Source,
    pub value: Result<f64, String>,
    /// From the source's start to its value or failure.
    pub took: Duration,
}

/// The sources of one sample, running.
pub struct Running {
    pending: Vec<Pending>,
}

struct Pending {
    source: Source,
    started: Instant,
    deadline: Instant,
    outcome: mpsc::Receiver<(Result<f64, String>, Duration)>,
}

/// Starts every source in a thread of its own; `window` is the timeout of those without one.
pub fn start(sources: &[Source], window: Duration) -> Running {
    let pending = sources
        .iter()
        .map(|source| {
            let started = Instant::now();
            let timeout = source
                .timeout_ms
                .map_or(window, |ms| Duration::from_millis(ms.get()));
            let deadline = started + timeout;
            let (send, outcome) = mpsc::channel();
            let failed = send.clone();
            let job = source.clone();
            let spawned = std::thread::Builder::new()
                .name("lb-feedback-custom".into())
                .spawn(move || {
                    let value = read(&job, deadline, timeout);
                    let _ = send.send((value, started.elapsed()));
                });
            if let Err(err) = spawned {
                let _ = failed.send((Err(format!("cannot start a thread: {err}")), Duration::ZERO));
            }
            Pending {
                source: source.clone(),
                started,
                deadline,
                outcome,
            }
        })
        .collect();
    Running { pending }
}

impl Running {
    /// Each source's value or failure, waiting for none past its deadline (and [`GRACE`]).
    pub fn collect(self) -> Vec<Reading> {
        self.pending
            .into_iter()
            .map(|pending| {
                let left = (pending.deadline + GRACE).saturating_duration_since(Instant::now());
                let (value, took) = pending.outcome.recv_timeout(left).unwrap_or_else(|_| {
                    let took = pending.started.elapsed();
                    (
                        Err(format!("no value within {} ms", took.as_millis())),
                        took,
                    )
                });
                Reading {
                    source: pending.source,
                    value,
                    took,
                }
            })
            .collect()
    }
}

fn read(source: &Source, deadline: Instant, timeout: Duration) -> Result<f64, String> {
    let text = match &source.kind {
        SourceKind::Command(argv) => command::run(argv, deadline)?,
        SourceKind::File {
            path,
            max_age_seconds,
        } => file::read(path, max_age_seconds.map(|s| Duration::from_secs(s.get())))?,
        SourceKind::Http(url) => http::get(url, timeout)?,
    };
    value(&text, source.json_pointer.as_deref())
}

/// The value in a source's output: the number at `pointer` (RFC 6901) in it as JSON, or else
/// the first number in it. Not negative: a load below 0 would hide the others' load.
pub fn value(text: &str, pointer: Option<&str>) -> Result<f64, String> {
    let value = match pointer {
        Some(pointer) => {
            let json: serde_json::Value =
                serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))?;
            let found = json
                .pointer(pointer)
                .ok_or_else(|| format!("nothing at {pointer:?}"))?;
            found.as_f64().ok_or_else(|| {
                format!(
                    "{} at {pointer:?} is not a number",
                    brief(&found.to_string())
                )
            })?
        }
        None => first_number(text).ok_or_else(|| format!("no number in {:?}", brief(text)))?,
    };
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{value} is not a number of 0 or more"));
    }
    Ok(value)
}

/// The first decimal number in `text`: `12`, `-3`, `0.75` (a `-` right after a letter or digit
/// is a hyphen, not a sign).
pub fn first_number(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let start = bytes.iter().position(u8::is_ascii_digit)?;
    let signed = start > 0
        && bytes[start - 1] == b'-'
        && (start < 2 || !bytes[start - 2].is_ascii_alphanumeric());
    let digits = |from: usize| {
        from + bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut end = digits(start);
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits(end + 1);
    }
    let number: f64 = text[start..end].parse().ok()?;
    Some(if signed { -number } else { number })
}

/// The start of a text for an error message.
fn brief(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_number_in_the_output() {
        assert_eq!(first_number("20\n"), Some(20.0));
        assert_eq!(first_number("sessions: 17 of 50"), Some(17.0));
        assert_eq!(first_number("load=0.75;"), Some(0.75));
        assert_eq!(first_number("-3 left"), Some(-3.0));
        assert_eq!(first_number("x-3"), Some(3.0));
        assert_eq!(first_number("v2-3"), Some(2.0));
        assert_eq!(first_number("12."), Some(12.0));
        assert_eq!(first_number("no digits here"), None);
        assert_eq!(first_number(""), None);
    }

    #[test]
    fn a_value_from_text_or_a_json_pointer() {
        assert_eq!(value("queue 30\n", None), Ok(30.0));
        assert_eq!(value(r#"{"load": 20, "n": 5}"#, Some("/load")), Ok(20.0));
        assert_eq!(
            value(r#"{"a": [1, {"b~c": 7.5}]}"#, Some("/a/1/b~0c")),
            Ok(7.5)
        );
        assert_eq!(value("12", Some("")), Ok(12.0));
        assert_eq!(
            value(r#"{"load": 20}"#, Some("/lod")),
            Err("nothing at \"/lod\"".into())
        );
        assert_eq!(
            value(r#"{"load": "20"}"#, Some("/load")),
            Err("\"20\" at \"/load\" is not a number".into())
        );
        assert!(
            value("20 oops", Some("/load"))
                .unwrap_err()
                .starts_with("not JSON")
        );
        assert_eq!(
            value("garbage!", None),
            Err("no number in \"garbage!\"".into())
        );
        assert_eq!(
            value("-4", None),
            Err("-4 is not a number of 0 or more".into())
        );
    }
}
