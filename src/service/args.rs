//! `lb-feedback-service`'s command line: the command, `--listen`, `--verbose`, and the same
//! `--config` and settings flags as `lb-feedback` (parsed into the same `config::Key`s, so the
//! environment and the config file layer exactly as they do for the one-shot binary).

use std::ffi::OsString;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::config::{Key, Setting};

/// HAProxy's examples and the agent this project replaces use port 3333.
pub const DEFAULT_PORT: u16 = 3333;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// The listener in the foreground, on any OS.
    Run,
    /// Windows: register with the Service Control Manager.
    Install,
    Uninstall,
    Start,
    Stop,
    /// Windows: the entry point the Service Control Manager starts (what `install` registers).
    Scm,
    Help,
    /// `-h`: the short help.
    ShortHelp,
    Version,
}

impl Command {
    const NAMES: &'static str = "run, install, uninstall, start, stop, help";

    fn parse(word: &str) -> Result<Command, String> {
        Ok(match word {
            "run" => Command::Run,
            "install" => Command::Install,
            "uninstall" => Command::Uninstall,
            "start" => Command::Start,
            "stop" => Command::Stop,
            "scm" => Command::Scm,
            "help" => Command::Help,
            other => {
                return Err(format!(
                    "unknown command {other:?}; commands: {}",
                    Command::NAMES
                ));
            }
        })
    }
}

/// Where the service's own log goes under the Service Control Manager (`--service-log`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceLog {
    /// The Application event log, source `lb-feedback`: where Windows admins and their
    /// collectors (Event Viewer, WEF, agents) look first.
    #[default]
    EventLog,
    /// `%ProgramData%\lb-feedback\service.log`, moved to `.old` at 1 MiB.
    File,
}

impl ServiceLog {
    fn parse(text: &str) -> Result<ServiceLog, String> {
        match text {
            "eventlog" => Ok(ServiceLog::EventLog),
            "file" => Ok(ServiceLog::File),
            other => Err(format!(
                "--service-log {other:?}: expected eventlog or file"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ServiceLog::EventLog => "eventlog",
            ServiceLog::File => "file",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub config: Option<PathBuf>,
    /// Settings given as flags, in order; they win over the file and the environment.
    pub settings: Vec<(Key, String)>,
    /// Empty: the defaults, see [`default_listen`].
    pub listen: Vec<SocketAddr>,
    pub verbose: bool,
    /// `None`: not given, [`ServiceLog::default`].
    pub service_log: Option<ServiceLog>,
}

/// `0.0.0.0:3333` and `[::]:3333`: every IPv4 and every IPv6 address.
pub fn default_listen() -> Vec<SocketAddr> {
    vec![
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, DEFAULT_PORT)),
    ]
}

pub fn parse_args() -> Result<Args, lexopt::Error> {
    parse_from(std::env::args_os().skip(1))
}

pub fn parse_from<I: IntoIterator<Item = OsString>>(args: I) -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_args(args);
    let mut command = None;
    let mut asked = None;
    let mut config = None;
    let mut settings = Vec::new();
    let mut listen = Vec::new();
    let mut verbose = false;
    let mut service_log = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') => asked = Some(Command::ShortHelp),
            Long("help") => asked = Some(Command::Help),
            Short('V') | Long("version") => asked = Some(Command::Version),
            Short('c') | Long("config") => config = Some(PathBuf::from(parser.value()?)),
            Short('l') | Long("listen") => listen.push(parse_listen(&parser.value()?.string()?)?),
            Short('v') | Long("verbose") => verbose = true,
            Long("service-log") => {
                service_log = Some(ServiceLog::parse(&parser.value()?.string()?)?);
            }
            Long(flag) if Setting::from_flag(flag).is_some() => {
                // Settings flags share their names with the config keys (config::Key).
                if let Some(key) = Setting::from_flag(flag) {
                    settings.push((key, parser.value()?.string()?));
                }
            }
            Value(value) if command.is_none() => {
                command = Some(Command::parse(&value.string()?)?);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    let command = match (asked, command) {
        (Some(asked), _) => asked,
        (None, Some(command)) => command,
        (None, None) => {
            return Err(format!("a command is needed: {}", Command::NAMES).into());
        }
    };
    Ok(Args {
        command,
        config,
        settings,
        listen,
        verbose,
        service_log,
    })
}

/// `ADDR:PORT`, IPv6 in brackets: `127.0.0.1:3333`, `[::]:3333`.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "--listen {text:?}: expected ADDR:PORT, e.g. 0.0.0.0:3333, 10.0.0.5:3333 or [::]:3333"
        )
    })
}

impl Args {
    /// The addresses to listen on: the ones given, else [`default_listen`].
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        match self.listen.is_empty() {
            true => default_listen(),
            false => self.listen.clone(),
        }
    }

    /// The options again as arguments, for the command line `install` registers. The config
    /// path is made absolute against `cwd`: a service starts in `C:\Windows\System32`.
    pub fn options(&self, cwd: &std::path::Path) -> Vec<OsString> {
        let mut out = Vec::new();
        if let Some(config) = &self.config {
            out.push(OsString::from("--config"));
            out.push(cwd.join(config).into_os_string());
        }
        for (key, value) in &self.settings {
            out.push(OsString::from(format!("--{}={value}", key.flag())));
        }
        for addr in &self.listen {
            out.push(OsString::from(format!("--listen={addr}")));
        }
        if self.verbose {
            out.push(OsString::from("--verbose"));
        }
        if let Some(service_log) = self.service_log {
            out.push(OsString::from(format!(
                "--service-log={}",
                service_log.name()
            )));
        }
        out
    }
}

/// `--help` up to the settings' options.
const HELP_HEAD: &str = "\
lb-feedback-service - answer HAProxy's agent-check on a TCP port, without xinetd

USAGE
    lb-feedback-service run [OPTIONS]      listen in the foreground (any OS)
    lb-feedback-service install [OPTIONS]  Windows: register the service (run as administrator)
    lb-feedback-service start | stop       Windows: start or stop the installed service
    lb-feedback-service uninstall          Windows: stop and remove the service
    lb-feedback-service --help | --version

DESCRIPTION
    The same replies as lb-feedback (same config file, environment, flags and rules), served
    from one long-running process. Each connection, in order:
      1. a peer outside `allow` is closed without a reply;
      2. beyond `max_in_flight` connections at once, closed without a reply; beyond
         `max_in_flight_per_source` from its address, it waits for a slot (as many again
         from that address, 1024 in all, for at most 1 s), then is closed without a reply.
         The last free slots (max_in_flight_per_source, at most an eighth of max_in_flight)
         are kept for addresses with nothing in flight, so a flood from one address cannot
         keep other load balancers out;
      3. drain, maint or stop answer at once, without sampling;
      4. while polls keep coming the service measures consecutive windows of sample_ms
         (CPU, RAM, TCP, sessions, custom sources) and answers at once from the last
         complete one, so N load balancers cost one reading a window; the first poll after
         a minute without any (or the very first) waits for a fresh window, and the probes
         arriving meanwhile share it;
         when the config has profiles it meanwhile reads agent-send's line (1 KiB at most),
         waiting for it until the sample's window ends or 200 ms after connecting, whichever
         is later; without profiles agent-send selects nothing;
      5. it answers one line, half-closes, drains what the peer still sends (at most 0.5 s)
         and closes, so HAProxy sees a FIN, never a reset.
    Each connection has a deadline of sample_ms + 2 s: a client that sends nothing or never
    reads cannot hold a slot past it.

    Custom monitors (the config file's \"custom\" list; never from the environment, a flag
    or agent-send) are read once a sample window with CPU, RAM and TCP, not once a poll;
    keep their timeout_ms within sample_ms + 1 s. A source is logged when it starts
    failing and when it answers again, not once a window while it stays down.

    After editing the config file, reload it: SIGHUP (`systemctl reload`, `kill -HUP`), on
    Windows `sc control lb-feedback paramchange`. A valid file answers the next polls; a
    broken one is logged (file, line, column) and the old config stays. sample_ms,
    max_in_flight, max_in_flight_per_source, http and the command line need a restart. The
    runtime mode (`lb-feedback mode drain`) is read on every connection: no reload needed.

COMMANDS
    run          listen until SIGTERM or Ctrl-C, then finish the replies in flight (at most
                 sample_ms + 2.5 s, then 0.5 s for the last log lines) and exit 0
    install      Windows: create the service `lb-feedback`: automatic start, running as
                 NT AUTHORITY\\LocalService, restarted by the Service Control Manager 5 s,
                 30 s and 60 s after a failure. The options given here (--listen, --config,
                 settings flags, --verbose, --service-log) become the service's command
                 line; the config file is checked now. Gives LocalService write access to
                 the state directory; registers the Event Log source lb-feedback.
    start, stop  Windows: start or stop the installed service and wait until it has
    uninstall    Windows: stop the service if it runs, then remove it and its Event Log
                 source
    scm          Windows: the entry point the Service Control Manager starts; not for a prompt

OPTIONS
    -l, --listen ADDR:PORT     listen here; repeatable. IPv6 in brackets: [::1]:3333.
                               [0.0.0.0:3333 and [::]:3333; an IPv6 listener serves IPv6
                               only. Of the two defaults, one that cannot be bound (a host
                               without IPv6) is logged and skipped; a given address that
                               cannot be bound is an error]
    -v, --verbose              also log the listening addresses, one line per sample (its
                               number, duration and how many probes shared it) and the stop
        --service-log WHERE    Windows, under the Service Control Manager: eventlog (the
                               Application event log, source lb-feedback) | file
                               (%ProgramData%\\lb-feedback\\service.log)    [eventlog]
    -c, --config PATH          JSON config file (default /etc/lb-feedback/config.json, on
                               Windows %ProgramData%\\lb-feedback\\config.json, or
                               LB_FEEDBACK_CONFIG); a regular file (a symlink to one is
                               fine) of at most 1 MiB
";

/// `--help` after the settings' options.
const HELP_AFTER_SETTINGS: &str =
    "    -h                         the short help;  --help  this text
    -V, --version              the version

";

/// `--help` from HTTP on.
const HELP_TAIL: &str = "\
HTTP
    With --http ADDR:PORT, one request per connection (HTTP/1.0 or 1.1, GET or HEAD):
      /metrics   Prometheus text: the reply as figures (lb_feedback_reply_percent, a
                 state gauge), each monitor's load, importance and threshold, the
                 sample, polls answered and refused, pollers, build info
      /load      one integer line for adaptive load balancers (Kemp LoadMaster's agent):
                 0..100 busy (100 - the idle percent HAProxy gets), 101 stopped,
                 102 drain or maint; 503 with error:WHAT when the probe fails
      /status    the `lb-feedback status --json` document
      /health    200 `ok` while the service answers
    A peer outside `allow` is closed unanswered; request heads over 8 KiB (or 64 header
    lines) get 431; each connection has the agent port's deadline (sample_ms + 2 s).
    HTTP clients have slots of their own: they never take the agent port's.

LOGS
    One line per problem (a failed sample, a reply that could not be delivered, a bad
    runtime-mode file, a config reload) and per change of what a poller is told, on stderr.
    Under the Windows Service Control Manager, by default, the Application event log, source
    lb-feedback (Event Viewer > Windows Logs > Application): problems as warnings, a start
    that failed as an error, the start, the stop and the changes as information; with
    --service-log file, %ProgramData%\\lb-feedback\\service.log (moved to service.log.old at
    1 MiB) instead. When the event log cannot be opened the file is used. Never on the
    socket. Refused peers (allow, the limits) are told by address: the first 5 of each
    10 s as they come, then one total per address (\"refused 5123 more connections from
    192.0.2.7 in the last 10 s: max_in_flight_per_source\"), a few lines a window however
    many. Logging never holds up a connection: lines wait in a queue of 256 for the writer;
    when a stalled stderr fills it, later lines are dropped and their count logged.

EXIT STATUS
    0   stopped cleanly (or the command succeeded)
    1   could not listen, or a Service Control Manager call failed
    2   bad config or usage

EXAMPLES
    lb-feedback-service run --listen 127.0.0.1:3333 --verbose
    socat - TCP:127.0.0.1:3333                          what HAProxy gets
    lb-feedback-service run --allow 10.0.0.0/8,::1 --tcp 3389:50
    lb-feedback-service install --tcp 3389:50            (Windows, elevated prompt)
    lb-feedback-service start
    netsh advfirewall firewall add rule name=\"lb-feedback\" dir=in action=allow protocol=TCP localport=3333
    lb-feedback mode drain --for 15m                    drain this server, no restart
";

/// The full `--help`: the settings' options and environment variables come from the key
/// table, the same rows as `lb-feedback --help`.
pub fn help() -> String {
    let environment = crate::config::keys::environment_help();
    let options = crate::config::keys::options_help();
    format!("{HELP_HEAD}{options}{HELP_AFTER_SETTINGS}{environment}\n{HELP_TAIL}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_short_helps_service_options_are_real() {
        for flag in ["--listen", "--allow", "--http", "--verbose"] {
            assert!(crate::short_help::SERVICE.contains(flag), "{flag}");
            assert!(help().contains(flag), "{flag}");
        }
    }

    use super::*;

    /// The key table's row for `name`.
    fn key(name: &str) -> Key {
        Setting::named(name).unwrap()
    }

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_from(args.iter().map(OsString::from)).map_err(|e| e.to_string())
    }

    #[test]
    fn run_with_listen_settings_and_config() {
        let args = parse(&[
            "run",
            "--listen",
            "127.0.0.1:3333",
            "-l",
            "[::1]:4444",
            "--sample-ms=200",
            "-c",
            "x.json",
            "-v",
        ])
        .unwrap();
        assert_eq!(args.command, Command::Run);
        assert_eq!(
            args.listen,
            vec![
                "127.0.0.1:3333".parse().unwrap(),
                "[::1]:4444".parse().unwrap()
            ]
        );
        assert_eq!(args.settings, vec![(key("sample_ms"), "200".into())]);
        assert_eq!(args.config, Some(PathBuf::from("x.json")));
        assert!(args.verbose);
        assert_eq!(args.listen_addrs(), args.listen);
    }

    #[test]
    fn defaults_are_both_families_on_3333() {
        let args = parse(&["run"]).unwrap();
        assert_eq!(
            args.listen_addrs(),
            vec![
                "0.0.0.0:3333".parse().unwrap(),
                "[::]:3333".parse().unwrap()
            ]
        );
    }

    #[test]
    fn mistakes_are_errors() {
        assert!(parse(&[]).unwrap_err().contains("a command is needed"));
        assert!(parse(&["serve"]).unwrap_err().contains("unknown command"));
        assert!(
            parse(&["run", "--listen", "3333"])
                .unwrap_err()
                .contains("expected ADDR:PORT")
        );
        assert!(parse(&["run", "--listen", "::1:3333"]).is_err());
        assert!(parse(&["run", "--explain"]).is_err());
        assert!(parse(&["run", "extra"]).is_err());
        assert!(
            parse(&["install", "--service-log", "syslog"])
                .unwrap_err()
                .contains("expected eventlog or file")
        );
        assert_eq!(parse(&["run"]).unwrap().service_log, None);
        assert_eq!(parse(&["--help"]).unwrap().command, Command::Help);
        assert_eq!(parse(&["-h"]).unwrap().command, Command::ShortHelp);
        assert_eq!(parse(&["run", "-V"]).unwrap().command, Command::Version);
    }

    #[test]
    fn options_round_trip_for_the_registered_command_line() {
        let args = parse(&[
            "install",
            "--config",
            "conf/lb.json",
            "--tcp",
            "3389:50",
            "--listen",
            "[::]:3333",
            "--verbose",
            "--service-log",
            "file",
        ])
        .unwrap();
        let cwd = std::env::temp_dir();
        let options = args.options(&cwd);
        let mut again = vec![OsString::from("scm")];
        again.extend(options);
        let parsed = parse_from(again).unwrap();
        assert_eq!(parsed.command, Command::Scm);
        assert_eq!(parsed.config, Some(cwd.join("conf/lb.json")));
        assert_eq!(parsed.settings, args.settings);
        assert_eq!(parsed.listen, args.listen);
        assert!(parsed.verbose);
        assert_eq!(parsed.service_log, Some(ServiceLog::File));
    }

    #[test]
    fn help_mentions_every_setting() {
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
