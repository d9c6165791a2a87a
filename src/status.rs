//! `lb-feedback status`: for people, the mode in force and every poller the state directory
//! knows, with what it was last told and whether it is still owed `up ready`. Reads the state
//! directory only; takes no sample.

use std::fmt::Write;

use crate::config::{Config, Recovery};
use crate::probe::{self, human_duration};
use crate::state::pollers::Entry;
use crate::state::{self, StateDir};

/// The whole report, or why the state directory could not be read.
pub fn render(config: &Config, now_ms: u64) -> Result<String, String> {
    let state = StateDir::new(&config.state_dir);
    let (mode, from) = probe::effective_mode(config, &state, now_ms)
        .map_err(|err| format!("state directory: {err}"))?;
    let mut out = String::new();
    let _ = writeln!(out, "mode      {} ({from})", mode.name());
    let _ = writeln!(out, "recovery  {}", rule_words(config));
    match state.pollers() {
        Ok(Some(entries)) if !entries.is_empty() => out.push_str(&table_text(
            &entries,
            config.recovery_replies.get(),
            config.recovery_seconds.get(),
            now_ms,
        )),
        Ok(_) => {
            let _ = writeln!(
                out,
                "pollers   none yet: no load balancer has polled (the table will be {})",
                state.path().join("pollers").display()
            );
        }
        Err(err) => {
            let _ = writeln!(out, "pollers   unreadable: {err}");
        }
    }
    Ok(out)
}

fn rule_words(config: &Config) -> String {
    match config.recovery {
        Recovery::Always => "always: every normal reply carries `up ready`".into(),
        Recovery::Never => "never: no reply carries `up ready`".into(),
        Recovery::Window => format!(
            "a poller sent drain/maint/stopped, new, or polling when the mode changed is owed `up ready` until {} replies carried it and {} s have passed",
            config.recovery_replies.get(),
            config.recovery_seconds.get()
        ),
    }
}

/// One line per poller, by address then profile.
fn table_text(entries: &[Entry], replies: u64, seconds: u64, now_ms: u64) -> String {
    let mut entries: Vec<&Entry> = entries
        .iter()
        .filter(|e| now_ms.saturating_sub(e.last_seen_ms) < state::pollers::FORGET_AFTER_MS)
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
                    "yes, {} of {replies} sent, owed {} (needs {seconds}s)",
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
    use crate::config::Recovery;
    use crate::state::pollers::{Kind, Poller, Rule, Table};

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
                "web      21s ago    up ready 90%  yes, 1 of 3 sent, owed 21s (needs 10s)"
            ),
            "{text}"
        );
    }
}
