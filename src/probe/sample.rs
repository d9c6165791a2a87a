//! Sampling for a probe: what a config needs read, the readings taken in one window (CPU
//! beside custom sources, RAM, TCP, sessions) and the since-last CPU figure.

use std::time::{Duration, Instant};

use crate::clock;
use crate::config::{Config, CpuMode, Source};
use crate::metrics::memory::{self, Memory};
use crate::metrics::sessions::{self, Sessions};
use crate::metrics::{Cgroups, MetricError, cpu, custom, tcp};
use crate::state::{CpuRecord, StateDir};

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
