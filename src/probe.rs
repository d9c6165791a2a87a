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
use crate::config::{Config, CpuMode, CustomMonitor, Mode, OnError, Real, Source, release_of};
use crate::metrics::memory::{self, Memory};
use crate::metrics::sessions::{self, Sessions};
use crate::metrics::{Cgroups, MetricError, cpu, custom, tcp};
use crate::reply::{self, Status};
use crate::rules::{self, Load, Verdict};
use crate::state::history::Event;
use crate::state::pollers::{Kind, Rule};
use crate::state::record::Poller;
use crate::state::steady;
use crate::state::{self, CpuRecord, RecoveryDecision, RuntimeMode, StateDir, StateError};
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
    /// The monitors sampled, each with its raw figure in words.
    pub loads: Vec<(Load, Figure)>,
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

/// What has to be read to answer for a config and any of its profiles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub cpu: bool,
    pub ram: bool,
    pub ports: Vec<u16>,
    pub sessions: bool,
    /// Custom sources, each once however many monitors read it.
    pub custom: Vec<Source>,
}

impl Needs {
    /// Reads the base and each profile's monitors in place: no profiled config is built, so
    /// the cost grows with the size of the config, not with its square.
    pub fn of(config: &Config) -> Needs {
        let mut needs = Needs::default();
        let profiles = config.profiles.values().map(Some);
        for monitors in std::iter::once(None)
            .chain(profiles)
            .map(|p| config.monitors(p))
        {
            needs.cpu |= monitors.cpu.enabled();
            needs.ram |= monitors.ram.enabled();
            let enabled = monitors.tcp.iter().filter(|t| t.enabled());
            needs.ports.extend(enabled.map(|t| t.port.get() as u16));
            needs.sessions |= monitors.sessions.is_some_and(|s| s.enabled());
            let custom = monitors.custom.iter().filter(|c| c.enabled());
            needs.custom.extend(custom.map(|c| c.source.clone()));
        }
        needs.ports.sort_unstable();
        needs.ports.dedup();
        needs.custom.sort_unstable();
        needs.custom.dedup();
        needs
    }
}

/// The CPU busy share, how it was measured, and whose CPU it is.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuFigure {
    pub busy: f64,
    pub how: String,
    pub from: String,
}

/// A monitor's raw reading in words, and where it came from (`None`: the host's sockets).
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub text: String,
    pub source: Option<String>,
    /// A custom monitor's value and how long its source took.
    pub custom: Option<(f64, Duration)>,
}

impl std::fmt::Display for Figure {
    /// `busy 7.9% over 1000 ms; host /proc/stat (...)`, as `--explain` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}; {source}", self.text)?,
            None => f.write_str(&self.text)?,
        }
        match self.custom {
            Some((_, took)) => write!(f, ", took {} ms", took.as_millis()),
            None => Ok(()),
        }
    }
}

/// RAM in use and where the figure came from.
#[derive(Clone, Debug, PartialEq)]
pub struct RamFigure {
    pub memory: Memory,
    pub from: String,
}

/// since-last: probes closer than this to the previous one answer with the previous window's
/// figure. /proc/stat counts in ticks of 10 ms per CPU, so 250 ms on two CPUs is 50 ticks,
/// about 2 points a tick; a gap of a few ms is 0 to 4 ticks, a figure up to 63 points off
/// (docs/BENCHMARKS.md).
pub const SINCE_LAST_MIN_MS: u64 = 250;

/// The raw figures one sample produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readings {
    pub cpu: Option<CpuFigure>,
    pub memory: Option<RamFigure>,
    /// Established connections per watched port.
    pub tcp: Vec<(u16, u64)>,
    /// The user sessions, counted once for every monitor (each decides on disconnected ones).
    pub sessions: Option<Sessions>,
    /// Each custom source's value or failure.
    pub custom: Vec<custom::Reading>,
}

/// Takes the readings `needs` asks for. `wait(deadline)` is called to pass the sample window,
/// and not at all when no window is needed (since-last mode with fresh counters, or no CPU
/// monitor).
pub fn sample(
    needs: &Needs,
    config: &Config,
    state: &StateDir,
    wait: &mut dyn FnMut(Instant),
) -> Result<Readings, MetricError> {
    sample_as(needs, config, config.cpu_mode, state, wait)
}

/// [`sample`] with the CPU read in `cpu_mode`, whatever the config's: the service's sample
/// mode without a copy of its config each window.
pub fn sample_as(
    needs: &Needs,
    config: &Config,
    cpu_mode: CpuMode,
    state: &StateDir,
    wait: &mut dyn FnMut(Instant),
) -> Result<Readings, MetricError> {
    let mut readings = Readings::default();
    let cgroups = Cgroups::default();
    // Started before the CPU window and collected after it: they run while it passes.
    let window = Duration::from_millis(config.sample_ms.get());
    let running = custom::start(&needs.custom, window);
    if needs.cpu {
        let source = cpu::Source::choose(config.scope.cpu, &cgroups)?;
        readings.cpu = Some(sample_cpu(config, cpu_mode, state, &source, wait)?);
    }
    if needs.ram {
        let (memory, from) = memory::read_scoped(config.scope.ram, &cgroups)?;
        readings.memory = Some(RamFigure { memory, from });
    }
    if !needs.ports.is_empty() {
        let counts = tcp::count_established(&needs.ports)?;
        readings.tcp = needs.ports.iter().copied().zip(counts).collect();
    }
    if needs.sessions {
        readings.sessions = Some(sessions::read()?);
    }
    readings.custom = running.collect();
    Ok(readings)
}

fn sample_cpu(
    config: &Config,
    cpu_mode: CpuMode,
    state: &StateDir,
    source: &cpu::Source,
    wait: &mut dyn FnMut(Instant),
) -> Result<CpuFigure, MetricError> {
    let window = config.sample_ms.get();
    let from = source.describe();
    // Without cumulative counters (systems other than Linux and Windows) since-last samples.
    if cpu_mode == CpuMode::SinceLast
        && let Ok(counters) = source.read()
    {
        return since_last(config, state, source, counters, wait);
    }
    let sampler = cpu::Sampler::start(source)?;
    wait(Instant::now() + Duration::from_millis(window));
    let busy = sampler.finish(source)?;
    let how = format!("busy {busy:.1}% over {window} ms");
    Ok(CpuFigure { busy, how, from })
}

/// since-last: the busy share since the counters the previous probe saved, when they are
/// fresh and of the same source. Closer than [`SINCE_LAST_MIN_MS`] to them the previous
/// window's figure answers (the counters are kept, so the next window is whole); without
/// that figure the probe waits out the minimum window. Without fresh counters it samples.
fn since_last(
    config: &Config,
    state: &StateDir,
    source: &cpu::Source,
    mut counters: cpu::Counters,
    wait: &mut dyn FnMut(Instant),
) -> Result<CpuFigure, MetricError> {
    let from = source.describe();
    let max_age_ms = config.since_last_max_seconds.get() * 1000;
    let mut now = clock::now_ms();
    let previous = state.cpu_counters().ok().flatten();
    let fresh = previous.filter(|record| {
        record.source == source.id() && record.at_ms <= now && now - record.at_ms <= max_age_ms
    });
    // A failed save only means the next probe samples; this one still answers.
    let save = |at_ms, counters, last| {
        let source = source.id();
        let _ = state.save_cpu_counters(&CpuRecord {
            at_ms,
            counters,
            source,
            last,
        });
    };
    if let Some(record) = fresh {
        let gap = now - record.at_ms;
        if gap < SINCE_LAST_MIN_MS
            && let Some((busy, span)) = record.last
        {
            let how = format!(
                "busy {busy:.1}% over the last complete window ({:.1} s, ended {gap} ms ago: \
                 too recent to measure a new one)",
                span as f64 / 1000.0
            );
            return Ok(CpuFigure { busy, how, from });
        }
        let mut waited = String::new();
        if gap < SINCE_LAST_MIN_MS {
            wait(Instant::now() + Duration::from_millis(SINCE_LAST_MIN_MS - gap));
            counters = source.read()?;
            now = clock::now_ms();
            waited = format!(", waited to make it {SINCE_LAST_MIN_MS} ms");
        }
        let span = now.saturating_sub(record.at_ms);
        if let Some(busy) = counters.busy_percent_since(&record.counters) {
            save(now, counters, Some((busy, span)));
            let how = format!(
                "busy {busy:.1}% since the previous probe {:.1} s ago{waited}",
                span as f64 / 1000.0
            );
            return Ok(CpuFigure { busy, how, from });
        }
    }
    // No fresh counters: the window starts at the reading just taken, and its end is what
    // the next probe compares with.
    let window = config.sample_ms.get();
    wait(Instant::now() + Duration::from_millis(window));
    let end = source.read()?;
    let busy = cpu::busy_between(&counters, &end)?;
    save(clock::now_ms(), end, Some((busy, window)));
    let how = format!("busy {busy:.1}% over {window} ms (no fresh counters to compare)");
    Ok(CpuFigure { busy, how, from })
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
/// error unless its monitor ignores failures.
pub fn answer(
    config: &Config,
    profile: Option<&str>,
    readings: &Readings,
    (mode, mode_from): (Mode, String),
    caller: Caller,
    state: &StateDir,
) -> Result<Report, ProbeError> {
    let chosen = profile.and_then(|name| config.profiles.get(name));
    let monitors = config.monitors(chosen);
    let mut loads = Vec::new();
    let hysteresis = config.hysteresis.get();
    let mut ignored = Vec::new();
    if mode == Mode::Normal {
        if let Some(cpu) = readings.cpu.as_ref().filter(|_| monitors.cpu.enabled()) {
            loads.push(load(
                "cpu",
                cpu.busy,
                monitors.cpu.importance.get(),
                limits(monitors.cpu.threshold, monitors.cpu.release, hysteresis),
                cpu.how.clone(),
                Some(cpu.from.clone()),
            ));
        }
        if let Some(ram) = readings.memory.as_ref().filter(|_| monitors.ram.enabled()) {
            let (used, total) = (ram.memory.used(), ram.memory.total);
            loads.push(load(
                "ram",
                ram.memory.load(),
                monitors.ram.importance.get(),
                limits(monitors.ram.threshold, monitors.ram.release, hysteresis),
                format!("{} of {} in use", memory::bytes(used), memory::bytes(total)),
                Some(ram.from.clone()),
            ));
        }
        for monitor in monitors.tcp.iter().filter(|t| t.enabled()) {
            let port = monitor.port.get() as u16;
            let count = readings
                .tcp
                .iter()
                .find(|(p, _)| *p == port)
                .map_or(0, |(_, count)| *count);
            let max = monitor.max_connections.get();
            loads.push(load(
                &format!("tcp:{port}"),
                rules::tcp_load(count, max),
                monitor.importance.get(),
                limits(monitor.threshold, monitor.release, hysteresis),
                format!("{count} of {max} established"),
                None,
            ));
        }
        if let Some((monitor, found)) = monitors
            .sessions
            .filter(|s| s.enabled())
            .zip(readings.sessions.as_ref())
        {
            let count = found.count(monitor.disconnected);
            let max = monitor.max_sessions.get();
            let text = match monitor.disconnected {
                true => format!(
                    "{count} of {max} ({} active, {} disconnected)",
                    found.active, found.disconnected
                ),
                false => format!(
                    "{count} of {max} active ({} disconnected not counted)",
                    found.disconnected
                ),
            };
            loads.push(load(
                "sessions",
                sessions::load(count, max),
                monitor.importance.get(),
                limits(monitor.threshold, monitor.release, hysteresis),
                text,
                Some(found.source.clone()),
            ));
        }
        custom_loads(config, monitors.custom, readings, &mut loads, &mut ignored)?;
    }
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

/// The loads of the config's custom monitors, each from its source's reading; a failure is
/// the probe's error, or, for a monitor that ignores failures, a line in `ignored`.
fn custom_loads(
    config: &Config,
    custom: &[CustomMonitor],
    readings: &Readings,
    loads: &mut Vec<(Load, Figure)>,
    ignored: &mut Vec<(String, String)>,
) -> Result<(), ProbeError> {
    for monitor in custom.iter().filter(|c| c.enabled()) {
        let reading = readings.custom.iter().find(|r| r.source == monitor.source);
        let (value, took) = match reading.map(|r| (&r.value, r.took)) {
            Some((Ok(value), took)) => (*value, took),
            failed => {
                let message = match failed {
                    Some((Err(why), _)) => why.clone(),
                    _ => "not read in this sample".to_string(),
                };
                match monitor.on_error {
                    OnError::Ignore => ignored.push((monitor.name.clone(), message)),
                    OnError::Error => {
                        return Err(ProbeError::Metric(MetricError {
                            monitor: monitor.name.clone(),
                            message: format!("{}: {message}", monitor.source),
                        }));
                    }
                }
                continue;
            }
        };
        let mut entry = load(
            &monitor.name,
            value / monitor.max * 100.0,
            monitor.importance.get(),
            limits(monitor.threshold, monitor.release, config.hysteresis.get()),
            format!("{} of max {}", number(value), number(monitor.max)),
            Some(monitor.source.to_string()),
        );
        entry.1.custom = Some((value, took));
        loads.push(entry);
    }
    Ok(())
}

/// Runs one probe. `wait(deadline)` passes the sample window; `request(deadline)` returns
/// the first line of `agent-send`, waiting for it at most until `deadline`. Without profiles
/// `agent-send` selects nothing and is not waited for.
pub fn run(
    config: &Config,
    caller: Caller,
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
        answer(
            config,
            profile,
            &readings.unwrap_or_default(),
            (mode, mode_from),
            caller,
            &state,
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
    loads: &mut [(Load, Figure)],
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

/// A monitor's threshold and the release its drains end at, as [`load`] takes them.
fn limits<const MAX: u32>(
    threshold: Real<MAX>,
    release: Option<Real<MAX>>,
    hysteresis: f64,
) -> (f64, f64) {
    let threshold = threshold.get();
    (
        threshold,
        release_of(threshold, release.map(Real::get), hysteresis),
    )
}

/// One monitor's load; `threshold` is (threshold, release).
fn load(
    name: &str,
    load: f64,
    importance: f64,
    (threshold, release): (f64, f64),
    text: String,
    source: Option<String>,
) -> (Load, Figure) {
    (
        Load::new(name.to_string(), load, importance, threshold, release),
        Figure {
            text,
            source,
            custom: None,
        },
    )
}

/// `20`, `0.75`: a custom value as the config would write it.
fn number(value: f64) -> String {
    format!("{}", (value * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests;
