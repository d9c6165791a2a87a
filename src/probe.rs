//! One probe, from the effective config to the reply line: pick the mode, sample only the
//! monitors that count, apply the rules, decide the recovery words. The binaries gather the
//! inputs and write the line; everything they agree on is decided here.

use std::time::{Duration, Instant};

use crate::config::{Config, Mode};
use crate::metrics::{MetricError, cpu, memory, tcp};
use crate::reply::{self, Status};
use crate::rules::{self, Load, Verdict};
use crate::state::{self, RecoveryDecision, StateDir, StateError};

/// Everything a probe found, for the reply and for `--explain`.
#[derive(Clone, Debug)]
pub struct Report {
    pub mode: Mode,
    /// Where the mode came from, in words.
    pub mode_from: String,
    pub sample_ms: u64,
    /// The monitors sampled, each with its raw figure in words.
    pub loads: Vec<(Load, String)>,
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
}

impl ProbeError {
    pub fn word(&self) -> &'static str {
        match self {
            ProbeError::Metric(err) => err.monitor,
            ProbeError::State(_) => "state",
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
    Haproxy,
    Person,
}

/// The mode that counts now: a runtime mode that has not expired, else the config's.
pub fn effective_mode(
    config: &Config,
    state: &StateDir,
    now_ms: u64,
) -> Result<(Mode, String), StateError> {
    match state.runtime_mode()? {
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

/// Runs one probe. `wait(deadline)` is called once, to pass the sample window; the inetd
/// path reads `agent-send` while it waits.
pub fn run(
    config: &Config,
    caller: Caller,
    wait: &mut dyn FnMut(Instant),
) -> Result<Report, ProbeError> {
    let state = StateDir::new(&config.state_dir);
    let (mode, mode_from) = effective_mode(config, &state, state::now_ms())?;
    let mut loads = Vec::new();
    // A server told to drain, stop or go to maintenance needs no figures: skip the sample.
    if mode == Mode::Normal {
        let cpu_sampler = match config.cpu.enabled() {
            true => Some(cpu::Sampler::start()?),
            false => None,
        };
        wait(Instant::now() + Duration::from_millis(config.sample_ms.get()));
        if let Some(sampler) = cpu_sampler {
            let busy = sampler.finish()?;
            loads.push(load(
                "cpu",
                busy,
                config.cpu.importance.get(),
                config.cpu.threshold.get(),
                format!("busy {busy:.1}% over {} ms", config.sample_ms.get()),
            ));
        }
        if config.ram.enabled() {
            let ram = memory::read()?;
            loads.push(load(
                "ram",
                ram.load(),
                config.ram.importance.get(),
                config.ram.threshold.get(),
                format!("{} of {} in use", bytes(ram.used()), bytes(ram.total)),
            ));
        }
        let watched: Vec<_> = config.tcp.iter().filter(|t| t.enabled()).collect();
        if !watched.is_empty() {
            let ports: Vec<u16> = watched.iter().map(|t| t.port.get() as u16).collect();
            let counts = tcp::count_established(&ports)?;
            for (monitor, count) in watched.iter().zip(counts) {
                let max = monitor.max_connections.get();
                loads.push(load(
                    &format!("tcp:{}", monitor.port.get()),
                    rules::tcp_load(count, max),
                    monitor.importance.get(),
                    monitor.threshold.get(),
                    format!("{count} of {max} established"),
                ));
            }
        }
    } else {
        wait(Instant::now());
    }
    let plain: Vec<Load> = loads.iter().map(|(l, _)| l.clone()).collect();
    let verdict = rules::judge(&plain);
    let status = Status::decide(mode, &verdict, &plain);
    let recovery = state::recovery(
        config.recovery,
        config.recovery_seconds.get(),
        status.is_normal(),
        &state,
        state::now_ms(),
        caller == Caller::Haproxy,
    );
    let maxconn = config.maxconn.map(|m| m.get());
    let line = status.line(recovery.recover, maxconn);
    Ok(Report {
        mode,
        mode_from,
        sample_ms: config.sample_ms.get(),
        loads,
        verdict,
        status,
        recovery,
        maxconn,
        line,
    })
}

fn load(name: &str, load: f64, importance: f64, threshold: f64, raw: String) -> (Load, String) {
    (
        Load {
            name: name.to_string(),
            load,
            importance,
            threshold,
        },
        raw,
    )
}

fn bytes(n: u64) -> String {
    format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64)
}

/// `1h 2m`, `3m 4s`, `5s`: a duration for people.
pub fn human_duration(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(1500), "2s");
        assert_eq!(human_duration(600_000), "10m 0s");
        assert_eq!(human_duration(3_723_000), "1h 2m");
    }
}
