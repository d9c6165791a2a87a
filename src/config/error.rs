//! Where a setting came from, and a bad setting's error: what is wrong with it ([`Problem`])
//! and the place it was found ([`Place`]). The text people read is their `Display`, rendered
//! once where the error is reported.

use std::fmt;
use std::path::PathBuf;

use super::read::Unread;
use crate::cidr::CidrError;

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
#[derive(Debug, PartialEq)]
pub struct ConfigError {
    pub place: Place,
    pub problem: Problem,
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
        let problem = &self.problem;
        match &self.place {
            Place::File(path) => write!(f, "{}: {problem}", path.display()),
            Place::FileAt(path, line, column) => {
                write!(f, "{}:{line}:{column}: {problem}", path.display())
            }
            Place::Env(var) => write!(f, "environment variable {var}: {problem}"),
            Place::Flag(flag) => write!(f, "--{flag}: {problem}"),
            Place::Combined => write!(
                f,
                "the settings (file, environment and flags together): {problem}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A number as it was read, for "N is out of range".
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Figure {
    Whole(u64),
    Real(f64),
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Figure::Whole(value) => write!(f, "{value}"),
            Figure::Real(value) => write!(f, "{value}"),
        }
    }
}

/// What is wrong with a setting.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// A whole number was asked for.
    NotWhole {
        got: String,
        min: u64,
        max: u64,
    },
    /// A number from 0 to `max` was asked for.
    NotANumber {
        got: String,
        max: u32,
    },
    OutOfRange {
        got: Figure,
        min: u64,
        max: u64,
    },
    /// Not one of an enum's words (`what`: mode, scope, ...).
    UnknownWord {
        what: &'static str,
        got: String,
        allowed: &'static str,
    },
    /// `scope`'s `MONITOR=SCOPE` names a monitor that has none.
    NoScope {
        monitor: String,
    },
    /// `http` is not `ADDR:PORT` (nor off).
    NotASocketAddress {
        got: String,
    },
    NotYesOrNo {
        got: String,
    },
    /// An `allow` entry.
    Range(CidrError),
    BadProfileName {
        name: String,
    },
    BadUserName {
        name: String,
    },
    StateDirEmpty,
    StateDirNul,
    /// One field of an entry or of the file: `port 0 is out of range; ...`.
    Field {
        field: &'static str,
        cause: Box<Problem>,
    },
    /// An entry of a list in text form that is not of its shape.
    Shape {
        got: String,
        expected: &'static str,
    },
    /// A monitor's `release` is not below its threshold (`monitor`: `tcp:3389`,
    /// `profile "web": cpu`, ...).
    ReleaseNotBelow {
        monitor: String,
        release: f64,
        threshold: f64,
    },
    BadCustomName {
        name: String,
    },
    ReservedCustomName {
        name: String,
    },
    /// A custom monitor's entry.
    Custom {
        name: String,
        problem: CustomProblem,
    },
    TooManyCustom {
        max: usize,
    },
    DuplicateCustom {
        name: String,
    },
    TooManyProfiles {
        max: usize,
    },
    DuplicateProfile {
        name: String,
    },
    /// A key the file does not have, with the nearest one when it looks like a slip.
    UnknownKey {
        key: String,
        within: Option<String>,
        nearest: Option<String>,
    },
    /// What the JSON parser said, with the key it was at when its own wording lacks it. The
    /// checks above, run as the file is read, reach here as text: serde carries a custom
    /// error as its message only.
    Json {
        key: Option<String>,
        message: String,
    },
    /// The file could not be read.
    Unread(Unread),
    /// An environment variable that is not UTF-8.
    NotUtf8,
    /// A key the environment and flags do not carry.
    FileOnly {
        key: &'static str,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotWhole { got, min, max } => {
                write!(f, "{got:?} is not a whole number; allowed: {min} to {max}")
            }
            Problem::NotANumber { got, max } => {
                write!(f, "{got:?} is not a number; allowed: 0 to {max}")
            }
            Problem::OutOfRange { got, min, max } => {
                write!(f, "{got} is out of range; allowed: {min} to {max}")
            }
            Problem::UnknownWord { what, got, allowed } => {
                write!(f, "unknown {what} {got:?}; allowed: {allowed}")
            }
            Problem::NoScope { monitor } => write!(
                f,
                "{monitor:?} has no scope; expected auto|host|cgroup or cpu=SCOPE,ram=SCOPE"
            ),
            Problem::NotASocketAddress { got } => write!(
                f,
                "{got:?}: expected ADDR:PORT, e.g. 127.0.0.1:3334 or [::1]:3334, or off"
            ),
            Problem::NotYesOrNo { got } => write!(f, "{got:?}: expected yes or no"),
            Problem::Range(err) => err.fmt(f),
            Problem::BadProfileName { name } => write!(
                f,
                "profile name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
            ),
            Problem::BadUserName { name } => write!(
                f,
                "user name {name:?}: use 1 to 32 letters, digits, '-', '_' or '.', not starting with '-'"
            ),
            Problem::StateDirEmpty => f.write_str("must not be empty"),
            Problem::StateDirNul => f.write_str("must not contain a NUL byte (no file name can)"),
            Problem::Field { field, cause } => write!(f, "{field} {cause}"),
            Problem::Shape { got, expected } => write!(f, "{got:?}: expected {expected}"),
            Problem::ReleaseNotBelow {
                monitor,
                release,
                threshold,
            } => write!(
                f,
                "{monitor}: release {release} must be below its threshold {threshold} (a drain by \
                 the threshold lasts until the load is at or below release)"
            ),
            Problem::BadCustomName { name } => write!(
                f,
                "custom monitor name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
            ),
            Problem::ReservedCustomName { name } => write!(
                f,
                "custom monitor name {name:?} is taken by a built-in monitor or error word ({})",
                crate::words::ALL.join(", ")
            ),
            Problem::Custom { name, problem } => write!(f, "custom {name:?}: {problem}"),
            Problem::TooManyCustom { max } => {
                write!(f, "more than {max} custom monitors in one list")
            }
            Problem::DuplicateCustom { name } => write!(f, "duplicate custom monitor {name:?}"),
            Problem::TooManyProfiles { max } => {
                write!(f, "more than {max} profiles (the most one config may hold)")
            }
            Problem::DuplicateProfile { name } => write!(f, "duplicate profile {name:?}"),
            Problem::UnknownKey {
                key,
                within,
                nearest,
            } => {
                write!(f, "unknown key \"{key}\"")?;
                if let Some(parent) = within {
                    write!(f, " in {parent}")?;
                }
                match nearest {
                    Some(near) => write!(f, ": did you mean \"{near}\"?"),
                    None => f.write_str(
                        "; the keys allowed here are listed in lb-feedback.json(5) and \
                         docs/configuration.md",
                    ),
                }
            }
            Problem::Json {
                key: Some(key),
                message,
            } => write!(f, "{key}: {message}"),
            Problem::Json { key: None, message } => f.write_str(message),
            Problem::Unread(unread) => unread.fmt(f),
            Problem::NotUtf8 => f.write_str("not valid UTF-8"),
            Problem::FileOnly { key } => write!(f, "{key} is set in the config file only"),
        }
    }
}

impl std::error::Error for Problem {}

/// What is wrong with one custom monitor's entry.
#[derive(Clone, Debug, PartialEq)]
pub enum CustomProblem {
    NoProgram,
    NulInCommand,
    BadFilePath,
    Url { url: String, why: UrlProblem },
    NotOneSource,
    MaxAgeNotForFile,
    BadJsonPointer { pointer: String },
    MaxNotAboveZero { max: f64 },
}

impl std::fmt::Display for CustomProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CustomProblem::NoProgram => f.write_str("command needs a program to run"),
            CustomProblem::NulInCommand => f.write_str("command must not hold a NUL byte"),
            CustomProblem::BadFilePath => f.write_str("file must be a path without NUL bytes"),
            CustomProblem::Url { url, why } => write!(f, "http {url:?}: {why}"),
            CustomProblem::NotOneSource => f.write_str("give exactly one of command, file, http"),
            CustomProblem::MaxAgeNotForFile => {
                f.write_str("max_age_seconds is for a file source only")
            }
            CustomProblem::BadJsonPointer { pointer } => write!(
                f,
                "json_pointer {pointer:?} must be empty or start with '/' (RFC 6901)"
            ),
            CustomProblem::MaxNotAboveZero { max } => {
                write!(f, "max {max} must be a number above 0")
            }
        }
    }
}

/// Why an `http` source's URL is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlProblem {
    NotPlainHttp,
    NoHost,
    UserInfo,
    SpaceOrControl,
}

impl std::fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlProblem::NotPlainHttp => "only plain http:// URLs (a local service; no TLS)",
            UrlProblem::NoHost => "no host",
            UrlProblem::UserInfo => "user info (user:password@) is not allowed",
            UrlProblem::SpaceOrControl => "spaces and control characters are not allowed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CustomProblem, UrlProblem};

    /// Each problem's text, as the messages read before they were types.
    #[test]
    fn each_problem_reads_as_before() {
        let field = |field, cause| Problem::Field {
            field,
            cause: Box::new(cause),
        };
        let custom = |problem| Problem::Custom {
            name: "q".into(),
            problem,
        };
        let cases = [
            (
                Problem::NotWhole {
                    got: "x".into(),
                    min: 1,
                    max: 9,
                },
                r#""x" is not a whole number; allowed: 1 to 9"#,
            ),
            (
                field(
                    "release",
                    Problem::OutOfRange {
                        got: Figure::Real(120.5),
                        min: 0,
                        max: 100,
                    },
                ),
                "release 120.5 is out of range; allowed: 0 to 100",
            ),
            (
                field(
                    "disconnected",
                    Problem::NotYesOrNo {
                        got: "maybe".into(),
                    },
                ),
                r#"disconnected "maybe": expected yes or no"#,
            ),
            (
                Problem::Shape {
                    got: "1:2:3:4:5".into(),
                    expected: "max_sessions[:importance[:threshold[:disconnected]]], or off",
                },
                r#""1:2:3:4:5": expected max_sessions[:importance[:threshold[:disconnected]]], or off"#,
            ),
            (
                Problem::ReleaseNotBelow {
                    monitor: r#"profile "web": tcp:80"#.into(),
                    release: 90.0,
                    threshold: 80.0,
                },
                r#"profile "web": tcp:80: release 90 must be below its threshold 80 (a drain by the threshold lasts until the load is at or below release)"#,
            ),
            (
                Problem::ReservedCustomName { name: "cpu".into() },
                r#"custom monitor name "cpu" is taken by a built-in monitor or error word (config, state, profile, timeout, mode, cpu, ram, tcp, sessions, pressure)"#,
            ),
            (
                custom(CustomProblem::Url {
                    url: "https://h/".into(),
                    why: UrlProblem::NotPlainHttp,
                }),
                r#"custom "q": http "https://h/": only plain http:// URLs (a local service; no TLS)"#,
            ),
            (
                custom(CustomProblem::MaxNotAboveZero { max: -5.0 }),
                r#"custom "q": max -5 must be a number above 0"#,
            ),
            (
                Problem::TooManyProfiles { max: 1000 },
                "more than 1000 profiles (the most one config may hold)",
            ),
            (
                Problem::UnknownKey {
                    key: "treshold".into(),
                    within: Some("cpu".into()),
                    nearest: Some("threshold".into()),
                },
                r#"unknown key "treshold" in cpu: did you mean "threshold"?"#,
            ),
            (
                Problem::FileOnly { key: "custom" },
                "custom is set in the config file only",
            ),
        ];
        for (problem, text) in cases {
            assert_eq!(problem.to_string(), text);
        }
    }

    #[test]
    fn the_place_comes_first() {
        let at = |place| {
            ConfigError {
                place,
                problem: Problem::NotUtf8,
            }
            .to_string()
        };
        assert_eq!(
            at(Place::FileAt("/etc/c.json".into(), 3, 7)),
            "/etc/c.json:3:7: not valid UTF-8"
        );
        assert_eq!(
            at(Place::Env("LB_FEEDBACK_TCP")),
            "environment variable LB_FEEDBACK_TCP: not valid UTF-8"
        );
        assert_eq!(at(Place::Flag("tcp")), "--tcp: not valid UTF-8");
        assert_eq!(
            at(Place::Combined),
            "the settings (file, environment and flags together): not valid UTF-8"
        );
    }
}
