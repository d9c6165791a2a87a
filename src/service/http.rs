//! lb-feedback-service's HTTP side (`--http ADDR:PORT`): its listener, who may use it, the
//! bounded reading of one request, and the four answers: `/metrics` (Prometheus text),
//! `/load` (the adaptive-agent integer), `/status` (`lb-feedback status --json`) and `/health`.
//! The figures come from the agent port's kept sample and `probe::answer`, for the base config
//! and each profile: no second copy of the rules.
//!
//! Bounded like the agent port: `allow` first, then a slot of its own (at most
//! [`MAX_IN_FLIGHT`] requests at once, `max_in_flight_per_source` per address, with
//! [`super::limits`]' reserve), a head of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] lines, and
//! the agent port's deadline for the whole request. HTTP clients never hold the agent port's
//! slots, so a slow or garbage one cannot keep a poll out. One request per connection
//! (`Connection: close`): nothing waits for a client's next request.
//!
//! httparse (hyper's request parser) reads the head from a buffer this module bounds; the
//! server crates that own their accept loop (tiny_http 0.12) give no hook for a per
//! connection deadline or a head bound, nor any limit on their threads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::limits::{Limits, Refusal, Refusals};
use super::{Accepted, HANDLER_STACK, Shared, Slots, Stop, lock};
use crate::cidr;
use crate::clock;
use crate::config::{Config, Mode};
use crate::probe::{self, Caller, Readings};
use crate::reply::Status;
use crate::rules::Load;
use crate::socket;
use crate::state::{self, StateDir};
use crate::status;

/// HTTP requests answered at once; more are closed unanswered. Scrapes and adaptive polls
/// come every few seconds from a handful of places.
pub const MAX_IN_FLIGHT: usize = 64;
/// Bytes of a request's head (request line and headers); more get 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// Header lines of a request; more get 431.
pub const MAX_HEADERS: usize = 64;

/// Accepts on the HTTP listener until `stop`, then waits for the requests in flight (each
/// within its deadline).
pub(super) fn accept_loop(listener: TcpListener, shared: &Arc<Shared>, stop: &Stop) {
    let limits = Limits::new(
        MAX_IN_FLIGHT,
        // Sized at start, as the agent port's (a reload keeps it: reload::keep_fixed).
        shared.live.get().config.max_in_flight_per_source.get() as usize,
    );
    let slots = Arc::new(Slots::new(limits));
    // Only this thread counts them; their totals are written as a new refusal comes.
    let mut refusals = Refusals::new(limits, Instant::now());
    let mut refuse = |peer: SocketAddr, why: Refusal| {
        let now = Instant::now();
        let lines = refusals.refuse(peer, why).into_iter();
        for line in lines.chain(refusals.due(now)) {
            shared.log.problem(format!("HTTP: {line}"));
        }
    };
    loop {
        let (stream, peer) = match super::accept(&listener, stop, &shared.log, "HTTP") {
            Accepted::Stop => break,
            Accepted::Again | Accepted::Failed | Accepted::Idle => continue,
            Accepted::Connection(stream, peer) => (stream, peer),
        };
        if !cidr::allowed(&shared.live.get().config.allow, peer.ip()) {
            refuse(peer, Refusal::NotAllowed);
            continue;
        }
        let slot = match Slots::take(&slots, peer) {
            Ok(slot) => slot,
            Err(why) => {
                refuse(peer, why);
                continue;
            }
        };
        let for_thread = shared.clone();
        let spawned = thread::Builder::new()
            .name("lbf-http-req".into())
            .stack_size(HANDLER_STACK)
            .spawn(move || {
                let _slot = slot;
                serve(&for_thread, stream);
            });
        if spawned.is_err() {
            refuse(peer, Refusal::NoThread);
        }
    }
    slots.wait_idle(Instant::now() + shared.connection_time + socket::DRAIN_TIME);
}

/// One connection: its request, the answer, a clean close; all within the deadline.
fn serve(shared: &Shared, mut stream: TcpStream) {
    let deadline = Instant::now() + shared.connection_time;
    let response = match read_head(&mut stream, deadline) {
        // The one place a request reads the config: one config answers it whole.
        Ok(head) => respond(shared, &shared.live.get().config, &head, deadline),
        Err(HeadError::TooLarge) => Response::text(431, "request head too large\n"),
        Err(HeadError::Bad) => Response::text(400, "bad request\n"),
        // Closed, timed out or failed: nobody to answer.
        Err(HeadError::Gone) => return,
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let _ = stream
        .set_write_timeout(Some(left))
        .and_then(|()| stream.write_all(&response.bytes()));
    let _ = stream.shutdown(Shutdown::Write);
    socket::drain(
        &mut stream,
        deadline.min(Instant::now() + socket::DRAIN_TIME),
    );
}

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    method: String,
    /// Without its query.
    path: String,
}

#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    TooLarge,
    Bad,
    Gone,
}

/// Reads until the head is complete, at most [`MAX_HEAD`] bytes, until `deadline`.
fn read_head(stream: &mut impl ReadTimeout, deadline: Instant) -> Result<Head, HeadError> {
    let mut buf = vec![0; MAX_HEAD];
    let mut len = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.timeout(left).is_err() {
            return Err(HeadError::Gone);
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(HeadError::Gone),
            Ok(n) => len += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Gone),
        }
        match parse_head(&buf[..len]) {
            Ok(Some(head)) => return Ok(head),
            Ok(None) if len == MAX_HEAD => return Err(HeadError::TooLarge),
            Ok(None) => {}
            Err(err) => return Err(err),
        }
    }
}

/// The head, `None` while it is incomplete.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(target)) = (request.method, request.path) else {
                return Err(HeadError::Bad);
            };
            let path = target.split(['?', '#']).next().unwrap_or_default();
            Ok(Some(Head {
                method: method.to_string(),
                path: path.to_string(),
            }))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Bad),
    }
}

/// A stream whose reads can be bounded in time: a socket, or a test's bytes.
trait ReadTimeout: Read {
    fn timeout(&mut self, left: Duration) -> io::Result<()>;
}

impl ReadTimeout for TcpStream {
    fn timeout(&mut self, left: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(left))
    }
}

/// An answer: status, content type, body.
#[derive(Debug, PartialEq)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    head_only: bool,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            head_only: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            _ => "Service Unavailable",
        };
        let allow = match self.status {
            405 => "Allow: GET, HEAD\r\n",
            _ => "",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

fn respond(shared: &Shared, config: &Config, head: &Head, deadline: Instant) -> Response {
    let mut response = match (head.method.as_str(), head.path.as_str()) {
        ("GET" | "HEAD", "/health") => Response::text(200, "ok\n"),
        ("GET" | "HEAD", "/load") => match current(shared, config, deadline) {
            Ok(replies) => Response::text(200, format!("{}\n", load_value(&replies[0].status))),
            Err(err) => Response::text(503, format!("error:{}\n", err.word)),
        },
        ("GET" | "HEAD", "/metrics") => Response {
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            ..Response::text(200, render(&figures(shared, config, deadline)))
        },
        ("GET" | "HEAD", "/status") => {
            match status::document(config, clock::now_ms(), Default::default()) {
                Ok(document) => Response {
                    content_type: "application/json",
                    ..Response::text(200, format!("{document:#}\n"))
                },
                Err(err) => Response::text(503, format!("{err}\n")),
            }
        }
        (_, "/health" | "/load" | "/metrics" | "/status") => {
            Response::text(405, "GET or HEAD only\n")
        }
        _ => Response::text(404, "not found: /metrics, /load, /status, /health\n"),
    };
    response.head_only = head.method == "HEAD";
    response
}

/// The `/load` figure (the adaptive-agent convention): busy 0..100, 101 down, 102 disabled.
fn load_value(status: &Status) -> u8 {
    match status {
        Status::Ready(percent) => 100 - (*percent).min(100),
        Status::Stopped(_) => 101,
        Status::Drain(_) | Status::Maint(_) => 102,
    }
}

/// What the agent port would answer one config now: its state and the loads behind it.
#[derive(Clone, Debug, PartialEq)]
struct Reply {
    /// `None`: the base config.
    profile: Option<String>,
    status: Status,
    loads: Vec<Load>,
}

/// Why there is no reply: the `error:WORD` the agent port gives.
#[derive(Clone, Debug, PartialEq)]
struct Failed {
    word: String,
}

/// The replies for the base config (first) and each profile, from the kept sample (joining
/// it, as a poll does, so the sampler keeps going while someone scrapes). As a person's
/// probe: nothing is recorded in the poller table.
fn current(shared: &Shared, config: &Config, deadline: Instant) -> Result<Vec<Reply>, Failed> {
    let failed = |word: &str| Failed { word: word.into() };
    let state = StateDir::new(&config.state_dir);
    let (mode, mode_from) = probe::effective_mode(config, &state, clock::now_ms())
        .map_err(|_| failed(crate::words::STATE))?;
    let sampled = match mode {
        Mode::Normal => {
            let ticket = shared.sampler.join();
            Some(
                shared
                    .sampler
                    .readings(ticket, deadline)
                    .ok_or_else(|| failed(crate::words::TIMEOUT))?,
            )
        }
        _ => None,
    };
    let nothing = Readings::default();
    let readings = match sampled.as_deref() {
        None => &nothing,
        Some(Ok(readings)) => readings,
        Some(Err(err)) => return Err(failed(&err.monitor)),
    };
    let names = std::iter::once(None).chain(config.profiles.keys().map(|n| Some(n.as_str())));
    let mut replies = Vec::new();
    for name in names {
        let (profiled, profile) = probe::select(config, name).map_err(|e| failed(e.word()))?;
        let report = probe::answer(
            profiled,
            profile,
            readings,
            (mode, mode_from.clone()),
            Caller::Person,
            &state,
        )
        .map_err(|e| failed(e.word()))?;
        replies.push(Reply {
            profile: profile.map(str::to_string),
            status: report.status,
            loads: report.loads.into_iter().map(|(load, _)| load).collect(),
        });
    }
    Ok(replies)
}

/// Everything `/metrics` shows.
#[derive(Clone, Debug, PartialEq)]
struct Figures {
    version: &'static str,
    replies: Result<Vec<Reply>, Failed>,
    /// The last sample's duration.
    sample: Option<Duration>,
    samples: u64,
    answered: u64,
    refused: BTreeMap<Refusal, u64>,
    /// Pollers known (not forgotten), and how many of them are owed recovery.
    pollers: Option<(usize, usize)>,
}

fn figures(shared: &Shared, config: &Config, deadline: Instant) -> Figures {
    let replies = current(shared, config, deadline);
    let (samples, sample) = shared.sampler.taken();
    let now = clock::now_ms();
    let pollers = StateDir::new(&config.state_dir)
        .pollers()
        .ok()
        .map(|entries| {
            let known: Vec<_> = entries
                .unwrap_or_default()
                .into_iter()
                .filter(|e| now.saturating_sub(e.last_seen_ms) < state::record::FORGET_AFTER_MS)
                .collect();
            let owed = known.iter().filter(|e| e.owed.is_some()).count();
            (known.len(), owed)
        });
    Figures {
        version: env!("CARGO_PKG_VERSION"),
        replies,
        sample,
        samples,
        answered: shared.answered.load(Ordering::Relaxed),
        refused: lock(&shared.refusals).totals().clone(),
        pollers,
    }
}

/// A refusal's reason as a label value.
fn reason(why: Refusal) -> &'static str {
    match why {
        Refusal::NotAllowed => "not_allowed",
        Refusal::Full => "max_in_flight",
        Refusal::PerSource => "max_in_flight_per_source",
        Refusal::Reserved => "reserved",
        Refusal::NoThread => "no_thread",
    }
}

const REFUSALS: [Refusal; 5] = [
    Refusal::NotAllowed,
    Refusal::Full,
    Refusal::PerSource,
    Refusal::Reserved,
    Refusal::NoThread,
];

/// The state a reply puts the server in, as the state gauge's label.
fn state_word(status: &Status) -> &'static str {
    match status {
        Status::Ready(_) => "ready",
        Status::Drain(_) => "drain",
        Status::Maint(_) => "maint",
        Status::Stopped(_) => "stopped",
    }
}

const STATES: [&str; 5] = ["ready", "drain", "maint", "stopped", "error"];

/// A label value in the text format: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The profile label of a reply: `(base)` for the base config.
fn profile_label(profile: Option<&str>) -> String {
    format!("profile=\"{}\"", escape(profile.unwrap_or("(base)")))
}

/// A monitor's labels: `monitor="cpu"`, `monitor="tcp",port="3389"`, or
/// `monitor="pressure",resource="cpu",kind="some"`: each part of the name its own label.
fn monitor_labels(name: &str) -> String {
    let mut parts = name.split(':');
    let monitor = parts.next().unwrap_or(name);
    let mut labels = format!("monitor=\"{}\"", escape(monitor));
    for (label, value) in probe::label_names(monitor).iter().zip(parts) {
        let _ = write!(labels, ",{label}=\"{}\"", escape(value));
    }
    labels
}

/// The Prometheus text format (version 0.0.4) of `figures`: every family with its HELP and
/// TYPE, counters ending in `_total`, seconds as the time unit.
fn render(figures: &Figures) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            match labels.is_empty() {
                true => {
                    let _ = writeln!(out, "{name} {value}");
                }
                false => {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        }
    };
    family(
        "lb_feedback_build_info",
        "gauge",
        "The agent's version; always 1.",
        &[(
            format!("version=\"{}\"", escape(figures.version)),
            "1".into(),
        )],
    );
    let (replies, failed) = match &figures.replies {
        Ok(replies) => (replies.as_slice(), None),
        Err(failed) => (&[][..], Some(failed)),
    };
    let percents: Vec<(String, String)> = replies
        .iter()
        .filter_map(|r| match r.status {
            Status::Ready(percent) => {
                Some((profile_label(r.profile.as_deref()), percent.to_string()))
            }
            _ => None,
        })
        .collect();
    family(
        "lb_feedback_reply_percent",
        "gauge",
        "The idle percent the agent port answers now (HAProxy sets the weight to it); absent while the reply is drain, maint or stopped.",
        &percents,
    );
    let mut states = Vec::new();
    match failed {
        Some(_) => {
            for state in STATES {
                let value = u8::from(state == "error");
                states.push((
                    format!("{},state=\"{state}\"", profile_label(None)),
                    value.to_string(),
                ));
            }
        }
        None => {
            for reply in replies {
                let now = state_word(&reply.status);
                for state in STATES {
                    let value = u8::from(state == now);
                    states.push((
                        format!(
                            "{},state=\"{state}\"",
                            profile_label(reply.profile.as_deref())
                        ),
                        value.to_string(),
                    ));
                }
            }
        }
    }
    family(
        "lb_feedback_state",
        "gauge",
        "1 for the state the agent port's reply puts the server in (ready, drain, maint, stopped, or error when the probe fails), 0 for the others.",
        &states,
    );
    let per_monitor = |value: &dyn Fn(&Load) -> f64| -> Vec<(String, String)> {
        replies
            .iter()
            .flat_map(|reply| {
                reply.loads.iter().map(move |load| {
                    (
                        format!(
                            "{},{}",
                            profile_label(reply.profile.as_deref()),
                            monitor_labels(&load.name)
                        ),
                        number(value(load)),
                    )
                })
            })
            .collect()
    };
    family(
        "lb_feedback_monitor_load_percent",
        "gauge",
        "Each monitor's load in percent as the weight uses it (the moving average when smoothing_seconds is set; a TCP load may pass 100); only in normal mode, where monitors are sampled.",
        &per_monitor(&|l| l.load),
    );
    family(
        "lb_feedback_monitor_raw_percent",
        "gauge",
        "Each monitor's own figure of the latest sample in percent, which its threshold acts on.",
        &per_monitor(&|l| l.raw),
    );
    family(
        "lb_feedback_monitor_importance",
        "gauge",
        "Each monitor's importance: its weight in the reply's percent.",
        &per_monitor(&|l| l.importance),
    );
    family(
        "lb_feedback_monitor_threshold_percent",
        "gauge",
        "Each monitor's drain threshold in percent; 0 is off.",
        &per_monitor(&|l| l.threshold),
    );
    family(
        "lb_feedback_monitor_release_percent",
        "gauge",
        "Each monitor's release in percent: a drain by its threshold lasts until the load is at or below it.",
        &per_monitor(&|l| l.release),
    );
    family(
        "lb_feedback_monitor_holding",
        "gauge",
        "1 when a monitor holds a drain: its load is under the threshold but still above release.",
        &per_monitor(&|l| f64::from(u8::from(l.holding()))),
    );
    let sample: Vec<(String, String)> = figures
        .sample
        .iter()
        .map(|took| (String::new(), number(took.as_secs_f64())))
        .collect();
    family(
        "lb_feedback_sample_duration_seconds",
        "gauge",
        "How long the last sample (CPU window, RAM, TCP counts) took.",
        &sample,
    );
    family(
        "lb_feedback_samples_total",
        "counter",
        "Samples taken since the service started.",
        &[(String::new(), figures.samples.to_string())],
    );
    family(
        "lb_feedback_polls_answered_total",
        "counter",
        "Agent-port polls answered since the service started.",
        &[(String::new(), figures.answered.to_string())],
    );
    let refused: Vec<(String, String)> = REFUSALS
        .iter()
        .map(|why| {
            let count = figures.refused.get(why).copied().unwrap_or(0);
            (format!("reason=\"{}\"", reason(*why)), count.to_string())
        })
        .collect();
    family(
        "lb_feedback_polls_refused_total",
        "counter",
        "Agent-port connections closed without a reply since the service started, by reason.",
        &refused,
    );
    let (known, owed): (Vec<_>, Vec<_>) = figures
        .pollers
        .iter()
        .map(|(known, owed)| {
            (
                (String::new(), known.to_string()),
                (String::new(), owed.to_string()),
            )
        })
        .unzip();
    family(
        "lb_feedback_pollers",
        "gauge",
        "Pollers (load balancer address and profile) the state directory knows; absent when its table cannot be read.",
        &known,
    );
    family(
        "lb_feedback_pollers_owed_recovery",
        "gauge",
        "Of those, how many are owed `up ready`.",
        &owed,
    );
    out
}

/// A float as the text format writes it: integers without a fraction, others to 0.001.
fn number(value: f64) -> String {
    let rounded = (value * 1000.0).round() / 1000.0;
    format!("{rounded}")
}

#[cfg(test)]
mod tests;
