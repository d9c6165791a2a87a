//! One probe, from the effective config to the reply line: pick the mode, sample only what
//! counts (custom sources running beside the CPU window), pick the `agent-send` profile,
//! apply the rules, decide the recovery words. The binaries gather inputs and write the
//! line; everything they agree on is decided here.
//!
//! `sample` and `answer` are separate so the wrapper service can share one sample between
//! probes that arrive together; `run` is the one-shot path that chains them.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::clock::{self, human_duration};
use crate::config::{Config, Mode};
use crate::metrics::MetricError;
use crate::metrics::monitor::Answered;
use crate::reply::{self, Status};
use crate::rules::{self, Load, Verdict};
use crate::state::history::Event;
use crate::state::pollers::{Kind, Rule};
use crate::state::record::Poller;
use crate::state::steady;
use crate::state::{self, RecoveryDecision, RuntimeMode, StateDir, StateError};
use crate::syslog;

/// How long after the probe starts `agent-send` is waited for when profiles depend on it
/// (only when it has not arrived: HAProxy sends it right after connecting).
pub const REQUEST_GRACE: Duration = Duration::from_millis(200);

/// Everything a probe found, for the reply and for `--explain`.
#[derive(Clone, Debug)]
pub struct Report {
    pub mode: Mode,
    /// Where the mode came from, in words.
    pub mode_from: String,
    /// The `agent-send` profile that applied.
    pub profile: Option<String>,
    /// The monitors sampled, each with its raw figure in words when they were asked for
    /// (`--explain`).
    pub loads: Vec<(Load, Option<Figure>)>,
    /// What smoothing and held drains did, in words; `None` when neither applies.
    pub steady: Option<String>,
    /// Custom monitors with `on_error: "ignore"` whose source failed: name and why.
    pub ignored: Vec<(String, String)>,
    pub verdict: Verdict,
    pub status: Status,
    pub recovery: RecoveryDecision,
    pub maxconn: Option<u64>,
    pub line: String,
}

/// Why a probe could not answer; the reply is then `error:<word>`.
#[derive(Debug)]
pub enum ProbeError {
    Metric(MetricError),
    State(StateError),
    /// `agent-send` named a profile the config does not have.
    Profile(String),
}

impl ProbeError {
    pub fn word(&self) -> &str {
        match self {
            ProbeError::Metric(err) => &err.monitor,
            ProbeError::State(_) => crate::words::STATE,
            ProbeError::Profile(_) => crate::words::PROFILE,
        }
    }

    pub fn line(&self) -> String {
        reply::error_line(self.word())
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Metric(err) => err.fmt(f),
            ProbeError::State(err) => write!(f, "state directory: {err}"),
            ProbeError::Profile(name) => write!(f, "agent-send asked for unknown profile {name:?}"),
        }
    }
}

impl std::error::Error for ProbeError {}

impl From<MetricError> for ProbeError {
    fn from(err: MetricError) -> Self {
        ProbeError::Metric(err)
    }
}

impl From<StateError> for ProbeError {
    fn from(err: StateError) -> Self {
        ProbeError::State(err)
    }
}

/// How a probe was asked for: by HAProxy over a socket or by a person at a shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A load balancer; `peer` is the connection's remote address, when the socket has one.
    Haproxy {
        peer: Option<IpAddr>,
    },
    Person,
}

impl Caller {
    /// The poller this probe answers, with the profile it chose; `None` for a person.
    pub fn poller(self, profile: Option<&str>) -> Option<Poller> {
        match self {
            Caller::Haproxy { peer } => Some(Poller::new(peer, profile)),
            Caller::Person => None,
        }
    }
}

/// Records an error reply in the poller table: HAProxy changes nothing on it, so neither does
/// what the poller is owed, but `status` shows when it last polled and what it got. Returns
/// the history's event when the poller was told something else before.
pub fn record_error(
    config: &Config,
    state: &StateDir,
    caller: Caller,
    profile: Option<&str>,
    line: &str,
) -> Option<Event> {
    let (decision, _) = state::recovery(
        rule(config),
        Kind::Error,
        state,
        caller.poller(profile).as_ref(),
        clock::now_ms(),
        &|_| line.to_string(),
    );
    decision.change
}

/// The recovery rule the config sets.
fn rule(config: &Config) -> Rule {
    Rule {
        policy: config.recovery,
        replies: config.recovery_replies.get() as u32,
        seconds: config.recovery_seconds.get(),
    }
}

/// The mode that counts now: a runtime mode that has not expired, else the config's.
pub fn effective_mode(
    config: &Config,
    state: &StateDir,
    now_ms: u64,
) -> Result<(Mode, String), StateError> {
    match state
        .runtime_mode()?
        .map(|runtime| rebased(runtime, state, now_ms))
    {
        Some(runtime) if !runtime.expired(now_ms) => {
            let ago = human_duration(now_ms.saturating_sub(runtime.set_at_ms));
            let until = match runtime.until_ms {
                Some(until) => format!(", expires in {}", human_duration(until - now_ms)),
                None => String::new(),
            };
            Ok((
                runtime.mode,
                format!(
                    "runtime mode set with `lb-feedback mode` {ago} ago{until} ({})",
                    state.path().display()
                ),
            ))
        }
        Some(_) => Ok((
            config.mode,
            format!("{} (a runtime mode expired)", config.mode_origin),
        )),
        None => Ok((config.mode, config.mode_origin.to_string())),
    }
}

/// A runtime mode set while the clock was ahead (set in the future) is moved to now, keeping
/// its length, and stored so: otherwise a `--for 15m` set a year ahead would last a year
/// after the clock is put right. A directory that cannot store it re-bases on every read.
fn rebased(runtime: RuntimeMode, state: &StateDir, now_ms: u64) -> RuntimeMode {
    if runtime.set_at_ms <= now_ms {
        return runtime;
    }
    let moved = RuntimeMode {
        set_at_ms: now_ms,
        until_ms: runtime
            .until_ms
            .map(|until| now_ms + until.saturating_sub(runtime.set_at_ms)),
        ..runtime
    };
    let _ = state.set_runtime_mode(Some(&moved));
    moved
}

/// The profile the first line of `agent-send` names (`None`: the base config), checked
/// against the config, which is handed back borrowed: [`answer`] reads the profile's settings
/// in place, so a poll costs no copy of a config of a thousand profiles.
pub fn select<'a>(
    config: &'a Config,
    request: Option<&str>,
) -> Result<(&'a Config, Option<&'a str>), ProbeError> {
    match request {
        None => Ok((config, None)),
        Some(name) => config
            .profiles
            .get_key_value(name)
            .map(|(name, _)| (config, Some(name.as_str())))
            .ok_or_else(|| ProbeError::Profile(name.chars().take(64).collect())),
    }
}

/// Turns readings into the reply for the config's profile `profile` (`None`: the base), its
/// monitors and maxconn read in place over the base's; a failed custom source is the probe's
/// error unless its monitor ignores failures. The figures are not put in words: nothing the
/// service answers reads them.
pub fn answer(
    config: &Config,
    profile: Option<&str>,
    readings: &Readings,
    mode: (Mode, String),
    caller: Caller,
    state: &StateDir,
) -> Result<Report, ProbeError> {
    answer_with(config, profile, readings, mode, caller, state, false)
}

/// [`answer`], with each figure in words too when `words` asks for them.
fn answer_with(
    config: &Config,
    profile: Option<&str>,
    readings: &Readings,
    (mode, mode_from): (Mode, String),
    caller: Caller,
    state: &StateDir,
    words: bool,
) -> Result<Report, ProbeError> {
    let chosen = profile.and_then(|name| config.profiles.get(name));
    let answered = match mode {
        Mode::Normal => {
            readings.answer(&config.monitors(chosen), config.hysteresis.get(), words)?
        }
        _ => Answered::new(words),
    };
    let (mut loads, ignored) = (answered.loads, answered.ignored);
    let steady = steady(config, profile, &mut loads, caller, state);
    let plain: Vec<Load> = loads.iter().map(|(l, _)| l.clone()).collect();
    let verdict = rules::judge(&plain, config.min_percent.get() as u8);
    let status = Status::decide(mode, &verdict, &plain);
    let maxconn = config.maxconn_of(chosen).map(|m| m.get());
    let kind = match status.is_normal() {
        true => Kind::Normal,
        false => Kind::NonNormal,
    };
    let (recovery, line) = state::recovery(
        rule(config),
        kind,
        state,
        caller.poller(profile).as_ref(),
        clock::now_ms(),
        &|recover| status.line(recover, maxconn),
    );
    Ok(Report {
        mode,
        mode_from,
        profile: profile.map(str::to_string),
        loads,
        steady,
        ignored,
        verdict,
        status,
        recovery,
        maxconn,
        line,
    })
}

/// Runs one probe. `wait(deadline)` passes the sample window; `request(deadline)` returns
/// the first line of `agent-send`, waiting for it at most until `deadline`. Without profiles
/// `agent-send` selects nothing and is not waited for. `words`: whether the report puts the
/// figures in words (`--explain`); the reply does not need them.
pub fn run(
    config: &Config,
    caller: Caller,
    words: bool,
    wait: &mut dyn FnMut(Instant),
    request: &mut dyn FnMut(Instant) -> Option<String>,
) -> Result<Report, ProbeError> {
    let start = Instant::now();
    let state = StateDir::new(&config.state_dir);
    let (mode, mode_from) = effective_mode(config, &state, clock::now_ms())?;
    // A server told to drain, stop or go to maintenance needs no figures: skip the sample.
    let sampled = match mode {
        Mode::Normal => sample(&Needs::of(config), config, &state, wait).map(Some),
        _ => Ok(None),
    };
    // The profile is read in every mode: an unknown one is `error:profile` whatever the mode,
    // so a server whose agent-send is wrong is never drained, then stranded.
    let line = match config.profiles.is_empty() {
        true => None,
        false => request(start + REQUEST_GRACE),
    };
    let (config, profile) = select(config, line.as_deref())?;
    // A failed sample or custom source is an error reply, recorded as one.
    let report = sampled.map_err(ProbeError::from).and_then(|readings| {
        answer_with(
            config,
            profile,
            &readings.unwrap_or_default(),
            (mode, mode_from),
            caller,
            &state,
            words,
        )
    });
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            let change = record_error(config, &state, caller, profile, &err.line());
            syslog::tell(config, change.as_ref());
            return Err(err);
        }
    };
    syslog::tell(config, report.recovery.change.as_ref());
    Ok(report)
}

/// Smoothing and held drains, from the steady-steering memory of this profile: each load
/// becomes its moving average (when `smoothing_seconds` is set) and learns whether it was
/// holding a drain; what they are now is recorded for the next probe. A person at a shell
/// reads the memory without moving it, so `--explain` shows what the next reply would be.
/// The memory is not touched when nothing needs it (no smoothing, no threshold with a
/// release below it). When it cannot be used the figures answer as they are, holding
/// nothing: a drain may end early, the reply is never held up. Returns what happened, for
/// `--explain`.
fn steady(
    config: &Config,
    profile: Option<&str>,
    loads: &mut [(Load, Option<Figure>)],
    caller: Caller,
    state: &StateDir,
) -> Option<String> {
    let seconds = config.smoothing_seconds.get();
    let holds = loads
        .iter()
        .any(|(l, _)| l.threshold > 0.0 && l.release < l.threshold);
    if seconds == 0 && !holds {
        return None;
    }
    let now = clock::now_ms();
    let write = caller != Caller::Person;
    let result = state.steady(write, &mut |table| {
        for (load, _) in loads.iter_mut() {
            let before = table.get(profile, &load.name);
            load.load = rules::smooth(before.map(|e| (e.at_ms, e.average)), load.raw, now, seconds);
            load.held = before.is_some_and(|e| e.holding);
            let entry = steady::Entry {
                at_ms: now,
                average: load.load,
                holding: load.tripped(),
            };
            table.set(profile, &load.name, entry);
        }
    });
    let smoothing = match seconds {
        0 => "no smoothing: each load is this probe's own figure".to_string(),
        s => format!(
            "load % is the moving average over a {s} s time constant (thresholds act on the raw figure)"
        ),
    };
    Some(match result {
        Ok(None) => smoothing,
        Ok(Some(why)) => format!(
            "{smoothing}; the steady-steering memory was unreadable ({why}): started afresh"
        ),
        Err(err) => {
            format!("the steady-steering memory is unusable ({err}): raw figures, no drain held")
        }
    })
}

mod sample;

pub use crate::metrics::cpu::{CpuFigure, SINCE_LAST_MIN_MS};
pub use crate::metrics::memory::RamFigure;
pub use crate::metrics::monitor::Figure;
pub use sample::{Needs, Readings, label_names, sample, sample_as};

#[cfg(test)]
mod tests;
