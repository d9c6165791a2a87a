//! The effective configuration: built-in defaults, then the JSON file, the environment and the
//! command-line flags laid over them in that order, every value range-checked where it is read
//! and every error naming where the bad value came from.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::cidr::Cidr;

mod custom;
use custom::CustomList;
pub use custom::{CustomMonitor, MAX_CUSTOM, OnError, Source, SourceKind, TimeoutMs};

/// The file read when neither `--config` nor `LB_FEEDBACK_CONFIG` names one.
#[cfg(not(windows))]
pub fn default_config_path() -> PathBuf {
    PathBuf::from("/etc/lb-feedback/config.json")
}

/// The file read when neither `--config` nor `LB_FEEDBACK_CONFIG` names one.
#[cfg(windows)]
pub fn default_config_path() -> PathBuf {
    program_data().join("config.json")
}

#[cfg(not(windows))]
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/lb-feedback")
}

#[cfg(windows)]
fn default_state_dir() -> PathBuf {
    program_data()
}

#[cfg(windows)]
fn program_data() -> PathBuf {
    let base = std::env::var_os("ProgramData").unwrap_or_else(|| OsString::from(r"C:\ProgramData"));
    PathBuf::from(base).join("lb-feedback")
}

/// What the server is told to be, before any threshold is looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Normal,
    Drain,
    #[serde(alias = "maintenance")]
    Maint,
    Stop,
}

impl Mode {
    pub const ALLOWED: &'static str = "normal, drain, maint (or maintenance), stop";

    pub fn parse(text: &str) -> Result<Mode, String> {
        word("mode", text, Mode::ALLOWED)
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Drain => "drain",
            Mode::Maint => "maint",
            Mode::Stop => "stop",
        }
    }
}

/// When normal replies carry HAProxy's recovery words `up ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recovery {
    /// Per poller: after a non-normal reply, a first poll or a mode change, until
    /// `recovery_replies` have been sent and `recovery_seconds` have passed.
    Window,
    Always,
    Never,
}

/// One of an enum's words, case-insensitive, as the environment and flags carry it; the same
/// serde names the JSON file uses, so the two can never disagree.
/// `http`'s text form: `ADDR:PORT` (IPv6 in brackets), or empty or `off` for none.
fn parse_http(text: &str) -> Result<Option<SocketAddr>, String> {
    match text.trim() {
        "" | "off" => Ok(None),
        addr => addr.parse().map(Some).map_err(|_| {
            format!("{addr:?}: expected ADDR:PORT, e.g. 127.0.0.1:3334 or [::1]:3334, or off")
        }),
    }
}

/// A CPU or RAM `release` in text: a percent, or empty or `auto` for threshold − hysteresis.
fn parse_release(text: &str) -> Result<Option<Threshold>, String> {
    match text.trim() {
        "" | "auto" => Ok(None),
        text => Threshold::parse(text).map(Some),
    }
}

fn word<T: serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
    allowed: &str,
) -> Result<T, String> {
    let value = serde_json::Value::String(text.trim().to_ascii_lowercase());
    serde_json::from_value(value)
        .map_err(|_| format!("unknown {what} {text:?}; allowed: {allowed}"))
}

/// Where the history's events go besides the state directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTo {
    /// Nowhere else (lb-feedback-service still writes them to its own log).
    None,
    /// Also the local syslog daemon (`/dev/log`), the channel inetd services use.
    Syslog,
}

/// How the CPU load is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuMode {
    /// Two readings `sample_ms` apart: the reply waits for the window.
    Sample,
    /// The difference to the counters the previous probe saved: an instant reply covering the
    /// whole interval between polls. Falls back to sampling when they are missing or too old.
    SinceLast,
}

/// Whose CPU and RAM a monitor measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The cgroup's when it holds the process in (a CPU quota or cpuset below the online
    /// CPUs, a memory limit below the host's memory), the host's otherwise.
    Auto,
    Host,
    /// The cgroup's, limited or not; a cgroup that cannot be read is an error.
    Cgroup,
}

/// The scope of each monitor it makes sense for: CPU and RAM (TCP counts are the host's
/// network namespace either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Scopes {
    pub cpu: Scope,
    pub ram: Scope,
}

const SCOPE_WORDS: &str = "auto, host, cgroup";

impl Scopes {
    /// `auto` for both, or `cpu=cgroup,ram=host` (a monitor left out keeps its scope).
    fn parse(&self, text: &str) -> Result<Scopes, String> {
        let text = text.trim();
        if !text.contains('=') {
            let scope = word("scope", text, SCOPE_WORDS)?;
            return Ok(Scopes {
                cpu: scope,
                ram: scope,
            });
        }
        let mut scopes = *self;
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (monitor, value) = entry.split_once('=').unwrap_or((entry, ""));
            let scope = word("scope", value, SCOPE_WORDS)?;
            match monitor.trim() {
                "cpu" => scopes.cpu = scope,
                "ram" => scopes.ram = scope,
                other => {
                    return Err(format!(
                        "{other:?} has no scope; expected auto|host|cgroup or cpu=SCOPE,ram=SCOPE"
                    ));
                }
            }
        }
        Ok(scopes)
    }
}

/// The file's `scope`: one word for both monitors, or `{"cpu": .., "ram": ..}`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "\"auto\", \"host\", \"cgroup\", or {\"cpu\": SCOPE, \"ram\": SCOPE}"
)]
enum ScopeLayer {
    Both(Scope),
    Each(ScopeEach),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeEach {
    cpu: Option<Scope>,
    ram: Option<Scope>,
}

/// An integer checked against `MIN..=MAX` as it is read, so a JSON error carries its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Int<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Int<MIN, MAX> {
    pub const fn new_const(value: u64) -> Self {
        assert!(value >= MIN && value <= MAX);
        Int(value)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    fn parse(text: &str) -> Result<Self, String> {
        let value: u64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a whole number; allowed: {MIN} to {MAX}"))?;
        Self::try_from(value)
    }
}

impl<const MIN: u64, const MAX: u64> TryFrom<u64> for Int<MIN, MAX> {
    type Error = String;
    fn try_from(value: u64) -> Result<Self, String> {
        if (MIN..=MAX).contains(&value) {
            Ok(Int(value))
        } else {
            Err(format!("{value} is out of range; allowed: {MIN} to {MAX}"))
        }
    }
}

impl<const MIN: u64, const MAX: u64> From<Int<MIN, MAX>> for u64 {
    fn from(value: Int<MIN, MAX>) -> u64 {
        value.0
    }
}

/// A non-negative number checked against `0..=MAX` as it is read.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Real<const MAX: u32>(f64);

impl<const MAX: u32> Real<MAX> {
    pub const ZERO: Self = Real(0.0);
    pub const ONE: Self = Real(1.0);

    pub fn get(self) -> f64 {
        self.0
    }

    fn parse(text: &str) -> Result<Self, String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number; allowed: 0 to {MAX}"))?;
        Self::try_from(value)
    }
}

impl<const MAX: u32> TryFrom<f64> for Real<MAX> {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, String> {
        if value.is_finite() && (0.0..=f64::from(MAX)).contains(&value) {
            Ok(Real(value))
        } else {
            Err(format!("{value} is out of range; allowed: 0 to {MAX}"))
        }
    }
}

impl<const MAX: u32> From<Real<MAX>> for f64 {
    fn from(value: Real<MAX>) -> f64 {
        value.0
    }
}

pub type SampleMs = Int<100, 10_000>;
pub type Port = Int<1, 65_535>;
pub type MaxConnections = Int<1, 1_000_000>;
pub type MaxConn = Int<1, 1_000_000>;
pub type RecoverySeconds = Int<0, 86_400>;
pub type RecoveryReplies = Int<1, 1000>;
pub type SinceLastMaxSeconds = Int<1, 3_600>;
pub type MaxInFlight = Int<1, 10_000>;
pub type MaxSessions = Int<1, 1_000_000>;
/// Weight of a monitor in the utilization average; 0 leaves it out.
pub type Importance = Real<100>;
/// Load in percent at which CPU or RAM drains the server; 0 is off.
pub type Threshold = Real<100>;
/// Load in percent at which a TCP monitor drains the server; its load may pass 100.
pub type TcpThreshold = Real<100_000>;
/// Points below a threshold where the drain it caused ends, unless a monitor sets `release`.
pub type Hysteresis = Real<100>;
/// The time constant of the moving average of each monitor's load; 0 is off.
pub type SmoothingSeconds = Int<0, 3_600>;
/// The least a normal reply says, in percent.
pub type MinPercent = Int<0, 100>;

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

/// A monitor's own `release` must be below its threshold, or no drain would ever hold.
fn check_release(what: &str, threshold: f64, release: Option<f64>) -> Result<(), String> {
    match release {
        Some(release) if threshold > 0.0 && release >= threshold => Err(format!(
            "{what}: release {release} must be below its threshold {threshold} (a drain by the \
             threshold lasts until the load is at or below release)"
        )),
        _ => Ok(()),
    }
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
    type Error = String;
    fn try_from(entry: TcpEntry) -> Result<TcpMonitor, String> {
        let what = format!("tcp:{}", entry.port.get());
        check_release(&what, entry.threshold.get(), entry.release.map(Real::get))?;
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
    fn parse(text: &str) -> Result<TcpMonitor, String> {
        let fields: Vec<&str> = text.split(':').collect();
        let shape = "expected port:max_connections[:importance[:threshold[:release]]]";
        if !(2..=5).contains(&fields.len()) {
            return Err(format!("{text:?}: {shape}"));
        }
        let field = |i: usize| fields.get(i).copied();
        let port = Port::parse(fields[0]).map_err(|e| format!("port {e}"))?;
        let max_connections =
            MaxConnections::parse(fields[1]).map_err(|e| format!("max_connections {e}"))?;
        let importance = match field(2) {
            Some(text) => Importance::parse(text).map_err(|e| format!("importance {e}"))?,
            None => Importance::ONE,
        };
        let threshold = match field(3) {
            Some(text) => TcpThreshold::parse(text).map_err(|e| format!("threshold {e}"))?,
            None => TcpThreshold::ZERO,
        };
        let release = field(4)
            .map(|text| TcpThreshold::parse(text).map_err(|e| format!("release {e}")))
            .transpose()?;
        check_release(
            &format!("tcp:{}", port.get()),
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
    fn parse_list(text: &str) -> Result<Vec<TcpMonitor>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(TcpMonitor::parse)
            .collect()
    }
}

fn one() -> Importance {
    Importance::ONE
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
    fn parse(text: &str) -> Result<Option<SessionsMonitor>, String> {
        let text = text.trim();
        if text.is_empty() || text == "off" {
            return Ok(None);
        }
        let fields: Vec<&str> = text.split(':').collect();
        let shape = "expected max_sessions[:importance[:threshold[:disconnected]]], or off";
        if fields.len() > 4 {
            return Err(format!("{text:?}: {shape}"));
        }
        let field = |i: usize| fields.get(i).copied();
        let max_sessions =
            MaxSessions::parse(fields[0]).map_err(|e| format!("max_sessions {e}"))?;
        let importance = match field(1) {
            Some(text) => Importance::parse(text).map_err(|e| format!("importance {e}"))?,
            None => Importance::ONE,
        };
        let threshold = match field(2) {
            Some(text) => TcpThreshold::parse(text).map_err(|e| format!("threshold {e}"))?,
            None => TcpThreshold::ZERO,
        };
        let disconnected = match field(3).map(str::trim) {
            None | Some("yes" | "true") => true,
            Some("no" | "false") => false,
            Some(other) => {
                return Err(format!("disconnected {other:?}: expected yes or no"));
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

impl Default for Real<100_000> {
    fn default() -> Self {
        Real(0.0)
    }
}

/// Everything one probe needs to know.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub mode: Mode,
    pub sample_ms: SampleMs,
    pub cpu: Monitor,
    pub ram: Monitor,
    pub tcp: Vec<TcpMonitor>,
    /// Off (`None`) unless configured.
    pub sessions: Option<SessionsMonitor>,
    /// Values from commands, files and local HTTP endpoints (the JSON file only).
    pub custom: Vec<CustomMonitor>,
    pub maxconn: Option<MaxConn>,
    pub recovery: Recovery,
    pub recovery_seconds: RecoverySeconds,
    pub recovery_replies: RecoveryReplies,
    pub state_dir: PathBuf,
    /// The user `lb-feedback mode`, run as root, gives the state directory to when it has to
    /// create it (the package's is `lb-feedback`); unset: the directory stays root's.
    pub state_owner: Option<UserName>,
    pub cpu_mode: CpuMode,
    /// since-last mode: saved counters older than this are not used.
    pub since_last_max_seconds: SinceLastMaxSeconds,
    /// Selected by the first line HAProxy's `agent-send` sends.
    pub profiles: BTreeMap<ProfileName, Profile>,
    /// lb-feedback-service: who may connect (empty: everybody).
    pub allow: Vec<Cidr>,
    /// lb-feedback-service: connections answered at once; more are closed without a reply.
    pub max_in_flight: MaxInFlight,
    /// lb-feedback-service: connections answered at once for one peer address.
    pub max_in_flight_per_source: MaxInFlight,
    pub scope: Scopes,
    pub log: LogTo,
    /// lb-feedback-service: where to serve `/metrics`, `/load`, `/status` and `/health`
    /// (off when `None`).
    pub http: Option<SocketAddr>,
    /// Points below a threshold where the drain it caused ends (a monitor's `release` wins).
    pub hysteresis: Hysteresis,
    /// The time constant of each monitor's moving average; 0: every reply is this probe's.
    pub smoothing_seconds: SmoothingSeconds,
    /// The least a normal reply says (a drain still drains).
    pub min_percent: MinPercent,
    /// Where `mode` was last set; shown by `--explain` and `lb-feedback mode`.
    #[serde(skip)]
    pub mode_origin: Origin,
}

impl Default for Config {
    fn default() -> Self {
        let monitor = Monitor {
            importance: Importance::ONE,
            threshold: Threshold::ZERO,
            release: None,
        };
        Config {
            mode: Mode::Normal,
            sample_ms: SampleMs::new_const(1000),
            cpu: monitor,
            ram: monitor,
            tcp: Vec::new(),
            sessions: None,
            custom: Vec::new(),
            maxconn: None,
            recovery: Recovery::Window,
            recovery_seconds: RecoverySeconds::new_const(10),
            recovery_replies: RecoveryReplies::new_const(3),
            state_dir: default_state_dir(),
            state_owner: None,
            cpu_mode: CpuMode::Sample,
            since_last_max_seconds: SinceLastMaxSeconds::new_const(30),
            profiles: BTreeMap::new(),
            allow: Vec::new(),
            max_in_flight: MaxInFlight::new_const(1024),
            max_in_flight_per_source: MaxInFlight::new_const(128),
            scope: Scopes {
                cpu: Scope::Auto,
                ram: Scope::Auto,
            },
            log: LogTo::None,
            http: None,
            hysteresis: Real(10.0),
            smoothing_seconds: SmoothingSeconds::new_const(0),
            min_percent: MinPercent::new_const(0),
            mode_origin: Origin::Default,
        }
    }
}

/// Where a setting came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    #[default]
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag --{flag}"),
        }
    }
}

/// A bad setting, with the place it was found.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub place: Place,
    pub message: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    /// The file as a whole (missing, unreadable).
    File(PathBuf),
    /// A position inside the file; line and column count from 1.
    FileAt(PathBuf, usize, usize),
    Env(&'static str),
    Flag(&'static str),
    /// The file, the environment and the flags together (a release against its threshold).
    Combined,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::File(path) => write!(f, "{}: {}", path.display(), self.message),
            Place::FileAt(path, line, column) => {
                write!(f, "{}:{line}:{column}: {}", path.display(), self.message)
            }
            Place::Env(var) => write!(f, "environment variable {var}: {}", self.message),
            Place::Flag(flag) => write!(f, "--{flag}: {}", self.message),
            Place::Combined => write!(
                f,
                "the settings (file, environment and flags together): {}",
                self.message
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

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

/// The JSON file's shape: every field optional, laid over what is already there.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    mode: Option<Mode>,
    sample_ms: Option<SampleMs>,
    cpu: Option<MonitorLayer>,
    ram: Option<MonitorLayer>,
    tcp: Option<Vec<TcpMonitor>>,
    custom: Option<CustomList>,
    #[serde(default, deserialize_with = "present")]
    sessions: Option<Option<SessionsMonitor>>,
    #[serde(default, deserialize_with = "present")]
    maxconn: Option<Option<MaxConn>>,
    recovery: Option<Recovery>,
    recovery_seconds: Option<RecoverySeconds>,
    recovery_replies: Option<RecoveryReplies>,
    #[serde(default, deserialize_with = "state_dir")]
    state_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "present")]
    state_owner: Option<Option<UserName>>,
    cpu_mode: Option<CpuMode>,
    since_last_max_seconds: Option<SinceLastMaxSeconds>,
    profiles: Option<ProfileMap>,
    allow: Option<Vec<Cidr>>,
    max_in_flight: Option<MaxInFlight>,
    max_in_flight_per_source: Option<MaxInFlight>,
    scope: Option<ScopeLayer>,
    log: Option<LogTo>,
    #[serde(default, deserialize_with = "present")]
    http: Option<Option<SocketAddr>>,
    hysteresis: Option<Hysteresis>,
    smoothing_seconds: Option<SmoothingSeconds>,
    min_percent: Option<MinPercent>,
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

/// What an `agent-send` profile may change over the base config: the monitors and maxconn.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<MonitorLayer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ram: Option<MonitorLayer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<Vec<TcpMonitor>>,
    /// Replaces the base's list, as `tcp` does.
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<CustomList>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    sessions: Option<Option<SessionsMonitor>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    maxconn: Option<Option<MaxConn>>,
}

/// A profile's name, as HAProxy's `agent-send` sends it (without the newline).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProfileName(String);

impl ProfileName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// 1 to 64 letters, digits, '-', '_' or '.': safe in file names and state records.
    pub fn valid(name: &str) -> bool {
        let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        (1..=64).contains(&name.len()) && name.chars().all(fine)
    }
}

impl TryFrom<String> for ProfileName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        if ProfileName::valid(&name) {
            Ok(ProfileName(name))
        } else {
            Err(format!(
                "profile name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
            ))
        }
    }
}

impl From<ProfileName> for String {
    fn from(name: ProfileName) -> String {
        name.0
    }
}

/// Lets the profiles be looked up by the `&str` that `agent-send` sent.
impl std::borrow::Borrow<str> for ProfileName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A user name on this system, as `state_owner` takes it; looked up only when it is needed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

impl UserName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        // The portable set (POSIX, useradd): what adduser accepts by default.
        let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if (1..=32).contains(&name.len()) && name.chars().all(fine) && !name.starts_with('-') {
            Ok(UserName(name))
        } else {
            Err(format!(
                "user name {name:?}: use 1 to 32 letters, digits, '-', '_' or '.', not starting with '-'"
            ))
        }
    }
}

impl From<UserName> for String {
    fn from(name: UserName) -> String {
        name.0
    }
}

/// The most profiles one config may hold. A profile is one backend that polls this host with
/// its own `agent-send`; even a host serving many backends needs tens, and the one-shot probe
/// parses every profile on every poll (1,000 cost about a millisecond), so a bound well above
/// real use keeps a runaway generated file from costing each poll its memory and time.
pub const MAX_PROFILES: usize = 1000;

/// The file's `profiles` object: each name once (a second one is an error, as a repeated key
/// is everywhere else, instead of silently replacing the first), at most [`MAX_PROFILES`].
/// Both are checked as the names are read, so the error has the name's line and column and a
/// huge file is refused before it is held in memory.
#[derive(Debug, Default)]
struct ProfileMap(BTreeMap<ProfileName, Profile>);

impl<'de> Deserialize<'de> for ProfileMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> serde::de::Visitor<'de> for Names {
            type Value = ProfileMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of profile names to partial configs")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ProfileMap, A::Error> {
                use serde::de::Error;
                let mut profiles = BTreeMap::new();
                while let Some(name) = map.next_key::<ProfileName>()? {
                    if profiles.contains_key(&name) {
                        let name = name.as_str();
                        return Err(A::Error::custom(format!("duplicate profile {name:?}")));
                    }
                    if profiles.len() == MAX_PROFILES {
                        return Err(A::Error::custom(format!(
                            "more than {MAX_PROFILES} profiles (the most one config may hold)"
                        )));
                    }
                    let profile = map.next_value()?;
                    profiles.insert(name, profile);
                }
                Ok(ProfileMap(profiles))
            }
        }
        deserializer.deserialize_map(Names)
    }
}

/// Whether a path can be the state directory; the JSON, environment and flag layers all ask.
fn check_state_dir(path: &Path) -> Result<(), String> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        Err("must not be empty".into())
    } else if bytes.contains(&0) {
        Err("must not contain a NUL byte (no file name can)".into())
    } else {
        Ok(())
    }
}

/// The file's `state_dir`, checked as it is read so the error has its line and column.
fn state_dir<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    let path = Option::<PathBuf>::deserialize(deserializer)?;
    if let Some(path) = &path {
        check_state_dir(path)
            .map_err(|message| serde::de::Error::custom(format!("state_dir {message}")))?;
    }
    Ok(path)
}

/// The monitors one config or profile answers with (see [`Config::monitors`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Monitors<'a> {
    pub cpu: Monitor,
    pub ram: Monitor,
    pub tcp: &'a [TcpMonitor],
    pub sessions: Option<SessionsMonitor>,
    pub custom: &'a [CustomMonitor],
}

/// Tells `"maxconn": null` (clear it) from a missing key (leave it).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

impl MonitorLayer {
    fn apply(&self, monitor: &mut Monitor) {
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

impl Config {
    fn apply_layer(&mut self, layer: Layer, origin: &Origin) -> Result<(), String> {
        if let Some(mode) = layer.mode {
            self.mode = mode;
            self.mode_origin = origin.clone();
        }
        if let Some(sample_ms) = layer.sample_ms {
            self.sample_ms = sample_ms;
        }
        if let Some(cpu) = layer.cpu {
            cpu.apply(&mut self.cpu);
        }
        if let Some(ram) = layer.ram {
            ram.apply(&mut self.ram);
        }
        if let Some(tcp) = layer.tcp {
            self.tcp = tcp;
        }
        if let Some(sessions) = layer.sessions {
            self.sessions = sessions;
        }
        if let Some(custom) = layer.custom {
            self.custom = custom.0;
        }
        if let Some(maxconn) = layer.maxconn {
            self.maxconn = maxconn;
        }
        if let Some(recovery) = layer.recovery {
            self.recovery = recovery;
        }
        if let Some(recovery_seconds) = layer.recovery_seconds {
            self.recovery_seconds = recovery_seconds;
        }
        if let Some(replies) = layer.recovery_replies {
            self.recovery_replies = replies;
        }
        if let Some(state_dir) = layer.state_dir {
            self.state_dir = state_dir;
        }
        if let Some(owner) = layer.state_owner {
            self.state_owner = owner;
        }
        if let Some(cpu_mode) = layer.cpu_mode {
            self.cpu_mode = cpu_mode;
        }
        if let Some(seconds) = layer.since_last_max_seconds {
            self.since_last_max_seconds = seconds;
        }
        if let Some(profiles) = layer.profiles {
            self.profiles = profiles.0;
        }
        if let Some(allow) = layer.allow {
            self.allow = allow;
        }
        if let Some(max_in_flight) = layer.max_in_flight {
            self.max_in_flight = max_in_flight;
        }
        if let Some(per_source) = layer.max_in_flight_per_source {
            self.max_in_flight_per_source = per_source;
        }
        if let Some(log) = layer.log {
            self.log = log;
        }
        match layer.scope {
            Some(ScopeLayer::Both(scope)) => {
                self.scope = Scopes {
                    cpu: scope,
                    ram: scope,
                }
            }
            Some(ScopeLayer::Each(each)) => {
                self.scope.cpu = each.cpu.unwrap_or(self.scope.cpu);
                self.scope.ram = each.ram.unwrap_or(self.scope.ram);
            }
            None => {}
        }
        if let Some(http) = layer.http {
            self.http = http;
        }
        if let Some(hysteresis) = layer.hysteresis {
            self.hysteresis = hysteresis;
        }
        if let Some(seconds) = layer.smoothing_seconds {
            self.smoothing_seconds = seconds;
        }
        if let Some(min_percent) = layer.min_percent {
            self.min_percent = min_percent;
        }
        Ok(())
    }

    /// This config with the named profile laid over it, or `None` for an unknown name.
    pub fn with_profile(&self, name: &str) -> Option<Config> {
        let profile = self.profiles.get(name)?;
        let mut config = self.clone();
        let monitors = self.monitors(Some(profile));
        (config.cpu, config.ram) = (monitors.cpu, monitors.ram);
        config.tcp = monitors.tcp.to_vec();
        config.sessions = monitors.sessions;
        config.custom = monitors.custom.to_vec();
        if let Some(maxconn) = profile.maxconn {
            config.maxconn = maxconn;
        }
        Some(config)
    }

    /// The monitors of the base config (`None`) or of one of its profiles, read in place:
    /// what a probe samples for it, without building (cloning) the profiled config.
    pub fn monitors<'a>(&'a self, profile: Option<&'a Profile>) -> Monitors<'a> {
        let mut monitors = Monitors {
            cpu: self.cpu,
            ram: self.ram,
            tcp: &self.tcp,
            sessions: self.sessions,
            custom: &self.custom,
        };
        if let Some(profile) = profile {
            if let Some(cpu) = &profile.cpu {
                cpu.apply(&mut monitors.cpu);
            }
            if let Some(ram) = &profile.ram {
                ram.apply(&mut monitors.ram);
            }
            if let Some(tcp) = &profile.tcp {
                monitors.tcp = tcp;
            }
            if let Some(sessions) = profile.sessions {
                monitors.sessions = sessions;
            }
            if let Some(custom) = &profile.custom {
                monitors.custom = &custom.0;
            }
        }
        monitors
    }

    /// Every monitor's own `release` is below its threshold, in the base and in each profile:
    /// they may come from different layers, so this is checked once all are laid.
    pub fn check_releases(&self) -> Result<(), String> {
        let profiles = self.profiles.iter().map(|(name, p)| (Some(name), Some(p)));
        for (name, profile) in std::iter::once((None, None)).chain(profiles) {
            let monitors = self.monitors(profile);
            let what = |monitor: &str| match name {
                Some(name) => format!("profile {:?}: {monitor}", name.as_str()),
                None => monitor.to_string(),
            };
            for (monitor, m) in [("cpu", monitors.cpu), ("ram", monitors.ram)] {
                check_release(&what(monitor), m.threshold.get(), m.release.map(Real::get))?;
            }
            for tcp in monitors.tcp {
                let monitor = what(&format!("tcp:{}", tcp.port.get()));
                check_release(&monitor, tcp.threshold.get(), tcp.release.map(Real::get))?;
            }
            if let Some(s) = monitors.sessions {
                check_release(
                    &what("sessions"),
                    s.threshold.get(),
                    s.release.map(Real::get),
                )?;
            }
            for c in monitors.custom {
                let monitor = what(&format!("custom {:?}", c.name));
                check_release(&monitor, c.threshold.get(), c.release.map(Real::get))?;
            }
        }
        Ok(())
    }

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

    /// Lays a JSON document over this config; errors carry the file's line and column.
    pub fn apply_json(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let at = |line, column, message| ConfigError {
            place: Place::FileAt(path.to_path_buf(), line, column),
            message,
        };
        // Windows Notepad starts a UTF-8 file with a byte order mark; it is no part of the
        // JSON, and positions after it count as an editor shows them.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let layer: Layer = serde_json::from_str(text).map_err(|err| {
            let full = err.to_string();
            let suffix = format!(" at line {} column {}", err.line(), err.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
            at(err.line().max(1), err.column().max(1), message)
        })?;
        self.apply_layer(layer, &Origin::File(path.to_path_buf()))
            .map_err(|message| ConfigError {
                place: Place::File(path.to_path_buf()),
                message,
            })
    }
}

/// Which file to read and whether its absence is an error.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// Named by `--config` or `LB_FEEDBACK_CONFIG`, so it must exist.
    pub explicit: bool,
}

impl ConfigFile {
    pub fn choose(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<OsString>) -> ConfigFile {
        match (flag, env("LB_FEEDBACK_CONFIG")) {
            (Some(path), _) => ConfigFile {
                path: path.to_path_buf(),
                explicit: true,
            },
            (None, Some(path)) if !path.is_empty() => ConfigFile {
                path: PathBuf::from(path),
                explicit: true,
            },
            _ => ConfigFile {
                path: default_config_path(),
                explicit: false,
            },
        }
    }
}

/// Builds the effective config: defaults < file < environment < flags.
///
/// `env` looks a variable up (the process environment in production, a map in tests);
/// `flags` are the settings given on the command line, in order.
pub fn load(
    file: &ConfigFile,
    env: &dyn Fn(&str) -> Option<OsString>,
    flags: &[(Key, String)],
) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    match std::fs::read_to_string(&file.path) {
        Ok(text) => config.apply_json(&text, &file.path)?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !file.explicit => {}
        Err(err) => {
            return Err(ConfigError {
                place: Place::File(file.path.clone()),
                message: format!("cannot read: {}", io_reason(&err)),
            });
        }
    }
    for key in Key::ALL {
        let var = key.env_var();
        if let Some(value) = env(var) {
            let text = value.into_string().map_err(|_| ConfigError {
                place: Place::Env(var),
                message: "not valid UTF-8".into(),
            })?;
            config
                .apply_text(key, &text, Origin::Env(var))
                .map_err(|message| ConfigError {
                    place: Place::Env(var),
                    message,
                })?;
        }
    }
    for (key, text) in flags {
        let flag = key.flag();
        config
            .apply_text(*key, text, Origin::Flag(flag))
            .map_err(|message| ConfigError {
                place: Place::Flag(flag),
                message,
            })?;
    }
    config.check_releases().map_err(|message| ConfigError {
        place: Place::Combined,
        message,
    })?;
    Ok(config)
}

/// [`load`] with this process's environment: the file `--config` names (`flag`), else
/// `LB_FEEDBACK_CONFIG`'s, else the default, and `flags` over both; the one way both
/// binaries read their settings.
pub fn load_from_environment(
    flag: Option<&Path>,
    flags: &[(Key, String)],
) -> Result<Config, ConfigError> {
    // A lookup per key: copying the whole environment once costs more in a large one, and
    // the environments inetd and systemd give are small either way (measured with callgrind).
    let env = |name: &str| std::env::var_os(name);
    let file = ConfigFile::choose(flag, &env);
    load(&file, &env, flags)
}

/// An I/O error's reason without Rust's "(os error N)" suffix.
pub fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn json(text: &str) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.apply_json(text, Path::new("c.json"))?;
        Ok(config)
    }

    fn json_err(text: &str) -> String {
        json(text).unwrap_err().to_string()
    }

    fn env_map(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).map(OsString::from)
    }

    fn missing_file() -> ConfigFile {
        ConfigFile {
            path: PathBuf::from("/nonexistent/lb-feedback/config.json"),
            explicit: false,
        }
    }

    #[test]
    fn defaults_are_cpu_and_ram_with_no_thresholds() {
        let config = Config::default();
        assert_eq!(config.cpu.importance.get(), 1.0);
        assert_eq!(config.ram.importance.get(), 1.0);
        assert_eq!(config.cpu.threshold.get(), 0.0);
        assert!(config.tcp.is_empty());
        assert_eq!(config.sample_ms.get(), 1000);
        assert_eq!(config.recovery, Recovery::Window);
        assert_eq!(config.recovery_seconds.get(), 10);
        assert_eq!(config.recovery_replies.get(), 3);
        assert_eq!(config.mode, Mode::Normal);
    }

    #[test]
    fn full_example_from_the_issue_parses() {
        let config = json(
            r#"{ "mode": "normal", "sample_ms": 1000,
  "cpu": {"importance": 1, "threshold": 0},
  "ram": {"importance": 1, "threshold": 0},
  "tcp": [{"port": 3389, "max_connections": 50, "importance": 1, "threshold": 0}],
  "maxconn": null, "recovery": "window", "recovery_seconds": 10,
  "state_dir": "/var/lib/lb-feedback" }"#,
        )
        .unwrap();
        assert_eq!(config.tcp.len(), 1);
        assert_eq!(config.tcp[0].port.get(), 3389);
        assert_eq!(config.tcp[0].max_connections.get(), 50);
        assert_eq!(config.mode_origin, Origin::File(PathBuf::from("c.json")));
    }

    #[test]
    fn partial_file_keeps_defaults_for_the_rest() {
        let config = json(r#"{"cpu": {"threshold": 90}}"#).unwrap();
        assert_eq!(config.cpu.threshold.get(), 90.0);
        assert_eq!(config.cpu.importance.get(), 1.0);
        assert_eq!(config.ram, Config::default().ram);
    }

    #[test]
    fn steady_steering_settings_from_every_layer() {
        let config = Config::default();
        assert_eq!(config.hysteresis.get(), 10.0);
        assert_eq!(config.smoothing_seconds.get(), 0);
        assert_eq!(config.min_percent.get(), 0);
        assert_eq!(config.cpu.release, None);
        let config = json(
            r#"{"hysteresis": 5, "smoothing_seconds": 10, "min_percent": 5,
                "cpu": {"threshold": 90, "release": 70},
                "tcp": [{"port": 80, "max_connections": 10, "threshold": 95, "release": 80}]}"#,
        )
        .unwrap();
        assert_eq!(config.hysteresis.get(), 5.0);
        assert_eq!(config.smoothing_seconds.get(), 10);
        assert_eq!(config.min_percent.get(), 5);
        assert_eq!(config.cpu.release.map(Real::get), Some(70.0));
        assert_eq!(config.tcp[0].release.map(Real::get), Some(80.0));
        let env = env_map(&[
            ("LB_FEEDBACK_HYSTERESIS", "0"),
            ("LB_FEEDBACK_MIN_PERCENT", "3"),
            ("LB_FEEDBACK_RAM_RELEASE", "50"),
            ("LB_FEEDBACK_RAM_THRESHOLD", "60"),
        ]);
        let flags = [
            (Key::SmoothingSeconds, "30".to_string()),
            (Key::Tcp, "3389:50:1:95:90".to_string()),
        ];
        let config = load(&missing_file(), &env, &flags).unwrap();
        assert_eq!(config.hysteresis.get(), 0.0);
        assert_eq!(config.min_percent.get(), 3);
        assert_eq!(config.smoothing_seconds.get(), 30);
        assert_eq!(config.ram.release.map(Real::get), Some(50.0));
        assert_eq!(config.tcp[0].release.map(Real::get), Some(90.0));
        // `auto` clears a release back to threshold − hysteresis.
        let flags = [(Key::CpuRelease, "auto".to_string())];
        let env = env_map(&[("LB_FEEDBACK_CPU_RELEASE", "20")]);
        assert_eq!(
            load(&missing_file(), &env, &flags).unwrap().cpu.release,
            None
        );
        assert_eq!(release_of(95.0, None, 10.0), 85.0);
        assert_eq!(release_of(5.0, None, 10.0), 0.0);
        assert_eq!(release_of(95.0, Some(50.0), 10.0), 50.0);
    }

    #[test]
    fn a_release_must_be_below_its_threshold_wherever_they_come_from() {
        let message = json_err(
            r#"{"tcp": [{"port": 80, "max_connections": 10, "threshold": 90, "release": 90}]}"#,
        );
        // A whole TCP entry is checked as it is read, so the error has its position.
        assert!(message.starts_with("c.json:1:"), "{message}");
        assert!(
            message.contains("tcp:80: release 90 must be below its threshold 90"),
            "{message}"
        );
        let file = ConfigFile {
            path: std::env::temp_dir().join(format!("lbf-release-{}.json", std::process::id())),
            explicit: true,
        };
        std::fs::write(
            &file.path,
            r#"{"profiles": {"web": {"cpu": {"threshold": 50}}}, "cpu": {"release": 60}}"#,
        )
        .unwrap();
        let err = load(&file, &env_map(&[]), &[]).unwrap_err();
        assert_eq!(err.place, Place::Combined);
        assert_eq!(
            err.to_string(),
            "the settings (file, environment and flags together): profile \"web\": cpu: \
             release 60 must be below its threshold 50 (a drain by the threshold lasts until \
             the load is at or below release)"
        );
        // A flag laid over the file puts it right.
        let flags = [(Key::CpuRelease, "40".to_string())];
        assert!(load(&file, &env_map(&[]), &flags).is_ok());
        let _ = std::fs::remove_file(&file.path);
        assert!(
            load(
                &missing_file(),
                &env_map(&[]),
                &[(Key::Tcp, "80:10:1:50:60".into())]
            )
            .unwrap_err()
            .to_string()
            .contains("release 60 must be below")
        );
    }

    #[test]
    fn tcp_entry_defaults_importance_one_threshold_off() {
        let config = json(r#"{"tcp": [{"port": 80, "max_connections": 10}]}"#).unwrap();
        assert_eq!(config.tcp[0].importance.get(), 1.0);
        assert_eq!(config.tcp[0].threshold.get(), 0.0);
    }

    #[test]
    fn syntax_error_names_file_line_and_column() {
        assert_eq!(
            json_err("{\n  \"mode\": \"drain\",\n}"),
            "c.json:3:1: trailing comma"
        );
    }

    #[test]
    fn unknown_key_is_rejected_with_position() {
        let message = json_err("{\"cpu\": {\"importanse\": 1}}");
        assert!(message.starts_with("c.json:1:"), "{message}");
        assert!(message.contains("unknown field `importanse`"), "{message}");
        assert!(json_err("{\"colour\": 1}").contains("unknown field `colour`"));
    }

    #[test]
    fn out_of_range_values_are_rejected_with_position() {
        let message = json_err("{\n\"sample_ms\": 50}");
        assert_eq!(
            message,
            "c.json:2:16: 50 is out of range; allowed: 100 to 10000"
        );
        assert!(json_err(r#"{"cpu": {"importance": -1}}"#).contains("-1 is out of range"));
        assert!(json_err(r#"{"cpu": {"threshold": 101}}"#).contains("allowed: 0 to 100"));
        assert!(
            json_err(r#"{"tcp": [{"port": 0, "max_connections": 1}]}"#)
                .contains("0 is out of range; allowed: 1 to 65535")
        );
        assert!(
            json_err(r#"{"tcp": [{"port": 80, "max_connections": 0}]}"#)
                .contains("allowed: 1 to 1000000")
        );
        assert!(json_err(r#"{"tcp": [{"port": 80}]}"#).contains("missing field `max_connections`"));
        assert!(json_err(r#"{"maxconn": 0}"#).contains("allowed: 1 to 1000000"));
        assert!(json_err(r#"{"recovery_seconds": 1.5}"#).contains("expected u64"));
        assert!(json_err(r#"{"mode": "sleep"}"#).contains("unknown variant `sleep`"));
        assert!(json_err(r#"{"recovery": "sometimes"}"#).contains("unknown variant"));
        assert!(json_err(r#"{"state_dir": ""}"#).contains("state_dir must not be empty"));
        assert!(json_err(r#"{"state_owner": "a b"}"#).contains("user name \"a b\""));
        assert!(json_err(r#"{"state_owner": "-x"}"#).contains("not starting with '-'"));
        assert_eq!(
            json(r#"{"state_owner": "lb-feedback"}"#)
                .unwrap()
                .state_owner
                .map(String::from),
            Some("lb-feedback".to_string())
        );
        assert_eq!(json(r#"{"state_owner": null}"#).unwrap().state_owner, None);
        assert!(
            json_err("[]").contains("expected struct Layer")
                || json_err("[]").contains("invalid type")
        );
        assert!(json_err("").contains("EOF"));
    }

    #[test]
    fn maintenance_is_an_alias_of_maint() {
        assert_eq!(
            json(r#"{"mode": "maintenance"}"#).unwrap().mode,
            Mode::Maint
        );
        assert_eq!(Mode::parse("MAINTENANCE"), Ok(Mode::Maint));
    }

    #[test]
    fn maxconn_null_clears_and_absent_keeps() {
        let mut config = Config::default();
        config
            .apply_json(r#"{"maxconn": 40}"#, Path::new("a"))
            .unwrap();
        assert_eq!(config.maxconn.map(Int::get), Some(40));
        config.apply_json("{}", Path::new("b")).unwrap();
        assert_eq!(config.maxconn.map(Int::get), Some(40));
        config
            .apply_json(r#"{"maxconn": null}"#, Path::new("c"))
            .unwrap();
        assert_eq!(config.maxconn, None);
    }

    #[test]
    fn tcp_list_text_form() {
        let list = TcpMonitor::parse_list("3389:50, 80:10:2:90").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].importance.get(), 1.0);
        assert_eq!(list[1].port.get(), 80);
        assert_eq!(list[1].importance.get(), 2.0);
        assert_eq!(list[1].threshold.get(), 90.0);
        assert!(TcpMonitor::parse_list("").unwrap().is_empty());
        assert!(
            TcpMonitor::parse_list("80")
                .unwrap_err()
                .contains("expected port:max")
        );
        assert!(TcpMonitor::parse_list("80:1:1:1:1").is_err());
        assert!(
            TcpMonitor::parse_list("x:1")
                .unwrap_err()
                .starts_with("port ")
        );
        assert!(
            TcpMonitor::parse_list("80:0")
                .unwrap_err()
                .starts_with("max_connections ")
        );
        assert!(TcpMonitor::parse_list("80:5:nan").is_err());
        assert!(TcpMonitor::parse_list("80:5:1:-3").is_err());
    }

    #[test]
    fn layering_order_is_defaults_file_env_flags() {
        let dir = std::env::temp_dir().join(format!("lbf-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            r#"{"sample_ms": 200, "mode": "drain", "maxconn": 9}"#,
        )
        .unwrap();
        let file = ConfigFile {
            path: path.clone(),
            explicit: true,
        };
        let env = env_map(&[
            ("LB_FEEDBACK_SAMPLE_MS", "300"),
            ("LB_FEEDBACK_MODE", "maint"),
        ]);
        let config = load(&file, &env, &[]).unwrap();
        assert_eq!(config.sample_ms.get(), 300);
        assert_eq!(config.mode, Mode::Maint);
        assert_eq!(config.mode_origin, Origin::Env("LB_FEEDBACK_MODE"));
        assert_eq!(config.maxconn.map(Int::get), Some(9));
        let flags = [
            (Key::SampleMs, "400".to_string()),
            (Key::Maxconn, "none".to_string()),
        ];
        let config = load(&file, &env, &flags).unwrap();
        assert_eq!(config.sample_ms.get(), 400);
        assert_eq!(config.maxconn, None);
        assert_eq!(config.mode_origin, Origin::Env("LB_FEEDBACK_MODE"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_default_file_means_defaults_but_named_file_must_exist() {
        let none = env_map(&[]);
        assert_eq!(
            load(&missing_file(), &none, &[]).unwrap(),
            Config::default()
        );
        let named = ConfigFile {
            explicit: true,
            ..missing_file()
        };
        let err = load(&named, &none, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/nonexistent/lb-feedback/config.json: cannot read: No such file or directory"
        );
    }

    #[test]
    fn env_errors_name_the_variable() {
        let env = env_map(&[("LB_FEEDBACK_CPU_IMPORTANCE", "lots")]);
        let err = load(&missing_file(), &env, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable LB_FEEDBACK_CPU_IMPORTANCE: \"lots\" is not a number; allowed: 0 to 100"
        );
        let env = env_map(&[("LB_FEEDBACK_TCP", "3389")]);
        assert!(
            load(&missing_file(), &env, &[])
                .unwrap_err()
                .to_string()
                .starts_with(
                    "environment variable LB_FEEDBACK_TCP: \"3389\": expected port:max_connections"
                )
        );
        let env = env_map(&[("LB_FEEDBACK_MODE", "off")]);
        assert!(
            load(&missing_file(), &env, &[])
                .unwrap_err()
                .to_string()
                .contains("allowed: normal, drain")
        );
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let flags = [(Key::RecoverySeconds, "-1".to_string())];
        let err = load(&missing_file(), &env_map(&[]), &flags).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--recovery-seconds: \"-1\" is not a whole number; allowed: 0 to 86400"
        );
    }

    #[test]
    fn env_tcp_replaces_the_file_list_and_empty_clears_it() {
        let mut config = json(r#"{"tcp": [{"port": 80, "max_connections": 10}]}"#).unwrap();
        config
            .apply_text(Key::Tcp, "443:5", Origin::Env("LB_FEEDBACK_TCP"))
            .unwrap();
        assert_eq!(config.tcp.len(), 1);
        assert_eq!(config.tcp[0].port.get(), 443);
        config
            .apply_text(Key::Tcp, "", Origin::Env("LB_FEEDBACK_TCP"))
            .unwrap();
        assert!(config.tcp.is_empty());
    }

    #[test]
    fn config_file_choice() {
        let none = env_map(&[]);
        assert!(!ConfigFile::choose(None, &none).explicit);
        let env = env_map(&[("LB_FEEDBACK_CONFIG", "/e.json")]);
        assert_eq!(
            ConfigFile::choose(None, &env).path,
            PathBuf::from("/e.json")
        );
        let chosen = ConfigFile::choose(Some(Path::new("/f.json")), &env);
        assert_eq!(chosen.path, PathBuf::from("/f.json"));
        assert!(chosen.explicit);
    }

    #[test]
    fn profiles_lay_over_the_base() {
        let config = json(
            r#"{"cpu": {"importance": 1}, "maxconn": 10,
                "tcp": [{"port": 80, "max_connections": 10}],
                "profiles": {
                  "rdp": {"cpu": {"importance": 0}, "tcp": [{"port": 3389, "max_connections": 50}]},
                  "web": {"ram": {"threshold": 90}, "maxconn": null}}}"#,
        )
        .unwrap();
        let rdp = config.with_profile("rdp").unwrap();
        assert_eq!(rdp.cpu.importance.get(), 0.0);
        assert_eq!(rdp.tcp[0].port.get(), 3389);
        assert_eq!(rdp.maxconn.map(Int::get), Some(10));
        let web = config.with_profile("web").unwrap();
        assert_eq!(web.ram.threshold.get(), 90.0);
        assert_eq!(web.tcp[0].port.get(), 80);
        assert_eq!(web.maxconn, None);
        assert!(config.with_profile("db").is_none());
        let base = config.monitors(None);
        assert_eq!((base.cpu, base.tcp), (config.cpu, &config.tcp[..]));
        let rdp_monitors = config.monitors(config.profiles.get("rdp"));
        assert_eq!(rdp_monitors.cpu, rdp.cpu);
        assert_eq!(rdp_monitors.tcp, &rdp.tcp[..]);
    }

    #[test]
    fn profile_errors() {
        assert!(
            json_err(r#"{"profiles": {"rdp": {"mode": "drain"}}}"#)
                .contains("unknown field `mode`")
        );
        assert!(json_err(r#"{"profiles": {"a b": {}}}"#).contains("profile name \"a b\""));
        assert!(
            json_err(r#"{"profiles": {"x": {"cpu": {"importance": 200}}}}"#)
                .contains("200 is out of range")
        );
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_positions_stay_right() {
        let config = json("\u{feff}{\"sample_ms\": 200}").unwrap();
        assert_eq!(config.sample_ms.get(), 200);
        // Line 1 columns count from after the mark, as an editor shows them; later lines too.
        assert_eq!(
            json_err("\u{feff}{\"sample_ms\": 50}"),
            json_err("{\"sample_ms\": 50}")
        );
        assert_eq!(
            json_err("\u{feff}{\n\"sample_ms\": 50}"),
            "c.json:2:16: 50 is out of range; allowed: 100 to 10000"
        );
        // Only at the start: anywhere else it is still an error.
        assert!(json("{\u{feff}}").is_err());
    }

    #[test]
    fn a_repeated_profile_name_is_an_error_at_its_place() {
        assert_eq!(
            json_err("{\"profiles\": {\n  \"web\": {},\n  \"web\": {\"maxconn\": 5}}}"),
            "c.json:3:7: duplicate profile \"web\""
        );
        // As a repeated top-level key is.
        assert!(json_err("{\"mode\": \"drain\",\n \"mode\": \"stop\"}").starts_with("c.json:2:"));
        // `null` still leaves the profiles as they were.
        assert!(json(r#"{"profiles": null}"#).unwrap().profiles.is_empty());
    }

    #[test]
    fn profiles_are_capped_with_the_place_of_the_first_one_too_many() {
        let many = |n: usize| {
            let entries: Vec<String> = (0..n).map(|i| format!("\"p{i}\": {{}}")).collect();
            format!("{{\"profiles\": {{\n{}}}}}", entries.join(",\n"))
        };
        assert_eq!(
            json(&many(MAX_PROFILES)).unwrap().profiles.len(),
            MAX_PROFILES
        );
        let message = json_err(&many(MAX_PROFILES + 1));
        assert_eq!(
            message,
            format!(
                "c.json:{}:7: more than {MAX_PROFILES} profiles (the most one config may hold)",
                MAX_PROFILES + 2
            )
        );
    }

    #[test]
    fn a_state_dir_with_a_nul_byte_is_rejected_everywhere() {
        assert_eq!(
            json_err("{\n\"state_dir\": \"/var/lib/x\\u0000y\"}"),
            "c.json:2:33: state_dir must not contain a NUL byte (no file name can)"
        );
        assert!(json(r#"{"state_dir": null}"#).is_ok());
        let env = env_map(&[("LB_FEEDBACK_STATE_DIR", "/tmp/a\0b")]);
        assert_eq!(
            load(&missing_file(), &env, &[]).unwrap_err().to_string(),
            "environment variable LB_FEEDBACK_STATE_DIR: must not contain a NUL byte (no file name can)"
        );
        let flags = [(Key::StateDir, "/tmp/a\0b".to_string())];
        let err = load(&missing_file(), &env_map(&[]), &flags).unwrap_err();
        assert_eq!(err.place, Place::Flag("state-dir"));
        let flags = [(Key::StateDir, String::new())];
        let err = load(&missing_file(), &env_map(&[]), &flags).unwrap_err();
        assert_eq!(err.message, "must not be empty");
    }

    #[test]
    fn cpu_mode_allow_and_in_flight() {
        let config = json(
            r#"{"cpu_mode": "since-last", "since_last_max_seconds": 60,
                "allow": ["10.0.0.0/8", "::1"], "max_in_flight": 8,
                "max_in_flight_per_source": 3}"#,
        )
        .unwrap();
        assert_eq!(config.cpu_mode, CpuMode::SinceLast);
        assert_eq!(config.since_last_max_seconds.get(), 60);
        assert_eq!(config.allow.len(), 2);
        assert_eq!(config.max_in_flight.get(), 8);
        assert_eq!(config.max_in_flight_per_source.get(), 3);
        assert!(json_err(r#"{"max_in_flight_per_source": 0}"#).contains("out of range"));
        assert!(json_err(r#"{"allow": ["10.0.0.0/40"]}"#).contains("prefix length"));
        assert!(json_err(r#"{"cpu_mode": "guess"}"#).contains("unknown variant `guess`"));
        let mut config = Config::default();
        config
            .apply_text(
                Key::Allow,
                "127.0.0.1, ::1",
                Origin::Env("LB_FEEDBACK_ALLOW"),
            )
            .unwrap();
        assert_eq!(config.allow.len(), 2);
        config
            .apply_text(Key::CpuMode, "since-last", Origin::Flag("cpu-mode"))
            .unwrap();
        assert_eq!(config.cpu_mode, CpuMode::SinceLast);
        config
            .apply_text(
                Key::MaxInFlightPerSource,
                "20",
                Origin::Env("LB_FEEDBACK_MAX_IN_FLIGHT_PER_SOURCE"),
            )
            .unwrap();
        assert_eq!(config.max_in_flight_per_source.get(), 20);
        assert!(
            config
                .apply_text(Key::MaxInFlightPerSource, "10001", Origin::Default)
                .is_err()
        );
    }

    #[test]
    fn scope_for_both_monitors_or_each() {
        let mut config = Config::default();
        assert_eq!(config.scope.cpu, Scope::Auto);
        config
            .apply_json(r#"{"scope": {"cpu": "cgroup"}}"#, Path::new("t.json"))
            .unwrap();
        assert_eq!(
            (config.scope.cpu, config.scope.ram),
            (Scope::Cgroup, Scope::Auto)
        );
        config
            .apply_json(r#"{"scope": "host"}"#, Path::new("t.json"))
            .unwrap();
        assert_eq!(
            (config.scope.cpu, config.scope.ram),
            (Scope::Host, Scope::Host)
        );
        config
            .apply_text(Key::Scope, "ram=cgroup", Origin::Flag("scope"))
            .unwrap();
        assert_eq!(
            (config.scope.cpu, config.scope.ram),
            (Scope::Host, Scope::Cgroup)
        );
        config
            .apply_text(Key::Scope, " Auto ", Origin::Flag("scope"))
            .unwrap();
        assert_eq!(
            (config.scope.cpu, config.scope.ram),
            (Scope::Auto, Scope::Auto)
        );
        let bad = |text| config.clone().apply_text(Key::Scope, text, Origin::Default);
        assert!(
            bad("box")
                .unwrap_err()
                .contains("allowed: auto, host, cgroup")
        );
        assert!(bad("tcp=host").unwrap_err().contains("has no scope"));
        assert!(bad("cpu=").is_err());
        assert!(json_err(r#"{"scope": "box"}"#).contains("\"auto\", \"host\""));
        assert!(json_err(r#"{"scope": {"tcp": "host"}}"#).contains("\"auto\""));
    }

    #[test]
    fn every_key_has_a_flag_and_a_variable() {
        for key in Key::ALL {
            assert_eq!(Key::from_flag(key.flag()), Some(key));
            assert!(key.env_var().starts_with("LB_FEEDBACK_"));
        }
    }

    #[test]
    fn effective_config_serializes_as_plain_json() {
        let text = serde_json::to_string(&Config::default()).unwrap();
        assert!(text.contains("\"sample_ms\":1000"), "{text}");
        assert!(
            text.contains("\"cpu\":{\"importance\":1.0,\"threshold\":0.0}"),
            "{text}"
        );
        let mut again = Config::default();
        again.apply_json(&text, Path::new("x")).unwrap();
        assert_eq!(again.sample_ms, Config::default().sample_ms);
    }

    #[test]
    fn custom_monitors_come_from_the_file_and_profiles_replace_them() {
        let config = json(
            r#"{"custom": [{"name": "q", "file": "/run/q", "max": 200}],
                "profiles": {"app": {"custom": [{"name": "app", "http": "http://127.0.0.1:8080/"}]},
                             "none": {"custom": []}, "same": {}}}"#,
        )
        .unwrap();
        assert_eq!(config.custom[0].name, "q");
        assert_eq!(config.with_profile("app").unwrap().custom[0].name, "app");
        assert!(config.with_profile("none").unwrap().custom.is_empty());
        assert_eq!(config.with_profile("same").unwrap().custom, config.custom);
        // Errors carry the entry's place in the file.
        assert_eq!(
            json_err(
                "{\"custom\": [\n  {\"name\": \"q\", \"file\": \"/q\", \"http\": \"http://h/\"}]}"
            ),
            "c.json:2:51: custom \"q\": give exactly one of command, file, http"
        );
        assert!(
            json_err(r#"{"profiles": {"p": {"custom": [{"name": "ram", "file": "/q"}]}}}"#)
                .contains("taken by a built-in")
        );
    }

    #[test]
    fn http_is_off_by_default_and_takes_an_address() {
        assert_eq!(Config::default().http, None);
        let config = json(r#"{"http": "127.0.0.1:3334"}"#).unwrap();
        assert_eq!(config.http, Some("127.0.0.1:3334".parse().unwrap()));
        assert_eq!(json(r#"{"http": null}"#).unwrap().http, None);
        assert!(json_err(r#"{"http": "3334"}"#).contains("invalid socket address"));
        let mut config = Config::default();
        config
            .apply_text(Key::Http, "[::1]:3334", Origin::Flag("http"))
            .unwrap();
        assert_eq!(config.http, Some("[::1]:3334".parse().unwrap()));
        config
            .apply_text(Key::Http, "off", Origin::Env("LB_FEEDBACK_HTTP"))
            .unwrap();
        assert_eq!(config.http, None);
        let err = config
            .apply_text(Key::Http, "localhost:80", Origin::Default)
            .unwrap_err();
        assert!(err.contains("expected ADDR:PORT"), "{err}");
    }

    #[test]
    fn sessions_is_off_by_default_and_set_in_every_layer() {
        assert_eq!(Config::default().sessions, None);
        let config = json(r#"{"sessions": {"max_sessions": 50}}"#).unwrap();
        let sessions = config.sessions.unwrap();
        assert_eq!(sessions.max_sessions.get(), 50);
        assert_eq!(sessions.importance.get(), 1.0);
        assert_eq!(sessions.threshold.get(), 0.0);
        assert!(sessions.disconnected);
        let config = json(
            r#"{"sessions": {"max_sessions": 40, "importance": 2, "threshold": 120,
                "disconnected": false}}"#,
        )
        .unwrap();
        let sessions = config.sessions.unwrap();
        assert_eq!(sessions.threshold.get(), 120.0);
        assert!(!sessions.disconnected);
        assert_eq!(json(r#"{"sessions": null}"#).unwrap().sessions, None);
        assert!(json_err(r#"{"sessions": {}}"#).contains("missing field `max_sessions`"));
        assert!(json_err(r#"{"sessions": {"max_sessions": 0}}"#).contains("allowed: 1 to 1000000"));
        assert!(
            json_err(r#"{"sessions": {"max_sessions": 5, "active": true}}"#)
                .contains("unknown field `active`")
        );
        let env = env_map(&[("LB_FEEDBACK_SESSIONS", "50:2:90")]);
        let config = load(&missing_file(), &env, &[]).unwrap();
        let sessions = config.sessions.unwrap();
        assert_eq!(
            (sessions.max_sessions.get(), sessions.importance.get()),
            (50, 2.0)
        );
        assert_eq!(sessions.threshold.get(), 90.0);
        assert!(sessions.disconnected);
        let flags = [(Key::Sessions, "off".to_string())];
        assert_eq!(load(&missing_file(), &env, &flags).unwrap().sessions, None);
        let flags = [(Key::Sessions, String::new())];
        assert_eq!(load(&missing_file(), &env, &flags).unwrap().sessions, None);
        let flags = [(Key::Sessions, "30:1:0:no".to_string())];
        let sessions = load(&missing_file(), &env, &flags)
            .unwrap()
            .sessions
            .unwrap();
        assert!(!sessions.disconnected);
        let bad = |text: &str| {
            let flags = [(Key::Sessions, text.to_string())];
            load(&missing_file(), &env_map(&[]), &flags)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad("0"),
            "--sessions: max_sessions 0 is out of range; allowed: 1 to 1000000"
        );
        assert!(bad("50:1:0:maybe").contains("disconnected \"maybe\": expected yes or no"));
        assert!(bad("50:1:0:no:x").contains("expected max_sessions[:importance"));
        assert!(bad("50:x").starts_with("--sessions: importance "));
        let env = env_map(&[("LB_FEEDBACK_SESSIONS", "many")]);
        assert!(
            load(&missing_file(), &env, &[])
                .unwrap_err()
                .to_string()
                .starts_with("environment variable LB_FEEDBACK_SESSIONS: max_sessions")
        );
    }

    #[test]
    fn profiles_set_or_clear_the_sessions_monitor() {
        let config = json(
            r#"{"sessions": {"max_sessions": 50},
                "profiles": {"rds": {"sessions": {"max_sessions": 20, "disconnected": false}},
                             "web": {"sessions": null}, "same": {}}}"#,
        )
        .unwrap();
        let rds = config.with_profile("rds").unwrap().sessions.unwrap();
        assert_eq!(rds.max_sessions.get(), 20);
        assert!(!rds.disconnected);
        assert_eq!(config.with_profile("web").unwrap().sessions, None);
        assert_eq!(
            config.with_profile("same").unwrap().sessions,
            config.sessions
        );
        assert_eq!(config.monitors(config.profiles.get("web")).sessions, None);
        // The effective config's JSON reads back the same.
        let text = serde_json::to_string(&config).unwrap();
        assert!(text.contains(r#""sessions":{"max_sessions":50,"importance":1.0,"threshold":0.0,"disconnected":true}"#), "{text}");
        let again = json(&text).unwrap();
        assert_eq!(again.sessions, config.sessions);
        assert_eq!(again.profiles, config.profiles);
    }
}
