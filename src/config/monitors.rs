//! The monitors' settings: CPU and RAM, TCP ports, user sessions (custom monitors are in
//! `custom`), their text forms for the environment and flags, and the rule that a release
//! lies below its threshold.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::values::{
    Importance, MaxConnections, MaxSessions, Port, Real, TcpThreshold, Threshold, check_release,
    entry_fields, in_field, one, parse_list, present, weighing,
};

/// CPU or RAM: how much it counts and when it drains.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Monitor {
    pub importance: Importance,
    pub threshold: Threshold,
    /// Where a drain by the threshold ends; unset: threshold − `hysteresis`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<Threshold>,
}

impl Monitor {
    /// A monitor nobody looks at is not sampled.
    pub fn enabled(&self) -> bool {
        self.importance.get() > 0.0 || self.threshold.get() > 0.0
    }
}

/// The load at or below which a drain by `threshold` ends: `release` when the monitor sets
/// one, else `hysteresis` points below the threshold (not below 0).
pub fn release_of(threshold: f64, release: Option<f64>, hysteresis: f64) -> f64 {
    release.unwrap_or((threshold - hysteresis).max(0.0))
}

/// Established connections on a local port against a maximum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "TcpEntry")]
pub struct TcpMonitor {
    pub port: Port,
    pub max_connections: MaxConnections,
    pub importance: Importance,
    pub threshold: TcpThreshold,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<TcpThreshold>,
}

/// A file's `tcp` entry as written, checked (its release against its threshold) into a
/// [`TcpMonitor`] as it is read, so an error has the entry's position.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpEntry {
    port: Port,
    max_connections: MaxConnections,
    #[serde(default = "one")]
    importance: Importance,
    #[serde(default)]
    threshold: TcpThreshold,
    #[serde(default)]
    release: Option<TcpThreshold>,
}

impl TryFrom<TcpEntry> for TcpMonitor {
    type Error = Problem;
    fn try_from(entry: TcpEntry) -> Result<TcpMonitor, Problem> {
        check_release(
            || format!("tcp:{}", entry.port.get()),
            entry.threshold.get(),
            entry.release.map(Real::get),
        )?;
        Ok(TcpMonitor {
            port: entry.port,
            max_connections: entry.max_connections,
            importance: entry.importance,
            threshold: entry.threshold,
            release: entry.release,
        })
    }
}

impl TcpMonitor {
    pub fn enabled(&self) -> bool {
        self.importance.get() > 0.0 || self.threshold.get() > 0.0
    }

    /// Parses one `port:max_connections[:importance[:threshold[:release]]]` entry.
    pub(super) fn parse(text: &str) -> Result<TcpMonitor, Problem> {
        let expected = "port:max_connections[:importance[:threshold[:release]]]";
        let fields = entry_fields(text, expected)?;
        let port = Port::parse(fields[0]).map_err(in_field("port"))?;
        let max_connections =
            MaxConnections::parse(fields[1]).map_err(in_field("max_connections"))?;
        let (importance, threshold, release) = weighing::<100_000>(&fields)?;
        check_release(
            || format!("tcp:{}", port.get()),
            threshold.get(),
            release.map(Real::get),
        )?;
        Ok(TcpMonitor {
            port,
            max_connections,
            importance,
            threshold,
            release,
        })
    }

    /// The list form used by `LB_FEEDBACK_TCP` and `--tcp`; empty means no TCP monitor.
    pub(super) fn parse_list(text: &str) -> Result<Vec<TcpMonitor>, Problem> {
        parse_list(text, TcpMonitor::parse)
    }
}

fn yes() -> bool {
    true
}

/// User sessions on the host (see `metrics::sessions`) against a maximum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsMonitor {
    pub max_sessions: MaxSessions,
    #[serde(default = "one")]
    pub importance: Importance,
    /// Like a TCP load, a sessions load may pass 100.
    #[serde(default)]
    pub threshold: TcpThreshold,
    /// Whether disconnected sessions count (logind: closing ones). On by default: they hold
    /// their memory and processes, which is why this monitor balances Remote Desktop hosts
    /// better than counting connections on 3389.
    #[serde(default = "yes")]
    pub disconnected: bool,
    /// Where a drain by the threshold ends (the file only); unset: threshold − `hysteresis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<TcpThreshold>,
}

impl SessionsMonitor {
    pub fn enabled(&self) -> bool {
        self.importance.get() > 0.0 || self.threshold.get() > 0.0
    }

    /// `max_sessions[:importance[:threshold[:disconnected]]]`, as `LB_FEEDBACK_SESSIONS` and
    /// `--sessions` carry it; empty or `off` is no sessions monitor.
    pub(super) fn parse(text: &str) -> Result<Option<SessionsMonitor>, Problem> {
        let text = text.trim();
        if text.is_empty() || text == "off" {
            return Ok(None);
        }
        let fields: Vec<&str> = text.split(':').collect();
        if fields.len() > 4 {
            return Err(Problem::Shape {
                got: text.into(),
                expected: "max_sessions[:importance[:threshold[:disconnected]]], or off",
            });
        }
        let field = |i: usize| fields.get(i).copied();
        let max_sessions = MaxSessions::parse(fields[0]).map_err(in_field("max_sessions"))?;
        let importance = match field(1) {
            Some(text) => Importance::parse(text).map_err(in_field("importance"))?,
            None => Importance::ONE,
        };
        let threshold = match field(2) {
            Some(text) => TcpThreshold::parse(text).map_err(in_field("threshold"))?,
            None => TcpThreshold::ZERO,
        };
        let disconnected = match field(3).map(str::trim) {
            None | Some("yes" | "true") => true,
            Some("no" | "false") => false,
            Some(other) => {
                let cause = Problem::NotYesOrNo { got: other.into() };
                return Err(in_field("disconnected")(cause));
            }
        };
        Ok(Some(SessionsMonitor {
            max_sessions,
            importance,
            threshold,
            disconnected,
            release: None,
        }))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    importance: Option<Importance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<Threshold>,
    /// `null` clears a release set below, back to threshold − hysteresis.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    release: Option<Option<Threshold>>,
}

impl MonitorLayer {
    pub(super) fn apply(&self, monitor: &mut Monitor) {
        if let Some(importance) = self.importance {
            monitor.importance = importance;
        }
        if let Some(threshold) = self.threshold {
            monitor.threshold = threshold;
        }
        if let Some(release) = self.release {
            monitor.release = release;
        }
    }
}
