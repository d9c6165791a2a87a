//! `--explain`: the breakdown for people, built from the very values the reply came from, and
//! the same as one JSON object (`--explain --json`) for their scripts.

use std::fmt::Write;

use crate::probe::Report;
use crate::reply::Status;

/// The breakdown of a report with its figures in words (`probe::run` with `words`); `state`:
/// why the state directory is unusable ([`crate::state::unusable`]), when it is.
pub fn render(report: &Report, state: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mode        {} ({})",
        report.mode.name(),
        report.mode_from
    );
    if let Some(profile) = &report.profile {
        let _ = writeln!(
            out,
            "profile     {profile} (its monitors and maxconn over the base)"
        );
    }
    if report.loads.is_empty() {
        let why = match report.mode {
            crate::config::Mode::Normal => "no monitor has an importance or a threshold",
            _ => "the mode decides the reply, so nothing was sampled",
        };
        let _ = writeln!(out, "monitors    none sampled: {why}");
    } else {
        let _ = writeln!(
            out,
            "{:<11} {:<32} {:>7} {:>10} {:>12}  threshold",
            "monitor", "raw figure", "load %", "importance", "contribution"
        );
        for (load, raw) in &report.loads {
            let threshold = match load.threshold > 0.0 {
                false => "off".to_string(),
                true => {
                    let state = match (load.holding(), load.tripped()) {
                        (true, _) => {
                            format!(", HOLDING a drain: {:.1} is still above release", load.raw)
                        }
                        (false, true) => " REACHED".to_string(),
                        (false, false) => String::new(),
                    };
                    let (threshold, release) = (num(load.threshold), num(load.release));
                    format!("{threshold} (release {release}){state}")
                }
            };
            let _ = writeln!(
                out,
                "{:<11} {:<32} {:>7} {:>10} {:>12}  {threshold}",
                load.name,
                raw.as_ref().map(ToString::to_string).unwrap_or_default(),
                format!("{:.1}", load.load),
                num(load.importance),
                format!("{:.1}", load.contribution()),
            );
        }
        if let Some(steady) = &report.steady {
            let _ = writeln!(out, "steady      {steady}");
            let moved = report.loads.iter().filter(|(l, _)| l.load != l.raw);
            for (load, _) in moved {
                let _ = writeln!(
                    out,
                    "            {}: {:.1} this probe, {:.1} averaged",
                    load.name, load.raw, load.load
                );
            }
        }
        let counted: Vec<_> = report
            .loads
            .iter()
            .filter(|(l, _)| l.importance > 0.0)
            .collect();
        let terms: Vec<String> = counted
            .iter()
            .map(|(l, _)| format!("{:.1}", l.contribution()))
            .collect();
        if counted.is_empty() {
            let _ = writeln!(out, "utilization 0 (no monitor has an importance above 0)");
        } else {
            let _ = writeln!(
                out,
                "utilization ({}) / {} = {:.2}",
                terms.join(" + "),
                counted.len(),
                report.verdict.utilization
            );
        }
        let percent = report.verdict.percent;
        let (rounded, floor) = match report.verdict.raised_from {
            Some(rounded) => (rounded, format!(", raised to min_percent = {percent}%")),
            None => (percent, String::new()),
        };
        let idle = 100.0 - report.verdict.utilization;
        let _ = writeln!(
            out,
            "idle        100 - {:.2} = {idle:.2}, rounded and clamped to 0..100 = {rounded}%{floor}",
            report.verdict.utilization,
        );
    }
    for (name, why) in &report.ignored {
        let _ = writeln!(out, "ignored     {name}: {why} (on_error ignore)");
    }
    if let Status::Drain(reason) = &report.status
        && report.mode == crate::config::Mode::Normal
    {
        let what = match report.loads.iter().any(|(l, _)| l.holding()) {
            true => "held until the load is at or below release",
            false => "reached",
        };
        let _ = writeln!(out, "threshold   {what} ({reason}): the server drains");
    }
    let _ = writeln!(out, "recovery    {}", report.recovery.why);
    if let Some(state) = state {
        let _ = writeln!(out, "state       {state}");
    }
    if let Some(maxconn) = report.maxconn {
        let _ = writeln!(out, "maxconn     {maxconn}");
    }
    let _ = write!(out, "reply       {}", report.line);
    out
}

/// The breakdown as JSON; docs/http-and-metrics.md, "Machine-readable output", lists the fields, which stay.
pub fn json(report: &Report, state_problem: Option<&str>) -> serde_json::Value {
    let monitors: Vec<serde_json::Value> = report
        .loads
        .iter()
        .map(|(load, raw)| {
            let custom = raw.as_ref().and_then(|raw| raw.custom);
            serde_json::json!({
                "name": load.name,
                "figure": raw.as_ref().map(|raw| &raw.text),
                "source": raw.as_ref().and_then(|raw| raw.source.as_ref()),
                "value": custom.map(|(value, _)| value),
                "took_ms": custom.map(|(_, took)| took.as_secs_f64() * 1000.0),
                "load": load.load,
                "raw": load.raw,
                "importance": load.importance,
                "contribution": load.contribution(),
                "threshold": load.threshold,
                "release": load.release,
                "tripped": load.tripped(),
                "holding": load.holding(),
            })
        })
        .collect();
    let (state, reason) = match &report.status {
        Status::Ready(_) => ("normal", None),
        Status::Drain(reason) => ("drain", Some(reason)),
        Status::Maint(reason) => ("maint", Some(reason)),
        Status::Stopped(reason) => ("stopped", Some(reason)),
    };
    serde_json::json!({
        "mode": report.mode.name(),
        "mode_from": report.mode_from,
        "profile": report.profile,
        "monitors": monitors,
        "ignored": report.ignored.iter().map(|(name, why)| serde_json::json!({"name": name, "error": why})).collect::<Vec<_>>(),
        "utilization": report.verdict.utilization,
        "percent": report.verdict.percent,
        "min_percent_applied": report.verdict.raised_from.is_some(),
        "steady": report.steady,
        "state": state,
        "reason": reason,
        "recovery": {"up_ready": report.recovery.recover, "why": report.recovery.why},
        "state_problem": state_problem,
        "maxconn": report.maxconn,
        "reply": report.line.trim_end(),
    })
}

fn num(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}
