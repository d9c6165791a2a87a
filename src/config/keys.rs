//! The key table: every setting as one row (its JSON key, environment variable, flag, value,
//! default and help), and how its text form, as the environment and the flags carry it, sets
//! the config. The environment and flag layers, both programs' `--help` option lists and the
//! configuration reference (docs/configuration.md, the man pages) are driven by it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::monitors::{SessionsMonitor, TcpMonitor};
use super::pressure::PressureMonitor;
use super::values::*;
use super::{Config, Origin, Problem};
use crate::cidr::Cidr;

/// The config's fields besides `mode` and the monitors' (`crate::monitors`), in the order the
/// effective config prints them: `name: type = default, file LAYER;`, LAYER the field's type
/// in the JSON file's layer with its serde attributes (`present`: `null` is a value). With
/// [`SETTINGS`] this is the key table: `Config`, its defaults, the file's layer and how the
/// layer lays over the config are built from it, so a new setting is a row here, a row there
/// and the code that uses its value. Hands the rows to the macro `$then`.
macro_rules! fields {
    ($then:ident) => {
        $then! {
            before {
                sample_ms: SampleMs = SampleMs::new_const(1000), file Option<SampleMs>;
            }
            after {
                maxconn: Option<MaxConn> = None,
                    file #[serde(default, deserialize_with = "present")] Option<Option<MaxConn>>;
                recovery: Recovery = Recovery::Window, file Option<Recovery>;
                recovery_seconds: RecoverySeconds = RecoverySeconds::new_const(10),
                    file Option<RecoverySeconds>;
                recovery_replies: RecoveryReplies = RecoveryReplies::new_const(3),
                    file Option<RecoveryReplies>;
                state_dir: PathBuf = default_state_dir(),
                    file #[serde(default, deserialize_with = "state_dir")] Option<PathBuf>;
                /// The user `lb-feedback mode`, run as root, gives the state directory to
                /// when it has to create it (the package's is `lb-feedback`); unset: the
                /// directory stays root's.
                state_owner: Option<UserName> = None,
                    file #[serde(default, deserialize_with = "present")] Option<Option<UserName>>;
                cpu_mode: CpuMode = CpuMode::Sample, file Option<CpuMode>;
                /// since-last mode: saved counters older than this are not used.
                since_last_max_seconds: SinceLastMaxSeconds = SinceLastMaxSeconds::new_const(30),
                    file Option<SinceLastMaxSeconds>;
                /// Selected by the first line HAProxy's `agent-send` sends.
                profiles: BTreeMap<ProfileName, Profile> = BTreeMap::new(),
                    file Option<ProfileMap>;
                /// lb-feedback-service: who may connect (empty: everybody).
                allow: Vec<Cidr> = Vec::new(), file Option<Vec<Cidr>>;
                /// lb-feedback-service: connections answered at once; more are closed
                /// without a reply.
                max_in_flight: MaxInFlight = MaxInFlight::new_const(1024),
                    file Option<MaxInFlight>;
                /// lb-feedback-service: connections answered at once for one peer address.
                max_in_flight_per_source: MaxInFlight = MaxInFlight::new_const(128),
                    file Option<MaxInFlight>;
                scope: Scopes = Scopes { cpu: Scope::Auto, ram: Scope::Auto },
                    file Option<ScopeLayer>;
                log: LogTo = LogTo::None, file Option<LogTo>;
                /// lb-feedback-service: where to serve `/metrics`, `/load`, `/status` and
                /// `/health` (off when `None`).
                http: Option<SocketAddr> = None,
                    file #[serde(default, deserialize_with = "present")] Option<Option<SocketAddr>>;
                /// Points below a threshold where the drain it caused ends (a monitor's
                /// `release` wins).
                hysteresis: Hysteresis = Real(10.0), file Option<Hysteresis>;
                /// The time constant of each monitor's moving average; 0: every reply is
                /// this probe's.
                smoothing_seconds: SmoothingSeconds = SmoothingSeconds::new_const(0),
                    file Option<SmoothingSeconds>;
                /// The least a normal reply says (a drain still drains).
                min_percent: MinPercent = MinPercent::new_const(0), file Option<MinPercent>;
            }
        }
    };
}
pub(crate) use fields;

/// Sets a config field from a text form's parse result.
type Setter = fn(&mut Config, &str, Origin) -> Result<(), Problem>;

/// One setting.
pub struct Setting {
    /// The JSON file's key; `cpu.threshold` is `threshold` in the file's `cpu` object.
    pub name: &'static str,
    pub env: Option<&'static str>,
    pub flag: Option<&'static str>,
    /// What the flag's value is, as `--help` shows it.
    pub metavar: &'static str,
    pub default: &'static str,
    /// The values the file takes, for the configuration reference (Markdown).
    pub allowed: &'static str,
    /// `--help`'s text for the flag, wrapped to fit beside it.
    pub help: &'static str,
    /// The text form's parser; `None` for a setting only the file carries.
    set: Option<Setter>,
}

/// A setting the environment and the flags can carry.
pub type Key = &'static Setting;

impl PartialEq for Setting {
    fn eq(&self, other: &Setting) -> bool {
        self.name == other.name
    }
}

impl Eq for Setting {}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Setting({})", self.name)
    }
}

fn set<T>(field: &mut T, value: Result<T, Problem>) -> Result<(), Problem> {
    *field = value?;
    Ok(())
}

/// Every setting, in the order `--help` and the reference list them and the environment
/// layer reads them.
pub static SETTINGS: &[Setting] = &[
    Setting {
        name: "mode",
        env: Some("LB_FEEDBACK_MODE"),
        flag: Some("mode"),
        metavar: "MODE",
        default: "normal",
        allowed: "`normal`, `drain`, `maint` (`maintenance`), `stop`",
        help: "normal | drain | maint (maintenance) | stop",
        set: Some(|c, text, origin| {
            c.mode = Mode::parse(text)?;
            c.mode_origin = origin;
            Ok(())
        }),
    },
    Setting {
        name: "sample_ms",
        env: Some("LB_FEEDBACK_SAMPLE_MS"),
        flag: Some("sample-ms"),
        metavar: "N",
        default: "1000",
        allowed: "100..10000",
        help: "CPU sample window, 100..10000 ms",
        set: Some(|c, text, _| set(&mut c.sample_ms, SampleMs::parse(text))),
    },
    Setting {
        name: "cpu.importance",
        env: Some("LB_FEEDBACK_CPU_IMPORTANCE"),
        flag: Some("cpu-importance"),
        metavar: "X",
        default: "1",
        allowed: "0..100",
        help: "0..100, 0 leaves CPU out",
        set: Some(|c, text, _| set(&mut c.cpu.importance, Importance::parse(text))),
    },
    Setting {
        name: "cpu.threshold",
        env: Some("LB_FEEDBACK_CPU_THRESHOLD"),
        flag: Some("cpu-threshold"),
        metavar: "X",
        default: "0 (off)",
        allowed: "0..100",
        help: "drain at this CPU %, 0..100, 0 is off",
        set: Some(|c, text, _| set(&mut c.cpu.threshold, Threshold::parse(text))),
    },
    Setting {
        name: "ram.importance",
        env: Some("LB_FEEDBACK_RAM_IMPORTANCE"),
        flag: Some("ram-importance"),
        metavar: "X",
        default: "1",
        allowed: "0..100",
        help: "0..100",
        set: Some(|c, text, _| set(&mut c.ram.importance, Importance::parse(text))),
    },
    Setting {
        name: "ram.threshold",
        env: Some("LB_FEEDBACK_RAM_THRESHOLD"),
        flag: Some("ram-threshold"),
        metavar: "X",
        default: "0 (off)",
        allowed: "0..100",
        help: "drain at this RAM %, 0..100, 0 is off",
        set: Some(|c, text, _| set(&mut c.ram.threshold, Threshold::parse(text))),
    },
    Setting {
        name: "cpu.release",
        env: Some("LB_FEEDBACK_CPU_RELEASE"),
        flag: Some("cpu-release"),
        metavar: "X",
        default: "auto",
        allowed: "0..100, below `cpu.threshold` (`auto` or empty in the environment and flags: threshold − `hysteresis`)",
        help: "a CPU drain lasts until CPU is at or below X %; auto:\nthreshold - hysteresis",
        set: Some(|c, text, _| set(&mut c.cpu.release, parse_release(text))),
    },
    Setting {
        name: "ram.release",
        env: Some("LB_FEEDBACK_RAM_RELEASE"),
        flag: Some("ram-release"),
        metavar: "X",
        default: "auto",
        allowed: "the same for RAM",
        help: "the same for RAM",
        set: Some(|c, text, _| set(&mut c.ram.release, parse_release(text))),
    },
    Setting {
        name: "tcp",
        env: Some("LB_FEEDBACK_TCP"),
        flag: Some("tcp"),
        metavar: "LIST",
        default: "none",
        allowed: "list of `{port, max_connections, importance = 1, threshold = 0, release}`",
        help: "port:max_connections[:importance[:threshold[:release]]],...\nreplaces the config file's tcp list; \"\" clears it",
        set: Some(|c, text, _| set(&mut c.tcp, TcpMonitor::parse_list(text))),
    },
    Setting {
        name: "hysteresis",
        env: Some("LB_FEEDBACK_HYSTERESIS"),
        flag: Some("hysteresis"),
        metavar: "X",
        default: "10",
        allowed: "0..100 points",
        help: "a drain by a threshold lasts until the load is X points\nbelow it (unless the monitor sets release), 0..100",
        set: Some(|c, text, _| set(&mut c.hysteresis, Hysteresis::parse(text))),
    },
    Setting {
        name: "smoothing_seconds",
        env: Some("LB_FEEDBACK_SMOOTHING_SECONDS"),
        flag: Some("smoothing-seconds"),
        metavar: "N",
        default: "0 (off)",
        allowed: "0..3600",
        help: "time constant of each monitor's moving average, 0..3600;\n0 answers with each probe's own figures",
        set: Some(|c, text, _| set(&mut c.smoothing_seconds, SmoothingSeconds::parse(text))),
    },
    Setting {
        name: "min_percent",
        env: Some("LB_FEEDBACK_MIN_PERCENT"),
        flag: Some("min-percent"),
        metavar: "N",
        default: "0",
        allowed: "0..100",
        help: "a normal reply never says less, 0..100",
        set: Some(|c, text, _| set(&mut c.min_percent, MinPercent::parse(text))),
    },
    Setting {
        name: "sessions",
        env: Some("LB_FEEDBACK_SESSIONS"),
        flag: Some("sessions"),
        metavar: "SPEC",
        default: "off",
        allowed: "`{max_sessions (1..1000000), importance = 1, threshold = 0 (0..100000), disconnected = true, release}` or `null`",
        help: "max_sessions[:importance[:threshold[:disconnected]]]: user\nsessions (Windows: WTSEnumerateSessionsW; Linux: logind's\n/run/systemd/sessions) against max_sessions, 1..1000000;\ndisconnected yes (the default: they still hold memory and\nCPU) | no; off or \"\" turns it off",
        set: Some(|c, text, _| set(&mut c.sessions, SessionsMonitor::parse(text))),
    },
    Setting {
        name: "pressure",
        env: Some("LB_FEEDBACK_PRESSURE"),
        flag: Some("pressure"),
        metavar: "LIST",
        default: "none",
        allowed: "list of `{resource (cpu, memory, io), kind = some (some, full), importance = 1, threshold = 0, release}`",
        help: "resource:kind[:importance[:threshold[:release]]],...: the\nshare of the sample window tasks stalled (PSI) on cpu, memory\nor io, some or full; replaces the file's pressure list",
        set: Some(|c, text, _| set(&mut c.pressure, PressureMonitor::parse_list(text))),
    },
    Setting {
        name: "maxconn",
        env: Some("LB_FEEDBACK_MAXCONN"),
        flag: Some("maxconn"),
        metavar: "N",
        default: "none",
        allowed: "1..1000000 or `null` (`none` in the environment and flags)",
        help: "append maxconn:N to the reply, 1..1000000; none clears",
        set: Some(|c, text, _| {
            c.maxconn = match text.trim() {
                "" | "none" => None,
                text => Some(MaxConn::parse(text)?),
            };
            Ok(())
        }),
    },
    Setting {
        name: "recovery",
        env: Some("LB_FEEDBACK_RECOVERY"),
        flag: Some("recovery"),
        metavar: "WHEN",
        default: "window",
        allowed: "`window`, `always`, `never`",
        help: "window (per poller, see RECOVERY) | always | never",
        set: Some(|c, text, _| {
            set(
                &mut c.recovery,
                word("recovery", text, "window, always, never"),
            )
        }),
    },
    Setting {
        name: "recovery_seconds",
        env: Some("LB_FEEDBACK_RECOVERY_SECONDS"),
        flag: Some("recovery-seconds"),
        metavar: "N",
        default: "10",
        allowed: "0..86400",
        help: "a poller owed recovery gets `up ready` for at least this\nlong, 0..86400",
        set: Some(|c, text, _| set(&mut c.recovery_seconds, RecoverySeconds::parse(text))),
    },
    Setting {
        name: "recovery_replies",
        env: Some("LB_FEEDBACK_RECOVERY_REPLIES"),
        flag: Some("recovery-replies"),
        metavar: "N",
        default: "3",
        allowed: "1..1000",
        help: "... and on at least this many replies, 1..1000",
        set: Some(|c, text, _| set(&mut c.recovery_replies, RecoveryReplies::parse(text))),
    },
    Setting {
        name: "state_dir",
        env: Some("LB_FEEDBACK_STATE_DIR"),
        flag: Some("state-dir"),
        metavar: "PATH",
        default: "/var/lib/lb-feedback",
        allowed: "a path (not empty, no NUL byte); Windows default `%ProgramData%\\lb-feedback`",
        help: "runtime mode and recovery state",
        set: Some(|c, text, _| {
            check_state_dir(Path::new(text))?;
            c.state_dir = PathBuf::from(text);
            Ok(())
        }),
    },
    Setting {
        name: "state_owner",
        env: Some("LB_FEEDBACK_STATE_OWNER"),
        flag: Some("state-owner"),
        metavar: "USER",
        default: "none",
        allowed: "a user name, or `null` (empty in the environment and flags)",
        help: "`mode` run as root gives a state directory it has to create\nto this user, the agent's (the package's: lb-feedback)",
        set: Some(|c, text, _| {
            c.state_owner = match text {
                "" => None,
                name => Some(UserName::try_from(name.to_string())?),
            };
            Ok(())
        }),
    },
    Setting {
        name: "cpu_mode",
        env: Some("LB_FEEDBACK_CPU_MODE"),
        flag: Some("cpu-mode"),
        metavar: "MODE",
        default: "sample",
        allowed: "`sample`, `since-last`",
        help: "sample | since-last (answer at once from the CPU counters the\nprevious probe saved, if at most since_last_max_seconds\nold, 30 by default; else sample; a probe within 250 ms\nof the previous one repeats its figure)",
        set: Some(|c, text, _| {
            set(
                &mut c.cpu_mode,
                word("cpu mode", text, "sample, since-last"),
            )
        }),
    },
    Setting {
        name: "since_last_max_seconds",
        env: None,
        flag: None,
        metavar: "",
        default: "30",
        allowed: "1..3600",
        help: "since-last mode: saved CPU counters older than this are not used",
        set: None,
    },
    Setting {
        name: "allow",
        env: Some("LB_FEEDBACK_ALLOW"),
        flag: Some("allow"),
        metavar: "LIST",
        default: "everybody",
        allowed: "addresses/ranges, e.g. `[\"10.0.0.0/8\", \"::1\"]`",
        help: "lb-feedback-service: addresses or ranges that may connect,\ne.g. 10.0.0.0/8,::1; IPv4 ranges also match IPv4-mapped\nIPv6 peers; empty allows all",
        set: Some(|c, text, _| {
            c.allow = text
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(Cidr::parse)
                .collect::<Result<_, _>>()
                .map_err(Problem::Range)?;
            Ok(())
        }),
    },
    Setting {
        name: "max_in_flight",
        env: Some("LB_FEEDBACK_MAX_IN_FLIGHT"),
        flag: Some("max-in-flight"),
        metavar: "N",
        default: "1024",
        allowed: "1..10000",
        help: "lb-feedback-service: connections answered at once, 1..10000;\nmore are closed without a reply (one descriptor each: the\nopen-files limit is raised to fit if the hard limit\nallows, else logged)",
        set: Some(|c, text, _| set(&mut c.max_in_flight, MaxInFlight::parse(text))),
    },
    Setting {
        name: "max_in_flight_per_source",
        env: Some("LB_FEEDBACK_MAX_IN_FLIGHT_PER_SOURCE"),
        flag: Some("max-in-flight-per-source"),
        metavar: "N",
        default: "128",
        allowed: "1..10000",
        help: "lb-feedback-service: of those, from one address, 1..10000;\nas many more from it wait for a slot, up to 1 s, before\nthey are closed without a reply; at least the server lines\none load balancer points here (HAProxy runs one check per\nserver line at a time)",
        set: Some(|c, text, _| set(&mut c.max_in_flight_per_source, MaxInFlight::parse(text))),
    },
    Setting {
        name: "scope",
        env: Some("LB_FEEDBACK_SCOPE"),
        flag: Some("scope"),
        metavar: "SCOPE",
        default: "auto",
        allowed: "`auto`, `host`, `cgroup`, or per monitor `{\"cpu\": .., \"ram\": ..}` (`cpu=cgroup,ram=host` in the environment and flags)",
        help: "whose CPU and RAM: auto (the cgroup's when it has a CPU\nquota or cpuset / a memory limit, else the host's) | host |\ncgroup; or per monitor, cpu=SCOPE,ram=SCOPE",
        set: Some(|c, text, _| {
            c.scope = c.scope.parse(text)?;
            Ok(())
        }),
    },
    Setting {
        name: "log",
        env: Some("LB_FEEDBACK_LOG"),
        flag: Some("log"),
        metavar: "WHERE",
        default: "none",
        allowed: "`none`, `syslog`",
        help: "none | syslog: the history's changes (see `status`) also go\nto /dev/log (Windows: the Application event log);\nlb-feedback-service always logs them to its own log",
        set: Some(|c, text, _| set(&mut c.log, word("log", text, "none, syslog"))),
    },
    Setting {
        name: "http",
        env: Some("LB_FEEDBACK_HTTP"),
        flag: Some("http"),
        metavar: "ADDR:PORT",
        default: "off",
        allowed: "`\"ADDR:PORT\"` (IPv6 in brackets) or `null` (`off` or empty in the environment and flags)",
        help: "lb-feedback-service: also serve /metrics (Prometheus), /load,\n/status and /health over HTTP here, e.g. 127.0.0.1:3334;\nallow and max_in_flight_per_source apply, at most 64\nrequests at once",
        set: Some(|c, text, _| set(&mut c.http, parse_http(text))),
    },
    Setting {
        name: "custom",
        env: None,
        flag: None,
        metavar: "",
        default: "none",
        allowed: "list of `{name, command | file | http, json_pointer, max = 100, importance = 1, threshold = 0, release, timeout_ms = sample_ms, max_age_seconds (file), on_error = error | ignore}`, at most 32",
        help: "monitors whose value comes from a command, a file or a local HTTP endpoint (the file only)",
        set: None,
    },
    Setting {
        name: "profiles",
        env: None,
        flag: None,
        metavar: "",
        default: "none",
        allowed: "name → partial config (`cpu`, `ram`, `tcp`, `sessions`, `custom`, `maxconn`), at most 1,000",
        help: "what a load balancer's agent-send selects (the file only)",
        set: None,
    },
];

impl Setting {
    /// The setting named `name` (its JSON key); tests and callers that know it.
    pub fn named(name: &str) -> Option<Key> {
        SETTINGS.iter().find(|s| s.name == name)
    }

    pub fn from_flag(flag: &str) -> Option<Key> {
        SETTINGS
            .iter()
            .find(|s| s.set.is_some() && s.flag == Some(flag))
    }

    /// The settings the environment and the flags carry.
    pub fn textual() -> impl Iterator<Item = Key> {
        SETTINGS.iter().filter(|s| s.set.is_some())
    }

    pub fn env_var(&self) -> &'static str {
        self.env.unwrap_or_default()
    }

    pub fn flag(&self) -> &'static str {
        self.flag.unwrap_or_default()
    }
}

impl Config {
    /// Sets one key from its text form, as the environment and the flags carry it.
    pub fn apply_text(&mut self, key: Key, text: &str, origin: Origin) -> Result<(), Problem> {
        match key.set {
            Some(set) => set(self, text, origin),
            None => Err(Problem::FileOnly { key: key.name }),
        }
    }
}

/// The column where `--help` starts an option's text.
const HELP_COLUMN: usize = 31;
const HELP_WIDTH: usize = 92;
const DEFAULT_END: usize = 79;

/// `--help`'s lines for every setting a flag carries, from the key table.
pub fn options_help() -> String {
    let mut out = String::new();
    for setting in Setting::textual() {
        let left = format!("        --{} {}", setting.flag(), setting.metavar);
        let mut lines: Vec<String> = setting.help.lines().map(str::to_string).collect();
        let default = format!("[{}]", setting.default);
        if let Some(last) = lines.last_mut() {
            // Right-aligned at column 79 where it fits, as the hand-written text had it.
            let width = HELP_COLUMN + last.len() + default.len();
            last.push_str(&" ".repeat(DEFAULT_END.saturating_sub(width).max(2)));
            last.push_str(&default);
        }
        let mut first = true;
        if left.len() >= HELP_COLUMN {
            out.push_str(&left);
            out.push('\n');
            first = false;
        }
        for line in lines {
            if first {
                out.push_str(&format!("{left:<HELP_COLUMN$}{line}\n"));
                first = false;
            } else {
                out.push_str(&format!("{:HELP_COLUMN$}{line}\n", ""));
            }
        }
    }
    out
}

/// `--help`'s paragraph naming every environment variable, from the key table.
pub fn environment_help() -> String {
    let mut names: Vec<&str> = Setting::textual().map(|s| s.env_var()).collect();
    names.push("LB_FEEDBACK_CONFIG");
    let mut out = String::from(
        "    Every option can also come from the environment, for systemd Environment= and xinetd\n    env =:",
    );
    let mut column = out.len() - out.rfind('\n').unwrap_or(0) - 1;
    for (i, name) in names.iter().enumerate() {
        let word = if i + 1 == names.len() {
            format!("{name}.")
        } else {
            format!("{name},")
        };
        if column + 1 + word.len() > HELP_WIDTH {
            out.push_str("\n   ");
            column = 3;
        }
        out.push(' ');
        out.push_str(&word);
        column += 1 + word.len();
    }
    out.push_str("\n    File-only keys (see lb-feedback.json(5)): ");
    let file_only: Vec<&str> = SETTINGS
        .iter()
        .filter(|s| s.set.is_none())
        .map(|s| s.name)
        .collect();
    out.push_str(&file_only.join(", "));
    out.push_str(".\n    Precedence: built-in defaults < config file < environment < flags.\n");
    out
}
