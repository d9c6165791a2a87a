//! `lb-feedback status`: for people (or, with `--json`, for their scripts), the mode in force,
//! every poller the state directory knows, with what it was last told and whether it is still
//! owed `up ready`, the drains thresholds hold (steady steering), and the last changes of what
//! they were told (the history). Reads the state directory only; takes no sample.

use std::fmt::Write;

use crate::clock::human_duration;
use crate::config::{Config, Recovery};
use crate::probe;
use crate::state::history::Event;
use crate::state::pollers::Entry;
use crate::state::steady::SteadyProblem;
use crate::state::{self, StateDir, StateError, UnusableDir};

/// What `lb-feedback status` was asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Events of the last this many milliseconds; without it the last [`SHOWN_EVENTS`].
    pub since_ms: Option<u64>,
    pub json: bool,
}

/// Why `status` could not report at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusError {
    /// The runtime mode could not be read, so the mode in force is not known.
    Mode(StateError),
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusError::Mode(err) => write!(f, "state directory: {err}"),
        }
    }
}

impl std::error::Error for StatusError {}

/// Why the held drains are not shown; the rest of the report stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HeldProblem {
    /// The memory does not check out (the next probe starts it afresh).
    Damaged(SteadyProblem),
    Unreadable(StateError),
}

impl std::fmt::Display for HeldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeldProblem::Damaged(why) => why.fmt(f),
            HeldProblem::Unreadable(err) => err.fmt(f),
        }
    }
}

/// Events shown without `--since`.
pub const SHOWN_EVENTS: usize = 20;

/// What the state directory says, read once for either rendering.
struct Found {
    mode: &'static str,
    mode_from: String,
    pollers: Result<Option<Vec<Entry>>, StateError>,
    events: Vec<Event>,
    /// Monitors holding a drain: profile, monitor, their average and when it was updated.
    held: Result<Vec<Held>, HeldProblem>,
    dir: std::path::PathBuf,
    /// Why the state directory is unusable, when it is.
    unusable: Option<UnusableDir>,
}

/// A monitor holding a drain by its threshold, as the steady-steering memory records it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
struct Held {
    profile: Option<String>,
    monitor: String,
    average: f64,
    at_ms: u64,
}

/// The held drains the memory records; `Err` says why it could not be read.
fn held_drains(state: &StateDir) -> Result<Vec<Held>, HeldProblem> {
    let mut held = Vec::new();
    let why = state.steady(false, &mut |table| {
        let holding = table.entries().filter(|(_, _, entry)| entry.holding);
        held.extend(holding.map(|(profile, monitor, entry)| Held {
            profile: profile.map(str::to_string),
            monitor: monitor.to_string(),
            average: entry.average,
            at_ms: entry.at_ms,
        }));
    });
    match why {
        Ok(None) => Ok(held),
        Ok(Some(why)) => Err(HeldProblem::Damaged(why)),
        Err(err) => Err(HeldProblem::Unreadable(err)),
    }
}

fn find(config: &Config, now_ms: u64, options: Options) -> Result<Found, StatusError> {
    let state = StateDir::new(&config.state_dir);
    let (mode, mode_from) =
        probe::effective_mode(config, &state, now_ms).map_err(StatusError::Mode)?;
    let mut events = state.history().unwrap_or_default();
    match options.since_ms {
        Some(since) => events.retain(|e| e.at_ms >= now_ms.saturating_sub(since)),
        None => {
            let older = events.len().saturating_sub(SHOWN_EVENTS);
            events.drain(..older);
        }
    }
    Ok(Found {
        mode: mode.name(),
        mode_from,
        pollers: state.pollers(),
        events,
        held: held_drains(&state),
        dir: state.path().to_path_buf(),
        unusable: state::unusable(config),
    })
}

/// The `status --json` document (docs/http-and-metrics.md, "Machine-readable output", gives its fields).
pub fn document(
    config: &Config,
    now_ms: u64,
    options: Options,
) -> Result<serde_json::Value, StatusError> {
    let found = find(config, now_ms, options)?;
    let (pollers, problem) = match found.pollers {
        Ok(entries) => (entries.unwrap_or_default(), None),
        Err(err) => (Vec::new(), Some(err.to_string())),
    };
    Ok(serde_json::json!({
        "mode": found.mode,
        "mode_from": found.mode_from,
        "state_problem": found.unusable.as_ref().map(ToString::to_string),
        "recovery": {
            "policy": config.recovery,
            "replies": config.recovery_replies.get(),
            "seconds": config.recovery_seconds.get(),
        },
        "now_ms": now_ms,
        "pollers": pollers,
        "pollers_problem": problem,
        "held_drains": found.held.as_ref().ok(),
        "held_drains_problem": found.held.as_ref().err().map(ToString::to_string),
        "events": found.events,
    }))
}

/// The whole report, or why the state directory could not be read.
pub fn render(config: &Config, now_ms: u64, options: Options) -> Result<String, StatusError> {
    if options.json {
        return document(config, now_ms, options).map(|document| format!("{document:#}\n"));
    }
    let found = find(config, now_ms, options)?;
    let mut out = String::new();
    let _ = writeln!(out, "mode      {} ({})", found.mode, found.mode_from);
    if let Some(problem) = &found.unusable {
        let _ = writeln!(out, "state     {problem}");
    }
    let _ = writeln!(out, "recovery  {}", rule_words(config));
    match found.pollers {
        Ok(Some(entries)) if !entries.is_empty() => out.push_str(&table_text(
            &entries,
            config.recovery_replies.get(),
            config.recovery_seconds.get(),
            now_ms,
        )),
        Ok(_) if found.unusable.is_some() => {
            let _ = writeln!(
                out,
                "pollers   none recorded: the state directory is unusable (above), so polls leave no trace"
            );
        }
        Ok(_) => {
            let _ = writeln!(
                out,
                "pollers   none yet: no load balancer has polled (the table will be {})",
                found.dir.join("pollers").display()
            );
        }
        Err(err) => {
            let _ = writeln!(out, "pollers   unreadable: {err}");
        }
    }
    out.push_str(&held_text(&found.held, now_ms));
    out.push_str(&events_text(&found.events, options.since_ms));
    Ok(out)
}

/// The drains thresholds hold (nothing when none do).
fn held_text(held: &Result<Vec<Held>, HeldProblem>, now_ms: u64) -> String {
    match held {
        Ok(held) if held.is_empty() => String::new(),
        Ok(held) => {
            let mut out = format!(
                "held      {} drain(s) held until the load is at or below release:\n",
                held.len()
            );
            for h in held {
                let profile = h.profile.as_deref().unwrap_or("(base)");
                let _ = writeln!(
                    out,
                    "  {profile} {}: load {:.1}, updated {} ago",
                    h.monitor,
                    h.average,
                    human_duration(now_ms.saturating_sub(h.at_ms))
                );
            }
            out
        }
        Err(why) => format!("held      unreadable steady-steering memory: {why}\n"),
    }
}

/// The events, oldest first, newest last, in local time.
fn events_text(events: &[Event], since_ms: Option<u64>) -> String {
    let which = match since_ms {
        Some(ms) => format!("of the last {}", human_duration(ms)),
        None => format!("the last {SHOWN_EVENTS} at most; --since DURATION for others"),
    };
    if events.is_empty() {
        return format!("events    none ({which})\n");
    }
    let mut out = format!("events    {} ({which})\n", events.len());
    for event in events {
        let why = match event.why.as_str() {
            "" => String::new(),
            why => format!("  {why}"),
        };
        let _ = writeln!(
            out,
            "  {}  {}  {} -> {}{why}",
            local_time(event.at_ms),
            event.who(),
            event.from_word(),
            event.to_word()
        );
    }
    out
}

/// `2026-12-01 23:45:12 +0100`: the local time, with its offset from UTC.
#[cfg(unix)]
fn local_time(ms: u64) -> String {
    let seconds = (ms / 1000) as libc::time_t;
    // SAFETY: localtime_r fills the struct given from the time given, nothing else; an
    // all-zero tm is a valid value to start from.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&seconds, &mut tm) }.is_null() {
        return utc_time(ms);
    }
    let offset = tm.tm_gmtoff / 60;
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        if offset < 0 { '-' } else { '+' },
        offset.abs() / 60,
        offset.abs() % 60
    )
}

/// Windows: UTC, said so (the local zone needs the Windows API, and the service's own log
/// is in UTC too).
#[cfg(not(unix))]
fn local_time(ms: u64) -> String {
    utc_time(ms)
}

/// As the service's log writes it: `2026-12-01T22:45:12Z`.
fn utc_time(ms: u64) -> String {
    crate::clock::utc_timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

fn rule_words(config: &Config) -> String {
    match config.recovery {
        Recovery::Always => "always: every normal reply carries `up ready`".into(),
        Recovery::Never => "never: no reply carries `up ready`".into(),
        Recovery::Window => format!(
            "a poller sent drain/maint/stopped, new, or polling when the mode changed is owed `up ready` until {} replies carrying it counted (delivered, and half its usual interval apart) and {} s have passed",
            config.recovery_replies.get(),
            config.recovery_seconds.get()
        ),
    }
}

/// One line per poller, by address then profile.
fn table_text(entries: &[Entry], replies: u64, seconds: u64, now_ms: u64) -> String {
    let mut entries: Vec<&Entry> = entries
        .iter()
        .filter(|e| now_ms.saturating_sub(e.last_seen_ms) < state::record::FORGET_AFTER_MS)
        .collect();
    entries.sort_by_key(|e| {
        let ip = e.poller.peer.parse::<std::net::IpAddr>().ok();
        (ip, e.poller.peer.clone(), e.poller.profile.clone())
    });
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|e| {
            let owed = match e.owed {
                Some(owed) => format!(
                    "yes, {} of {replies} counted, owed {} (needs {seconds}s)",
                    owed.sent,
                    human_duration(now_ms.saturating_sub(owed.since_ms))
                ),
                None => "no".into(),
            };
            [
                e.poller.peer.clone(),
                e.poller.profile.clone().unwrap_or_else(|| "(base)".into()),
                match e.last_seen_ms > now_ms {
                    true => "in the future (clock stepped back)".into(),
                    false => format!("{} ago", human_duration(now_ms - e.last_seen_ms)),
                },
                e.last_reply.clone(),
                owed,
            ]
        })
        .collect();
    let header = [
        "peer",
        "profile",
        "last seen",
        "last reply",
        "owed recovery",
    ];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("pollers   {}\n", rows.len());
    for row in std::iter::once(header.map(str::to_string)).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Mode, Recovery};
    use crate::state::history::{Change, Told};
    use crate::state::pollers::{Kind, Rule, Table};
    use crate::state::record::Poller;

    #[test]
    fn one_line_per_poller_sorted_with_what_it_is_owed() {
        let rule = Rule {
            policy: Recovery::Window,
            replies: 3,
            seconds: 10,
        };
        let mut table = Table::default();
        let b = Poller::new(Some("127.0.0.2".parse().unwrap()), Some("web"));
        let a = Poller::new(Some("127.0.0.1".parse().unwrap()), None);
        table
            .poll(&b, Kind::Normal, rule, 1_000, &|_| "up ready 90%\n".into())
            .unwrap();
        for at in [1_000, 2_000, 3_000, 20_000] {
            table
                .poll(&a, Kind::Normal, rule, at, &|r| match r {
                    true => "up ready 80%\n".into(),
                    false => "80%\n".into(),
                })
                .unwrap();
        }
        let text = table_text(&table.entries().unwrap(), 3, 10, 22_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "pollers   2");
        assert!(
            lines[1].starts_with("  peer       profile  last seen"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("  127.0.0.1  (base)   2s ago"),
            "{text}"
        );
        assert!(lines[2].ends_with("  80%           no"), "{text}");
        assert!(
            lines[3].contains(
                "web      21s ago    up ready 90%  yes, 1 of 3 counted, owed 21s (needs 10s)"
            ),
            "{text}"
        );
    }

    #[test]
    fn events_read_oldest_first_with_who_what_and_why() {
        const AT_MS: u64 = 1_700_000_000_000;
        let event = |peer: &str, profile: Option<&str>, from: Told, to: Told, why: &str| Event {
            at_ms: AT_MS,
            change: Change::Poller {
                poller: Poller {
                    peer: peer.into(),
                    profile: profile.map(str::to_string),
                },
                from: Some(from),
                to,
            },
            why: why.into(),
        };
        let events = [
            event(
                "10.0.0.1",
                None,
                Told::Normal,
                Told::Drain,
                "tcp:3389:96>=95",
            ),
            Event {
                at_ms: AT_MS,
                change: Change::Mode {
                    from: Some(Mode::Drain),
                    to: Mode::Normal,
                },
                why: "lb-feedback mode normal until changed".into(),
            },
            event("10.0.0.1", Some("web"), Told::Drain, Told::Normal, ""),
        ];
        let text = events_text(&events, None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "events    3 (the last 20 at most; --since DURATION for others)"
        );
        assert!(lines[1].ends_with("  10.0.0.1 (base)  normal -> drain  tcp:3389:96>=95"));
        assert!(
            lines[2].ends_with("  mode  drain -> normal  lb-feedback mode normal until changed")
        );
        assert!(lines[3].ends_with("  10.0.0.1 web  drain -> normal"));
        // 2023-11-14 22:13:20 UTC, in whatever zone the test runs.
        assert!(lines[1].starts_with("  2023-11-1"), "{text}");
        assert_eq!(
            events_text(&[], Some(3_600_000)),
            "events    none (of the last 1h 0m)\n"
        );
        assert_eq!(utc_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }
}
