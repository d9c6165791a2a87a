//! The only module that knows HAProxy's agent words: mode + verdict + recovery → one line.
//!
//! HAProxy reads the first line only, needs the `\n`, keeps `drain`/`maint` until `ready` and
//! `stopped` until `up`, and logs-and-ignores any word it does not know (`error:config`).

use crate::config::Mode;
use crate::rules::{Load, Verdict};
use crate::words;

/// What the server should be, before the recovery words are decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Idle capacity in percent.
    Ready(u8),
    /// The `#reason` word, without spaces, shown in HAProxy's logs.
    Drain(String),
    Maint(String),
    Stopped(String),
}

impl Status {
    /// The runtime or configured mode wins over the figures; then a tripped threshold drains.
    pub fn decide(mode: Mode, verdict: &Verdict, loads: &[Load]) -> Status {
        match mode {
            Mode::Stop => Status::Stopped(words::MODE.into()),
            Mode::Maint => Status::Maint(words::MODE.into()),
            Mode::Drain => Status::Drain(words::MODE.into()),
            Mode::Normal => match verdict.tripped.and_then(|i| loads.get(i)) {
                // A drain held by hysteresis says so: its figure is under the threshold.
                Some(load) if load.holding() => Status::Drain(format!(
                    "{}:{}>{}(release)",
                    load.name,
                    round1(load.raw),
                    round1(load.release)
                )),
                Some(load) => Status::Drain(format!(
                    "{}:{}>={}",
                    load.name,
                    round1(load.raw),
                    round1(load.threshold)
                )),
                None => Status::Ready(verdict.percent),
            },
        }
    }

    /// Anything but a plain percent leaves HAProxy in a state that needs the recovery words.
    pub fn is_normal(&self) -> bool {
        matches!(self, Status::Ready(_))
    }

    /// The reply line, `\n` included. `recover` adds `up ready` to a normal reply.
    pub fn line(&self, recover: bool, maxconn: Option<u64>) -> String {
        let mut line = match self {
            Status::Ready(percent) if recover => format!("up ready {percent}%"),
            Status::Ready(percent) => format!("{percent}%"),
            Status::Drain(_) => "drain".into(),
            Status::Maint(_) => "maint".into(),
            Status::Stopped(_) => "stopped".into(),
        };
        if let Some(maxconn) = maxconn {
            line.push_str(&format!(" maxconn:{maxconn}"));
        }
        // HAProxy takes the rest of the line after `#` as the description, so it goes last.
        if let Status::Drain(reason) | Status::Maint(reason) | Status::Stopped(reason) = self {
            line.push_str(" #");
            line.push_str(reason);
        }
        line.push('\n');
        line
    }
}

/// The reply when the probe failed: one word HAProxy logs and otherwise ignores, so the
/// server keeps whatever state it had.
pub fn error_line(reason: &str) -> String {
    format!("error:{reason}\n")
}

fn round1(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, value: f64, threshold: f64) -> Load {
        Load::new(name.into(), value, 1.0, threshold, threshold)
    }

    fn judge(loads: &[Load]) -> crate::rules::Verdict {
        crate::rules::judge(loads, 0)
    }

    #[test]
    fn normal_is_a_bare_percent() {
        let loads = [load("cpu", 13.0, 0.0)];
        let status = Status::decide(Mode::Normal, &judge(&loads), &loads);
        assert_eq!(status, Status::Ready(87));
        assert_eq!(status.line(false, None), "87%\n");
        assert_eq!(status.line(true, None), "up ready 87%\n");
        assert_eq!(status.line(false, Some(40)), "87% maxconn:40\n");
        assert_eq!(status.line(true, Some(40)), "up ready 87% maxconn:40\n");
    }

    #[test]
    fn modes_give_their_words() {
        let loads = [load("cpu", 13.0, 0.0)];
        let verdict = judge(&loads);
        let line = |mode| Status::decide(mode, &verdict, &loads).line(true, None);
        assert_eq!(line(Mode::Drain), "drain #mode\n");
        assert_eq!(line(Mode::Maint), "maint #mode\n");
        assert_eq!(line(Mode::Stop), "stopped #mode\n");
    }

    #[test]
    fn threshold_drains_and_names_the_monitor() {
        let loads = [load("cpu", 10.0, 0.0), load("tcp:3389", 50.0, 40.0)];
        let status = Status::decide(Mode::Normal, &judge(&loads), &loads);
        assert!(!status.is_normal());
        assert_eq!(
            status.line(false, Some(5)),
            "drain maxconn:5 #tcp:3389:50>=40\n"
        );
        let loads = [load("ram", 91.26, 90.5)];
        let status = Status::decide(Mode::Normal, &judge(&loads), &loads);
        assert_eq!(status.line(false, None), "drain #ram:91.3>=90.5\n");
    }

    #[test]
    fn a_held_drain_names_its_release() {
        let loads = [Load {
            held: true,
            ..Load::new("tcp:3389".into(), 90.0, 1.0, 95.0, 85.0)
        }];
        let status = Status::decide(Mode::Normal, &judge(&loads), &loads);
        assert_eq!(status.line(false, None), "drain #tcp:3389:90>85(release)\n");
    }

    #[test]
    fn mode_wins_over_threshold() {
        let loads = [load("cpu", 99.0, 50.0)];
        let status = Status::decide(Mode::Maint, &judge(&loads), &loads);
        assert_eq!(status, Status::Maint("mode".into()));
    }

    #[test]
    fn error_is_one_unknown_word() {
        assert_eq!(error_line("config"), "error:config\n");
    }
}
