//! The words and bounded numbers settings are made of: modes, policies, scopes, ranges checked
//! as they are read (so a JSON error carries its position), and the names of profiles and
//! users.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserializer;

use serde::{Deserialize, Serialize};

use super::error::{Figure, Problem};

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

    pub fn parse(text: &str) -> Result<Mode, Problem> {
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
pub(super) fn parse_http(text: &str) -> Result<Option<SocketAddr>, Problem> {
    match text.trim() {
        "" | "off" => Ok(None),
        addr => addr
            .parse()
            .map(Some)
            .map_err(|_| Problem::NotASocketAddress { got: addr.into() }),
    }
}

/// A CPU or RAM `release` in text: a percent, or empty or `auto` for threshold − hysteresis.
pub(super) fn parse_release(text: &str) -> Result<Option<Threshold>, Problem> {
    match text.trim() {
        "" | "auto" => Ok(None),
        text => Threshold::parse(text).map(Some),
    }
}

pub(super) fn word<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
    allowed: &'static str,
) -> Result<T, Problem> {
    let value = serde_json::Value::String(text.trim().to_ascii_lowercase());
    serde_json::from_value(value).map_err(|_| Problem::UnknownWord {
        what,
        got: text.into(),
        allowed,
    })
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
    pub(super) fn parse(&self, text: &str) -> Result<Scopes, Problem> {
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
                    return Err(Problem::NoScope {
                        monitor: other.into(),
                    });
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
pub(super) enum ScopeLayer {
    Both(Scope),
    Each(ScopeEach),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScopeEach {
    pub(super) cpu: Option<Scope>,
    pub(super) ram: Option<Scope>,
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

    pub(super) fn parse(text: &str) -> Result<Self, Problem> {
        let value: u64 = text.trim().parse().map_err(|_| Problem::NotWhole {
            got: text.into(),
            min: MIN,
            max: MAX,
        })?;
        Self::try_from(value)
    }
}

impl<const MIN: u64, const MAX: u64> TryFrom<u64> for Int<MIN, MAX> {
    type Error = Problem;
    fn try_from(value: u64) -> Result<Self, Problem> {
        if (MIN..=MAX).contains(&value) {
            Ok(Int(value))
        } else {
            Err(Problem::OutOfRange {
                got: Figure::Whole(value),
                min: MIN,
                max: MAX,
            })
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
pub struct Real<const MAX: u32>(pub(super) f64);

impl<const MAX: u32> Real<MAX> {
    pub const ZERO: Self = Real(0.0);
    pub const ONE: Self = Real(1.0);

    pub fn get(self) -> f64 {
        self.0
    }

    pub(super) fn parse(text: &str) -> Result<Self, Problem> {
        let value: f64 = text.trim().parse().map_err(|_| Problem::NotANumber {
            got: text.into(),
            max: MAX,
        })?;
        Self::try_from(value)
    }
}

impl<const MAX: u32> TryFrom<f64> for Real<MAX> {
    type Error = Problem;
    fn try_from(value: f64) -> Result<Self, Problem> {
        if value.is_finite() && (0.0..=f64::from(MAX)).contains(&value) {
            Ok(Real(value))
        } else {
            Err(Problem::OutOfRange {
                got: Figure::Real(value),
                min: 0,
                max: u64::from(MAX),
            })
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

impl Default for Real<100_000> {
    fn default() -> Self {
        Real(0.0)
    }
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
    type Error = Problem;
    fn try_from(name: String) -> Result<Self, Problem> {
        if ProfileName::valid(&name) {
            Ok(ProfileName(name))
        } else {
            Err(Problem::BadProfileName { name })
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
    type Error = Problem;
    fn try_from(name: String) -> Result<Self, Problem> {
        // The portable set (POSIX, useradd): what adduser accepts by default.
        let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if (1..=32).contains(&name.len()) && name.chars().all(fine) && !name.starts_with('-') {
            Ok(UserName(name))
        } else {
            Err(Problem::BadUserName { name })
        }
    }
}

impl From<UserName> for String {
    fn from(name: UserName) -> String {
        name.0
    }
}

/// Whether a path can be the state directory; the JSON, environment and flag layers all ask.
pub(super) fn check_state_dir(path: &Path) -> Result<(), Problem> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        Err(Problem::StateDirEmpty)
    } else if bytes.contains(&0) {
        Err(Problem::StateDirNul)
    } else {
        Ok(())
    }
}

/// Tells `"maxconn": null` (clear it) from a missing key (leave it).
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A monitor's own `release` must be below its threshold, or no drain would ever hold.
pub(super) fn check_release(
    monitor: impl FnOnce() -> String,
    threshold: f64,
    release: Option<f64>,
) -> Result<(), Problem> {
    match release {
        Some(release) if threshold > 0.0 && release >= threshold => Err(Problem::ReleaseNotBelow {
            monitor: monitor(),
            release,
            threshold,
        }),
        _ => Ok(()),
    }
}

/// The importance a monitor has when its entry names none (serde's `default`).
pub(super) fn one() -> Importance {
    Importance::ONE
}

/// The error of one field of a text form's entry.
pub(super) fn in_field(field: &'static str) -> impl Fn(Problem) -> Problem {
    move |cause| Problem::Field {
        field,
        cause: Box::new(cause),
    }
}

/// A list monitor's text form, as the environment and flags carry it: entries separated by
/// commas, each parsed by `parse`; empty means none.
pub(super) fn parse_list<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, Problem>,
) -> Result<Vec<T>, Problem> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(parse)
        .collect()
}

/// The `:`-separated fields of one text-form entry: 2 to 5 of them, as `expected` says.
pub(super) fn entry_fields<'a>(
    text: &'a str,
    expected: &'static str,
) -> Result<Vec<&'a str>, Problem> {
    let fields: Vec<&str> = text.split(':').collect();
    match (2..=5).contains(&fields.len()) {
        true => Ok(fields),
        false => Err(Problem::Shape {
            got: text.into(),
            expected,
        }),
    }
}

/// An entry's `[:importance[:threshold[:release]]]`, the text form's fields 2, 3 and 4:
/// importance 1, threshold 0 (off) and the release unset when they are not given.
pub(super) fn weighing<const MAX: u32>(
    fields: &[&str],
) -> Result<(Importance, Real<MAX>, Option<Real<MAX>>), Problem> {
    let field = |i: usize| fields.get(i).copied();
    let importance = match field(2) {
        Some(text) => Importance::parse(text).map_err(in_field("importance"))?,
        None => Importance::ONE,
    };
    let threshold = match field(3) {
        Some(text) => Real::parse(text).map_err(in_field("threshold"))?,
        None => Real::ZERO,
    };
    let release = field(4)
        .map(|text| Real::parse(text).map_err(in_field("release")))
        .transpose()?;
    Ok((importance, threshold, release))
}
