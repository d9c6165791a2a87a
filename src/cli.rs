//! The command line: a lexopt loop turning arguments into `Args`, and the help text.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Key, Mode, Setting};

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Answer one poll (the default).
    Probe,
    /// Validate the settings and print the effective config as JSON.
    CheckConfig,
    /// `lb-feedback mode`: show, set or reset the runtime mode.
    Mode(ModeCommand),
    /// `lb-feedback status`: the mode, the pollers and the history, from the state directory.
    Status(crate::status::Options),
    Help,
    /// `-h`: the short help.
    ShortHelp,
    Version,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ModeCommand {
    Show,
    Set {
        mode: Mode,
        lasting: Option<Duration>,
    },
    /// Forget the runtime mode: the config's mode counts again.
    Reset,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub config: Option<PathBuf>,
    /// Settings given as flags, in order; they win over the file and the environment.
    pub settings: Vec<(Key, String)>,
    pub explain: bool,
    /// With `explain`: the breakdown as one JSON object.
    pub json: bool,
    /// With `explain` or `check-config`: answer as to a poller whose agent-send names it.
    pub profile: Option<String>,
}

pub fn parse_args() -> Result<Args, lexopt::Error> {
    parse_from(std::env::args_os().skip(1))
}

pub fn parse_from<I: IntoIterator<Item = OsString>>(args: I) -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_args(args);
    let mut command: Option<Command> = None;
    let mut config = None;
    let mut settings = Vec::new();
    let mut explain = false;
    let mut json = false;
    let mut profile = None;
    let mut lasting = None;
    let mut mode_word: Option<String> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') => command = Some(Command::ShortHelp),
            Long("help") => command = Some(Command::Help),
            Short('V') | Long("version") => command = Some(Command::Version),
            Short('c') | Long("config") => config = Some(PathBuf::from(parser.value()?)),
            Long("explain") => explain = true,
            Long("for") => lasting = Some(parse_duration(&parser.value()?.string()?)?),
            Long("since") if matches!(command, Some(Command::Status(_))) => {
                let since = parse_duration(&parser.value()?.string()?)?;
                if let Some(Command::Status(options)) = &mut command {
                    options.since_ms = Some(since.as_millis() as u64);
                }
            }
            Long("json") => json = true,
            Long("profile") => profile = Some(parser.value()?.string()?),
            Long(flag) if Setting::from_flag(flag).is_some() => {
                // Settings flags share their names with the config keys (config::Key).
                if let Some(key) = Setting::from_flag(flag) {
                    settings.push((key, parser.value()?.string()?));
                }
            }
            Value(value) if command.is_none() => {
                command = Some(match value.string()?.as_str() {
                    "check-config" => Command::CheckConfig,
                    "mode" => Command::Mode(ModeCommand::Show),
                    "status" => Command::Status(Default::default()),
                    "help" => Command::Help,
                    other => {
                        return Err(format!(
                            "unknown command {other:?}; commands: check-config, mode, status, help"
                        )
                        .into());
                    }
                });
            }
            Value(value) if matches!(command, Some(Command::Mode(_))) && mode_word.is_none() => {
                mode_word = Some(value.string()?);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    let command = match (command, mode_word) {
        (Some(Command::Mode(_)), None) if lasting.is_none() => Command::Mode(ModeCommand::Show),
        (Some(Command::Mode(_)), Some(word)) if word == "reset" && lasting.is_none() => {
            Command::Mode(ModeCommand::Reset)
        }
        (Some(Command::Mode(_)), Some(word)) => Command::Mode(ModeCommand::Set {
            mode: Mode::parse(&word).map_err(|e| format!("{e}, or reset"))?,
            lasting,
        }),
        (Some(Command::Mode(_)), None) => {
            return Err("--for needs a mode: lb-feedback mode drain --for 10m".into());
        }
        (_, _) if lasting.is_some() => {
            return Err("--for only goes with `lb-feedback mode MODE`".into());
        }
        (command, _) => command.unwrap_or(Command::Probe),
    };
    let command = match (command, json) {
        (Command::Status(options), true) => Command::Status(crate::status::Options {
            json: true,
            ..options
        }),
        (Command::Probe, true) if !explain => {
            return Err(
                "--json goes with --explain or status: lb-feedback --explain --json".into(),
            );
        }
        // check-config prints JSON anyway.
        (command @ (Command::Probe | Command::CheckConfig), _) | (command, false) => command,
        (_, true) => return Err("--json goes with --explain, status or check-config".into()),
    };
    let explains = command == Command::Probe && explain;
    if profile.is_some() && !explains && command != Command::CheckConfig {
        return Err(
            "--profile goes with --explain or check-config: lb-feedback --profile web --explain"
                .into(),
        );
    }
    Ok(Args {
        command,
        config,
        settings,
        explain,
        json,
        profile,
    })
}

/// `90` or `90s`, `500ms`, `10m`, `2h`, `1d`: how long a runtime mode lasts.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || format!("bad duration {text:?}; examples: 90s, 10m, 2h, 1d");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => n,
        "" | "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        _ => return Err(bad()),
    };
    if ms == 0 || ms > 366 * 86_400_000 {
        return Err(format!(
            "duration {text:?} must be above 0 and at most 366d"
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// `--help` up to the settings' options.
const HELP_HEAD: &str = "\
lb-feedback - tell HAProxy how much capacity this server has left

USAGE
    lb-feedback [OPTIONS]                 answer one agent-check poll
    lb-feedback [OPTIONS] --explain [--json] [--profile NAME]
                                          answer, and show how the answer was reached
    lb-feedback [OPTIONS] check-config [--profile NAME]
                                          validate the settings, print them as JSON
    lb-feedback [OPTIONS] mode            show the mode in force and where it comes from
    lb-feedback [OPTIONS] mode MODE [--for DURATION]
                                          set the runtime mode: normal, drain, maint, stop
    lb-feedback [OPTIONS] mode reset      forget the runtime mode; the config's counts again
    lb-feedback [OPTIONS] status [--since DURATION] [--json]
                                          the mode, every load balancer that polled (what it
                                          was last told, whether it is owed `up ready`), the
                                          drains thresholds hold, and the last changes of
                                          what they were told

DESCRIPTION
    HAProxy's agent-check connects to this program on port 3333 (through xinetd, a systemd
    socket with Accept=yes, or lb-feedback-service) and reads one line. lb-feedback samples
    CPU over sample_ms, RAM, established TCP connections on the ports it watches, and user
    sessions if asked (--sessions), then answers:

        N%                 idle capacity: HAProxy sets the weight to N% of the configured one
        up ready N%        the same, to a poller owed recovery (see RECOVERY)
        drain #why         a monitor reached its threshold, or the mode is drain
        maint #mode        the mode is maint;  stopped #mode: the mode is stop
        error:WHAT         the probe failed (config, cpu, ram, tcp, sessions, state,
                           profile, or a custom monitor's name); HAProxy shows it and
                           leaves the server as it was

    utilization = sum(load x importance) / (number of monitors with importance > 0)
    N = 100 - utilization, rounded, clamped to 0..100, at least min_percent. A load at or
    over its non-zero threshold drains the server, until it is at or below its release
    (see STEADY STEERING). TCP load = established / max_connections x 100.
    Sessions load = user sessions / max_sessions x 100 (both may pass 100).
    Example: cpu 40% and ram 60%, both importance 1: (40 + 60) / 2 = 50, reply 50%.
    CPU load counts iowait as idle and steal as busy. In a cgroup with a CPU quota or a
    memory limit (a container) the loads are the cgroup's: its CPU time over its quota, its
    memory over its limit (see --scope; --explain names the source of each figure).

CUSTOM MONITORS
    The config file's \"custom\" list (and a profile's) adds monitors whose value comes from
    a command, a file or a plain http:// GET: the first number in its output, or the number
    at \"json_pointer\"; load = value / max x 100. Each runs beside the CPU window within
    its timeout_ms (a command that overruns is killed with its process group); a failure
    answers error:<name> unless \"on_error\": \"ignore\". Commands come from the config
    file only, never from the environment, a flag or agent-send, and run with the agent's
    privileges and no shell (write [\"/bin/sh\", \"-c\", ...] for one). See docs/monitors.md.

OPTIONS
    -c, --config PATH          JSON config file (default /etc/lb-feedback/config.json,
                               or LB_FEEDBACK_CONFIG); a missing default file means defaults;
                               a regular file (a symlink to one is fine) of at most 1 MiB
";

/// `--help` after the settings' options.
const HELP_AFTER_SETTINGS: &str =
    "        --explain              print the breakdown: figures, rule, mode, recovery, reply
        --for DURATION         with `mode MODE`: the mode expires by itself (90s, 10m, 2h, 1d)
        --since DURATION       with `status`: the changes of this last while, not the last 20
        --json                 with `--explain` or `status`: one JSON object instead (its
                               fields: docs/http-and-metrics.md)
        --profile NAME         with `--explain` or `check-config`: as a load balancer whose
                               agent-send names this profile is answered (unknown:
                               error:profile, and the config's profiles on stderr)
    -h                         the short help;  --help  this text
    -V, --version              the version

";

/// `--help` from RECOVERY on.
const HELP_TAIL: &str = "\
RECOVERY
    HAProxy keeps a server in DRAIN or MAINT until the agent says `ready`, and DOWN until
    `up`. A poller is one load balancer asking about one backend: the connection's peer
    address and the agent-send profile it chose. A poller that was sent drain, maint or
    stopped, that polled for the first time, or that is known when `lb-feedback mode`
    changes the mode, is owed recovery: its normal replies say `up ready N%` until
    recovery_replies of them have and recovery_seconds have passed since it was owed. Then
    bare `N%`, so a drain an operator sets in HAProxy stays. A poller away meanwhile (its
    agent disabled, the load balancer rebooting) is still owed when it comes back; one not
    seen for a day is forgotten (new, so owed, if it returns). A person running lb-feedback
    by hand is not a poller. The table (at most 4096) is in the state directory; a state
    directory that cannot be used means `up ready` on every normal reply.

STEADY STEERING
    A monitor that reached its threshold keeps the server draining until its load is at or
    below its release (threshold - hysteresis, 10 points by default): a load hovering at
    the threshold drains once, not on every poll. With smoothing_seconds, each monitor's
    load is a moving average over that time constant, weighted by time (not by the number
    of polls), so a one-second burst moves the weight a little; thresholds act on each
    probe's own figure, so a real overload still drains at once. Both are kept per profile
    in the state directory, shared by every probe. min_percent floors normal replies: with
    every server at 0% HAProxy has no weight left anywhere. HAProxy truncates weight x N /
    100: give servers weight 100 or 256, not 1 (with weight 1 anything under 100% is 0).

SOCKET MODE
    When stdin is a socket, lb-feedback reads what HAProxy's agent-send sends (at most 1 KiB,
    while the sample runs; in drain, maint and stop mode, which sample nothing, for at most
    200 ms, and only when the config has profiles), writes the reply, half-closes and
    drains, so HAProxy sees a clean close. When stdio is a socket nothing is ever written
    to stderr (a stderr that is a socket is pointed at /dev/null at start).

EXIT STATUS
    0   the reply was given (or the command succeeded)
    1   a figure or the state directory could not be read; the reply was error:WHAT
    2   bad config or usage; the reply was error:config, the message went to stderr

EXAMPLES
    lb-feedback --explain
    LB_FEEDBACK_TCP=3389:50 lb-feedback               RDP sessions against 50
    lb-feedback mode drain --for 15m                  drain for a deploy, undone by itself
    lb-feedback mode normal
    lb-feedback status                                who polled, what they were told
    socat - TCP:server:3333                           what HAProxy gets

    HAProxy: server rds1 10.0.0.11:3389 weight 100 check agent-check agent-port 3333 agent-inter 2s
";

/// The full `--help`: the settings' options and environment variables come from the key
/// table.
pub fn help() -> String {
    let environment = crate::config::keys::environment_help();
    let options = crate::config::keys::options_help();
    format!("{HELP_HEAD}{options}{HELP_AFTER_SETTINGS}{environment}\n{HELP_TAIL}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key table's row for `name`.
    fn key(name: &str) -> Key {
        Setting::named(name).unwrap()
    }

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_from(args.iter().map(OsString::from)).map_err(|e| e.to_string())
    }

    #[test]
    fn dash_h_is_the_short_help_and_long_help_the_full_one() {
        assert_eq!(parse(&["-h"]).unwrap().command, Command::ShortHelp);
        assert_eq!(parse(&["--help"]).unwrap().command, Command::Help);
    }

    #[test]
    fn no_arguments_is_a_probe() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.command, Command::Probe);
        assert!(!args.explain);
    }

    #[test]
    fn settings_keep_their_order() {
        let args = parse(&[
            "--sample-ms",
            "200",
            "--tcp=80:5",
            "--explain",
            "-c",
            "x.json",
        ])
        .unwrap();
        assert_eq!(
            args.settings,
            vec![
                (key("sample_ms"), "200".into()),
                (key("tcp"), "80:5".into())
            ]
        );
        assert!(args.explain);
        assert_eq!(args.config, Some(PathBuf::from("x.json")));
    }

    #[test]
    fn mode_subcommand_forms() {
        assert_eq!(
            parse(&["mode"]).unwrap().command,
            Command::Mode(ModeCommand::Show)
        );
        assert_eq!(
            parse(&["mode", "reset"]).unwrap().command,
            Command::Mode(ModeCommand::Reset)
        );
        assert_eq!(
            parse(&["mode", "maintenance", "--for", "10m"])
                .unwrap()
                .command,
            Command::Mode(ModeCommand::Set {
                mode: Mode::Maint,
                lasting: Some(Duration::from_secs(600))
            })
        );
        assert!(
            parse(&["mode", "sleep"])
                .unwrap_err()
                .contains("unknown mode")
        );
        assert!(parse(&["mode", "--for", "1m"]).is_err());
        assert!(parse(&["--for", "1m"]).is_err());
        assert!(parse(&["mode", "drain", "extra"]).is_err());
    }

    #[test]
    fn unknown_things_are_errors() {
        assert!(parse(&["--colour"]).unwrap_err().contains("--colour"));
        assert!(
            parse(&["frobnicate"])
                .unwrap_err()
                .contains("unknown command")
        );
        assert!(
            parse(&["--sample-ms"])
                .unwrap_err()
                .contains("missing argument")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10 m").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("400d").is_err());
    }

    #[test]
    fn help_mentions_every_flag() {
        for key in Setting::textual() {
            assert!(
                help().contains(&format!("--{}", key.flag())),
                "{}",
                key.flag()
            );
            assert!(help().contains(key.env_var()), "{}", key.env_var());
        }
    }
}
