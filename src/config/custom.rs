//! The config file's `custom` monitors: their JSON shape, checked as it is read (exactly one
//! source, `http://` only, `max` above 0, bounded timeouts, safe unique names), so every error
//! carries the file's line and column. Only the JSON file holds them: a command never comes
//! from the environment, a flag or `agent-send`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::{CustomProblem, Problem, UrlProblem};
use super::values::{Importance, Int, Real, TcpThreshold};
use super::values::{check_release, one};

/// How long one source may take, in ms; unset: the sample window (`sample_ms`).
pub type TimeoutMs = Int<10, 10_000>;
/// A file source older than this fails.
pub type MaxAgeSeconds = Int<1, 86_400>;

/// The most custom monitors one list may hold: each is a thread (and maybe a process) a probe.
pub const MAX_CUSTOM: usize = 32;

/// Names a custom monitor may not take: the built-in monitors and the other `error:` words,
/// the list the reply code says them from.
use crate::words::ALL as RESERVED;

/// Where a custom monitor's value comes from. Two monitors with equal sources (in the base
/// and the profiles) share one reading per probe.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub kind: SourceKind,
    /// RFC 6901; unset: the first number in the output.
    pub json_pointer: Option<String>,
    /// Unset: the sample window.
    pub timeout_ms: Option<TimeoutMs>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SourceKind {
    /// The program and its arguments, run without a shell.
    Command(Vec<String>),
    File {
        path: PathBuf,
        max_age_seconds: Option<MaxAgeSeconds>,
    },
    /// An `http://` URL, fetched with GET.
    Http(String),
}

impl std::fmt::Display for Source {
    /// `command ["/bin/x", "-a"]`, `file /run/q`, `http http://127.0.0.1/`, and the pointer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            SourceKind::Command(argv) => write!(f, "command {argv:?}")?,
            SourceKind::File { path, .. } => write!(f, "file {}", path.display())?,
            SourceKind::Http(url) => write!(f, "http {url}")?,
        }
        match &self.json_pointer {
            Some(pointer) => write!(f, " at {pointer:?}"),
            None => Ok(()),
        }
    }
}

/// What a custom monitor does when its source fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The reply is `error:<name>`: HAProxy leaves the server as it was.
    #[default]
    Error,
    /// The monitor is left out of that probe.
    Ignore,
}

/// One entry of `custom`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Entry", into = "Entry")]
pub struct CustomMonitor {
    pub name: String,
    pub source: Source,
    /// The value that is a load of 100 %.
    pub max: f64,
    pub importance: Importance,
    /// Percent; 0 is off. The load may pass 100, as a TCP load may.
    pub threshold: TcpThreshold,
    /// Where a drain by the threshold ends; unset: threshold − `hysteresis`.
    pub release: Option<TcpThreshold>,
    pub on_error: OnError,
}

impl CustomMonitor {
    /// A monitor nobody looks at is not run.
    pub fn enabled(&self) -> bool {
        self.importance.get() > 0.0 || self.threshold.get() > 0.0
    }
}

/// The file's form of one entry, before its checks.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    json_pointer: Option<String>,
    #[serde(default = "hundred")]
    max: f64,
    #[serde(default = "one")]
    importance: Importance,
    #[serde(default)]
    threshold: TcpThreshold,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release: Option<TcpThreshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<TimeoutMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age_seconds: Option<MaxAgeSeconds>,
    #[serde(default)]
    on_error: OnError,
}

fn hundred() -> f64 {
    100.0
}

/// 1 to 64 letters, digits, '-', '_' or '.', and none of the reserved words: safe in the
/// reply's `error:<name>`, in `/metrics` labels and in logs.
fn check_name(name: &str) -> Result<(), Problem> {
    if !super::ProfileName::valid(name) {
        return Err(Problem::BadCustomName { name: name.into() });
    }
    if RESERVED.contains(&name) {
        return Err(Problem::ReservedCustomName { name: name.into() });
    }
    Ok(())
}

impl TryFrom<Entry> for CustomMonitor {
    type Error = Problem;
    fn try_from(entry: Entry) -> Result<Self, Problem> {
        check_name(&entry.name)?;
        let name = entry.name;
        let refuse = |problem| {
            Err(Problem::Custom {
                name: name.clone(),
                problem,
            })
        };
        let kind = match (entry.command, entry.file, entry.http) {
            (Some(argv), None, None) => {
                if argv.is_empty() || argv[0].is_empty() {
                    return refuse(CustomProblem::NoProgram);
                }
                if argv.iter().any(|arg| arg.contains('\0')) {
                    return refuse(CustomProblem::NulInCommand);
                }
                SourceKind::Command(argv)
            }
            (None, Some(path), None) => {
                let bytes = path.as_os_str().as_encoded_bytes();
                if bytes.is_empty() || bytes.contains(&0) {
                    return refuse(CustomProblem::BadFilePath);
                }
                SourceKind::File {
                    path,
                    max_age_seconds: entry.max_age_seconds,
                }
            }
            (None, None, Some(url)) => {
                if let Err(why) = check_url(&url) {
                    return refuse(CustomProblem::Url { url, why });
                }
                SourceKind::Http(url)
            }
            _ => return refuse(CustomProblem::NotOneSource),
        };
        if entry.max_age_seconds.is_some() && !matches!(kind, SourceKind::File { .. }) {
            return refuse(CustomProblem::MaxAgeNotForFile);
        }
        if let Some(pointer) = &entry.json_pointer
            && !pointer.is_empty()
            && !pointer.starts_with('/')
        {
            let pointer = pointer.clone();
            return refuse(CustomProblem::BadJsonPointer { pointer });
        }
        if !(entry.max.is_finite() && entry.max > 0.0) {
            return refuse(CustomProblem::MaxNotAboveZero { max: entry.max });
        }
        let release = entry.release.map(Real::get);
        check_release(
            || format!("custom {name:?}"),
            entry.threshold.get(),
            release,
        )?;
        Ok(CustomMonitor {
            name,
            source: Source {
                kind,
                json_pointer: entry.json_pointer,
                timeout_ms: entry.timeout_ms,
            },
            max: entry.max,
            importance: entry.importance,
            threshold: entry.threshold,
            release: entry.release,
            on_error: entry.on_error,
        })
    }
}

/// Plain `http://HOST[:PORT]/...`: no TLS, no user info (a password in the config is a
/// password in `--explain`), no spaces or control characters.
fn check_url(url: &str) -> Result<(), UrlProblem> {
    let rest = url
        .strip_prefix("http://")
        .ok_or(UrlProblem::NotPlainHttp)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(UrlProblem::NoHost);
    }
    if authority.contains('@') {
        return Err(UrlProblem::UserInfo);
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(UrlProblem::SpaceOrControl);
    }
    Ok(())
}

impl From<CustomMonitor> for Entry {
    fn from(monitor: CustomMonitor) -> Entry {
        let (mut command, mut file, mut http, mut max_age_seconds) = (None, None, None, None);
        match monitor.source.kind {
            SourceKind::Command(argv) => command = Some(argv),
            SourceKind::File {
                path,
                max_age_seconds: age,
            } => (file, max_age_seconds) = (Some(path), age),
            SourceKind::Http(url) => http = Some(url),
        }
        Entry {
            name: monitor.name,
            command,
            file,
            http,
            json_pointer: monitor.source.json_pointer,
            max: monitor.max,
            importance: monitor.importance,
            threshold: monitor.threshold,
            release: monitor.release,
            timeout_ms: monitor.source.timeout_ms,
            max_age_seconds,
            on_error: monitor.on_error,
        }
    }
}

/// The file's `custom` list: at most [`MAX_CUSTOM`] entries, each name once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CustomList(pub Vec<CustomMonitor>);

impl<'de> Deserialize<'de> for CustomList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let list = Vec::<CustomMonitor>::deserialize(deserializer)?;
        if list.len() > MAX_CUSTOM {
            return Err(D::Error::custom(Problem::TooManyCustom { max: MAX_CUSTOM }));
        }
        for (i, monitor) in list.iter().enumerate() {
            if list[..i].iter().any(|m| m.name == monitor.name) {
                return Err(D::Error::custom(Problem::DuplicateCustom {
                    name: monitor.name.clone(),
                }));
            }
        }
        Ok(CustomList(list))
    }
}

impl Serialize for CustomList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> Result<CustomMonitor, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn each_source_kind_reads() {
        let command = entry(r#"{"name": "rds", "command": ["/bin/x", "--rds"], "max": 50, "importance": 2, "threshold": 95}"#).unwrap();
        assert_eq!(
            command.source.kind,
            SourceKind::Command(vec!["/bin/x".into(), "--rds".into()])
        );
        assert_eq!((command.max, command.importance.get()), (50.0, 2.0));
        assert_eq!(command.threshold.get(), 95.0);
        let file = entry(r#"{"name": "queue", "file": "/run/q", "max_age_seconds": 30}"#).unwrap();
        assert_eq!(file.max, 100.0);
        assert_eq!(file.on_error, OnError::Error);
        assert!(matches!(
            file.source.kind,
            SourceKind::File { max_age_seconds: Some(age), .. } if age.get() == 30
        ));
        let http = entry(r#"{"name": "app", "http": "http://127.0.0.1:8080/load", "json_pointer": "/load", "on_error": "ignore", "timeout_ms": 300}"#).unwrap();
        assert_eq!(http.on_error, OnError::Ignore);
        assert_eq!(http.source.timeout_ms.map(Int::get), Some(300));
        assert_eq!(
            http.source.to_string(),
            "http http://127.0.0.1:8080/load at \"/load\""
        );
        // The effective config prints it back in the file's form.
        let text = serde_json::to_string(&http).unwrap();
        assert_eq!(entry(&text).unwrap(), http);
    }

    #[test]
    fn bad_entries_say_what_is_allowed() {
        let err = |json| entry(json).unwrap_err();
        assert!(err(r#"{"name": "a"}"#).contains("exactly one of command, file, http"));
        assert!(err(r#"{"name": "a", "file": "/x", "http": "http://h/"}"#).contains("exactly one"));
        assert!(err(r#"{"name": "a", "command": []}"#).contains("needs a program"));
        assert!(err(r#"{"name": "a", "http": "https://h/"}"#).contains("only plain http://"));
        assert!(err(r#"{"name": "a", "http": "http://u:p@h/"}"#).contains("user info"));
        assert!(err(r#"{"name": "a", "http": "http:///x"}"#).contains("no host"));
        assert!(err(r#"{"name": "a", "file": "/x", "max": 0}"#).contains("above 0"));
        assert!(err(r#"{"name": "a", "file": "/x", "max": -5}"#).contains("above 0"));
        assert!(err(r#"{"name": "a", "file": "/x", "timeout_ms": 5}"#).contains("10 to 10000"));
        assert!(
            err(r#"{"name": "a", "command": ["x"], "max_age_seconds": 5}"#)
                .contains("file source only")
        );
        assert!(err(r#"{"name": "a", "file": "/x", "json_pointer": "load"}"#).contains("RFC 6901"));
        assert!(err(r#"{"name": "a b", "file": "/x"}"#).contains("letters, digits"));
        // Every word the agent answers with itself: a failing custom `config` would answer
        // `error:config`, and a custom `sessions` drain `#sessions:…`, as the built-ins do.
        for name in [
            "config", "state", "profile", "timeout", "mode", "cpu", "ram", "tcp", "sessions",
        ] {
            let json = format!(r#"{{"name": "{name}", "file": "/x"}}"#);
            let message = entry(&json).unwrap_err();
            assert!(message.contains("taken by a built-in"), "{name}: {message}");
        }
        assert!(err(r#"{"name": "a", "file": "/x", "shell": true}"#).contains("unknown field"));
        assert!(err(r#"{"name": "a", "file": "/x", "on_error": "retry"}"#).contains("retry"));
    }

    #[test]
    fn the_list_refuses_a_repeated_name_and_too_many() {
        let list = |json: &str| serde_json::from_str::<CustomList>(json).map_err(|e| e.to_string());
        assert!(
            list(r#"[{"name": "a", "file": "/x"}, {"name": "a", "file": "/y"}]"#)
                .unwrap_err()
                .contains("duplicate custom monitor \"a\"")
        );
        let many: Vec<String> = (0..=MAX_CUSTOM)
            .map(|i| format!(r#"{{"name": "m{i}", "file": "/x"}}"#))
            .collect();
        assert!(
            list(&format!("[{}]", many.join(",")))
                .unwrap_err()
                .contains("more than 32")
        );
    }
}
