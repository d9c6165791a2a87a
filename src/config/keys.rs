//! The settings the environment and the flags carry: their names, and how each one's text
//! form sets the config.

use std::path::{Path, PathBuf};

use super::monitors::{SessionsMonitor, TcpMonitor};
use super::values::*;
use super::{Config, Origin};
use crate::cidr::Cidr;

/// A setting that the environment and the flags can both carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Mode,
    SampleMs,
    CpuImportance,
    CpuThreshold,
    RamImportance,
    RamThreshold,
    Tcp,
    Maxconn,
    Recovery,
    RecoverySeconds,
    RecoveryReplies,
    StateDir,
    StateOwner,
    CpuMode,
    Allow,
    MaxInFlight,
    MaxInFlightPerSource,
    Scope,
    Log,
    Http,
    CpuRelease,
    RamRelease,
    Hysteresis,
    SmoothingSeconds,
    MinPercent,
    Sessions,
}

impl Key {
    /// Every key, in the order the environment layer reads them.
    pub const ALL: [Key; 26] = [
        Key::Mode,
        Key::SampleMs,
        Key::CpuImportance,
        Key::CpuThreshold,
        Key::RamImportance,
        Key::RamThreshold,
        Key::Tcp,
        Key::Maxconn,
        Key::Recovery,
        Key::RecoverySeconds,
        Key::RecoveryReplies,
        Key::StateDir,
        Key::StateOwner,
        Key::CpuMode,
        Key::Allow,
        Key::MaxInFlight,
        Key::MaxInFlightPerSource,
        Key::Scope,
        Key::Log,
        Key::Http,
        Key::CpuRelease,
        Key::RamRelease,
        Key::Hysteresis,
        Key::SmoothingSeconds,
        Key::MinPercent,
        Key::Sessions,
    ];

    pub fn env_var(self) -> &'static str {
        match self {
            Key::Mode => "LB_FEEDBACK_MODE",
            Key::SampleMs => "LB_FEEDBACK_SAMPLE_MS",
            Key::CpuImportance => "LB_FEEDBACK_CPU_IMPORTANCE",
            Key::CpuThreshold => "LB_FEEDBACK_CPU_THRESHOLD",
            Key::RamImportance => "LB_FEEDBACK_RAM_IMPORTANCE",
            Key::RamThreshold => "LB_FEEDBACK_RAM_THRESHOLD",
            Key::Tcp => "LB_FEEDBACK_TCP",
            Key::Maxconn => "LB_FEEDBACK_MAXCONN",
            Key::Recovery => "LB_FEEDBACK_RECOVERY",
            Key::RecoverySeconds => "LB_FEEDBACK_RECOVERY_SECONDS",
            Key::RecoveryReplies => "LB_FEEDBACK_RECOVERY_REPLIES",
            Key::StateDir => "LB_FEEDBACK_STATE_DIR",
            Key::StateOwner => "LB_FEEDBACK_STATE_OWNER",
            Key::CpuMode => "LB_FEEDBACK_CPU_MODE",
            Key::Allow => "LB_FEEDBACK_ALLOW",
            Key::MaxInFlight => "LB_FEEDBACK_MAX_IN_FLIGHT",
            Key::MaxInFlightPerSource => "LB_FEEDBACK_MAX_IN_FLIGHT_PER_SOURCE",
            Key::Scope => "LB_FEEDBACK_SCOPE",
            Key::Log => "LB_FEEDBACK_LOG",
            Key::Http => "LB_FEEDBACK_HTTP",
            Key::CpuRelease => "LB_FEEDBACK_CPU_RELEASE",
            Key::RamRelease => "LB_FEEDBACK_RAM_RELEASE",
            Key::Hysteresis => "LB_FEEDBACK_HYSTERESIS",
            Key::SmoothingSeconds => "LB_FEEDBACK_SMOOTHING_SECONDS",
            Key::MinPercent => "LB_FEEDBACK_MIN_PERCENT",
            Key::Sessions => "LB_FEEDBACK_SESSIONS",
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Key::Mode => "mode",
            Key::SampleMs => "sample-ms",
            Key::CpuImportance => "cpu-importance",
            Key::CpuThreshold => "cpu-threshold",
            Key::RamImportance => "ram-importance",
            Key::RamThreshold => "ram-threshold",
            Key::Tcp => "tcp",
            Key::Maxconn => "maxconn",
            Key::Recovery => "recovery",
            Key::RecoverySeconds => "recovery-seconds",
            Key::RecoveryReplies => "recovery-replies",
            Key::StateDir => "state-dir",
            Key::StateOwner => "state-owner",
            Key::CpuMode => "cpu-mode",
            Key::Allow => "allow",
            Key::MaxInFlight => "max-in-flight",
            Key::MaxInFlightPerSource => "max-in-flight-per-source",
            Key::Scope => "scope",
            Key::Log => "log",
            Key::Http => "http",
            Key::CpuRelease => "cpu-release",
            Key::RamRelease => "ram-release",
            Key::Hysteresis => "hysteresis",
            Key::SmoothingSeconds => "smoothing-seconds",
            Key::MinPercent => "min-percent",
            Key::Sessions => "sessions",
        }
    }

    pub fn from_flag(flag: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.flag() == flag)
    }
}

impl Config {
    /// Sets one key from its text form, as the environment and the flags carry it.
    pub fn apply_text(&mut self, key: Key, text: &str, origin: Origin) -> Result<(), String> {
        match key {
            Key::Mode => {
                self.mode = Mode::parse(text)?;
                self.mode_origin = origin;
            }
            Key::SampleMs => self.sample_ms = SampleMs::parse(text)?,
            Key::CpuImportance => self.cpu.importance = Importance::parse(text)?,
            Key::CpuThreshold => self.cpu.threshold = Threshold::parse(text)?,
            Key::RamImportance => self.ram.importance = Importance::parse(text)?,
            Key::RamThreshold => self.ram.threshold = Threshold::parse(text)?,
            Key::Tcp => self.tcp = TcpMonitor::parse_list(text)?,
            Key::Maxconn => {
                self.maxconn = match text.trim() {
                    "" | "none" => None,
                    text => Some(MaxConn::parse(text)?),
                }
            }
            Key::Recovery => self.recovery = word("recovery", text, "window, always, never")?,
            Key::RecoverySeconds => self.recovery_seconds = RecoverySeconds::parse(text)?,
            Key::RecoveryReplies => self.recovery_replies = RecoveryReplies::parse(text)?,
            Key::StateDir => {
                check_state_dir(Path::new(text))?;
                self.state_dir = PathBuf::from(text);
            }
            Key::StateOwner => {
                self.state_owner = match text {
                    "" => None,
                    name => Some(UserName::try_from(name.to_string())?),
                }
            }
            Key::CpuMode => self.cpu_mode = word("cpu mode", text, "sample, since-last")?,
            Key::Allow => {
                self.allow = text
                    .split(',')
                    .map(str::trim)
                    .filter(|entry| !entry.is_empty())
                    .map(Cidr::parse)
                    .collect::<Result<_, _>>()?
            }
            Key::MaxInFlight => self.max_in_flight = MaxInFlight::parse(text)?,
            Key::MaxInFlightPerSource => {
                self.max_in_flight_per_source = MaxInFlight::parse(text)?;
            }
            Key::Scope => self.scope = self.scope.parse(text)?,
            Key::Log => self.log = word("log", text, "none, syslog")?,
            Key::Http => self.http = parse_http(text)?,
            Key::CpuRelease => self.cpu.release = parse_release(text)?,
            Key::RamRelease => self.ram.release = parse_release(text)?,
            Key::Hysteresis => self.hysteresis = Hysteresis::parse(text)?,
            Key::SmoothingSeconds => self.smoothing_seconds = SmoothingSeconds::parse(text)?,
            Key::MinPercent => self.min_percent = MinPercent::parse(text)?,
            Key::Sessions => self.sessions = SessionsMonitor::parse(text)?,
        }
        Ok(())
    }
}
