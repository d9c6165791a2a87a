//! `lb-feedback`: answers one HAProxy agent-check poll (the inetd way, or by hand), validates
//! the settings, sets the runtime mode, or shows the pollers and what they were told.
//!
//! Exit codes:
//! - 0: the reply was given, or the command did what it was asked;
//! - 1: a figure or the state directory could not be read or written (the reply was
//!   `error:<what>`), or by hand, stdout could not be written (`>/dev/full`);
//! - 2: bad config or usage (the reply was `error:config`, on stdout even for a usage error
//!   by hand; the message went to stderr).
//!
//! When stdio is a socket nothing is written to stderr: xinetd connects stderr to the socket,
//! and a stray byte there would reach HAProxy ahead of the reply. On Linux a stderr that is a
//! socket is pointed at /dev/null first thing, so not even a message Rust's runtime prints
//! itself (a failed allocation, a panic) can get there. A stderr that cannot be written
//! (`2>/dev/full`, a closed pipe) changes nothing: the exit code stays as above.
//!
//! On Linux the process starts at the C `main` below (`#![no_main]`), not at std's runtime
//! set-up: that set-up locates the main thread's stack guard with `pthread_getattr_np`, which
//! parses `/proc/self/maps` and costs a probe 43 k instructions statically linked and 107 k
//! dynamically, a third of all it does either way (docs/BENCHMARKS.md). Two things it did are kept by hand: closed standard descriptors are
//! pointed at /dev/null and SIGPIPE is ignored. Dropped: the "has overflowed its stack"
//! message (an overflow is still stopped by the guard page, as a plain SIGSEGV) and the
//! final flush of stdout (`print` flushes each write itself).
#![cfg_attr(target_os = "linux", no_main)]

use std::io::Write;
#[cfg(not(target_os = "linux"))]
use std::process::ExitCode;
use std::time::Instant;

use lb_feedback::cli::{self, Args, Command, ModeCommand};
use lb_feedback::clock;
use lb_feedback::config::{self, Config, ConfigError, Mode};
use lb_feedback::explain;
use lb_feedback::probe::{self, Caller};
use lb_feedback::reply;
use lb_feedback::socket;
use lb_feedback::state::history::{Change, Event};
use lb_feedback::state::{self, RuntimeMode, StateDir};
use lb_feedback::status;

/// A probe lives for one poll: its memory comes from an arena and is never given back to a
/// heap (`lb_feedback::arena`; 1 MiB, then the system allocator).
#[global_allocator]
static ARENA: lb_feedback::arena::Arena<{ 1 << 20 }> = lb_feedback::arena::Arena::new();

/// What went wrong, rendered once, on stderr, when nobody is on the socket.
enum Failure {
    Usage(String),
    Config(ConfigError),
    Runtime(String),
    /// Exit 1 with nothing to say (stdout was a pipe closed by its reader).
    Silent,
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Runtime(_) | Failure::Silent => 1,
            Failure::Usage(_) | Failure::Config(_) => 2,
        }
    }

    fn message(&self) -> Option<String> {
        match self {
            Failure::Usage(message) => Some(format!("{message}\nTry 'lb-feedback --help'.")),
            Failure::Config(err) => Some(err.to_string()),
            Failure::Runtime(message) => Some(message.clone()),
            Failure::Silent => None,
        }
    }
}

/// The Linux entry point, called by the C runtime in place of std's.
#[cfg(target_os = "linux")]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    for fd in 0..=2 {
        // SAFETY: fcntl(F_GETFD) only asks about a descriptor; open gets a constant path.
        unsafe {
            // A descriptor inetd or a parent left closed would otherwise be reused by the
            // first file opened, and a reply meant for stdout could land in a state file.
            // open() takes the lowest free descriptor, so this one. Best effort: without
            // /dev/null there is nothing better to point it at.
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                libc::open64(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
    }
    silence_socket_stderr();
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    // A peer gone before the reply then makes the write fail (and be ignored), as under std,
    // instead of killing the process.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    libc::c_int::from(run_main())
}

/// Under xinetd stderr is the connection to HAProxy: point it at /dev/null before anything
/// can write there. Best effort, like the loop above: without /dev/null it stays as it was.
#[cfg(target_os = "linux")]
fn silence_socket_stderr() {
    // open64 and fstat64, the names std calls them by: each other name would be one more symbol
    // for the plain build's dynamic loader to look up, 0.7 k instructions a probe.
    // SAFETY: fstat64 fills a local struct; open, dup2 and close act on descriptors this
    // process owns, and nothing else runs yet.
    unsafe {
        let mut stat: libc::stat64 = std::mem::zeroed();
        if libc::fstat64(2, &mut stat) == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFSOCK {
            let null = libc::open64(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null >= 0 {
                libc::dup2(null, 2);
                libc::close(null);
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() -> ExitCode {
    ExitCode::from(run_main())
}

/// Everything a run does; returns the exit code.
fn run_main() -> u8 {
    let quiet = socket::stdio_is_socket();
    let result = match cli::parse_args() {
        Ok(args) => run(args),
        Err(err) => {
            // HAProxy still gets its one line, over the connection on stdin or on a stdout
            // that is a socket of some other kind (socat's EXEC, a systemd unit with only
            // StandardOutput=socket), so the reply is on stdout whatever it is, as for a
            // broken config; by hand the message on stderr says the rest.
            drop(deliver(
                &reply::error_line(lb_feedback::words::CONFIG),
                connection(),
            ));
            Err(Failure::Usage(err.to_string()))
        }
    };
    match result {
        Ok(()) => 0,
        Err(failure) => {
            if let Some(message) = failure.message().filter(|_| !quiet) {
                // eprintln! would panic (and so abort) on a stderr that cannot be written.
                let _ = writeln!(std::io::stderr(), "lb-feedback: {message}");
            }
            failure.code()
        }
    }
}

fn run(args: Args) -> Result<(), Failure> {
    match args.command {
        Command::Help => print(&cli::help()),
        Command::ShortHelp => print(lb_feedback::short_help::LB_FEEDBACK),
        Command::Version => print(&format!("lb-feedback {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Probe => run_probe(&args),
        Command::CheckConfig => {
            let config = load_config(&args).map_err(Failure::Config)?;
            let config = match &args.profile {
                Some(name) => profiled(&config, name)?,
                None => config,
            };
            let json = serde_json::to_string_pretty(&config)
                .map_err(|err| Failure::Runtime(err.to_string()))?;
            // On stderr: stdout stays the config's JSON for scripts. A warning, not a
            // failure: the agent answers all the same.
            let state_dir = state::StateDir::new(&config.state_dir);
            let unreadable = probe::Needs::of(&config).warnings(&config, &state_dir);
            let unusable = state::unusable(&config).map(|problem| problem.to_string());
            for problem in unusable.into_iter().chain(unreadable) {
                let _ = writeln!(std::io::stderr(), "lb-feedback: warning: {problem}");
            }
            print(&format!("{json}\n"))
        }
        Command::Mode(ref command) => {
            let config = load_config(&args).map_err(Failure::Config)?;
            run_mode(&config, command)
        }
        Command::Status(options) => {
            let config = load_config(&args).map_err(Failure::Config)?;
            let text = status::render(&config, clock::now_ms(), options);
            print(&text.map_err(|err| Failure::Runtime(err.to_string()))?)
        }
    }
}

fn load_config(args: &Args) -> Result<Config, ConfigError> {
    config::load_from_environment(args.config.as_deref(), &args.settings)
}

fn run_probe(args: &Args) -> Result<(), Failure> {
    let connection = connection();
    let caller = match &connection {
        Some(connection) => Caller::Haproxy {
            peer: connection.peer(),
        },
        None => Caller::Person,
    };
    let config = match load_config(args) {
        Ok(config) => config,
        Err(err) => {
            drop(deliver(
                &reply::error_line(lb_feedback::words::CONFIG),
                connection,
            ));
            return Err(Failure::Config(err));
        }
    };
    // The connection lives in a cell because both closures read from it, one at a time.
    let connection = std::cell::RefCell::new(connection);
    let mut wait = |deadline: Instant| {
        if let Some(connection) = connection.borrow_mut().as_mut() {
            connection.read_request(deadline);
        }
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    };
    // By hand, --profile stands for agent-send; on a socket the load balancer's counts.
    let chosen = match (&args.profile, caller) {
        (Some(name), Caller::Person) => {
            profiled(&config, name)?;
            Some(name.clone())
        }
        _ => None,
    };
    let mut request = |deadline: Instant| {
        if chosen.is_some() {
            return chosen.clone();
        }
        let mut connection = connection.borrow_mut();
        let bytes = connection.as_mut()?.read_request(deadline);
        socket::request_line(bytes)
    };
    let outcome = probe::run(&config, caller, args.explain, &mut wait, &mut request);
    let connection = connection.into_inner();
    let line = match &outcome {
        Ok(report) if args.explain && caller == Caller::Person => {
            let state = state::unusable(&config).map(|problem| problem.to_string());
            return match args.json {
                true => print(&format!("{:#}\n", explain::json(report, state.as_deref()))),
                false => print(&explain::render(report, state.as_deref())),
            };
        }
        Ok(report) => report.line.clone(),
        Err(err) => err.line(),
    };
    let (delivered, written) = deliver(&line, connection);
    // A reply the poller may never have read does not count toward its recovery.
    if let (false, Ok(report)) = (delivered, &outcome)
        && let Some(undo) = &report.recovery.undo
    {
        StateDir::new(&config.state_dir).undo(undo);
    }
    outcome
        .map(drop)
        .map_err(|err| Failure::Runtime(err.to_string()))?;
    written
}

/// `--profile NAME`: the config a poller whose agent-send names it is answered with; an
/// unknown name is the reply such a poller gets, `error:profile`, and the names there are.
fn profiled(config: &Config, name: &str) -> Result<Config, Failure> {
    config.with_profile(name).ok_or_else(|| {
        drop(print(&reply::error_line(lb_feedback::words::PROFILE)));
        let known: Vec<&str> = config.profiles.keys().map(|p| p.as_str()).collect();
        let known = match known.is_empty() {
            true => "the config has none".to_string(),
            false => format!("the config's profiles: {}", known.join(", ")),
        };
        Failure::Runtime(format!("--profile {name:?}: no such profile; {known}"))
    })
}

/// The poll's connection, when xinetd or systemd handed one over as stdin.
#[cfg(unix)]
fn connection() -> Option<socket::Inetd> {
    socket::Inetd::from_stdio()
}

/// Elsewhere the wrapper service owns the sockets; this binary only runs by hand.
#[cfg(not(unix))]
fn connection() -> Option<socket::Inetd> {
    None
}

/// The reply: on the connection with a clean close, or on plain stdout; whether it reached a
/// peer that can have read it (stdout that is no socket: always, a person is not a poller),
/// and whether writing plain stdout failed.
fn deliver(line: &str, connection: Option<socket::Inetd>) -> (bool, Result<(), Failure>) {
    match connection {
        // A reply a peer could not take is no failure of the probe: it was answered.
        Some(connection) => (connection.finish(line.as_bytes()).is_ok(), Ok(())),
        None => (true, print(line)),
    }
}

fn run_mode(config: &Config, command: &ModeCommand) -> Result<(), Failure> {
    let owner = config.state_owner.as_ref().map(|user| user.as_str());
    let state = StateDir::new(&config.state_dir).owned_by(owner);
    let now = clock::now_ms();
    let stored = |result: Result<(), state::StateError>| {
        result.map_err(|err| {
            Failure::Runtime(format!(
                "cannot store the runtime mode: {err}\n(run it as root or as the user the agent runs as)"
            ))
        })
    };
    // What counted before, for the history's record of the change.
    let was = probe::effective_mode(config, &state, now)
        .ok()
        .map(|(mode, _)| mode);
    match command {
        ModeCommand::Show => {
            let (mode, from) = probe::effective_mode(config, &state, now)
                .map_err(|err| Failure::Runtime(format!("state directory: {err}")))?;
            print(&format!("{} ({from})\n", mode.name()))
        }
        ModeCommand::Set { mode, lasting } => {
            let runtime = RuntimeMode {
                mode: *mode,
                set_at_ms: now,
                until_ms: lasting.map(|d| now + d.as_millis() as u64),
            };
            stored(state.set_runtime_mode(Some(&runtime)))?;
            let until = match lasting {
                Some(d) => format!(" for {}", clock::human_duration(d.as_millis() as u64)),
                None => " until changed".into(),
            };
            let how = format!("lb-feedback mode {}{until}", mode.name());
            owe_recovery(config, &state, now, mode_event(now, was, *mode, how));
            print(&format!(
                "{}{until} (runtime mode in {})\n{}",
                mode.name(),
                state.path().display(),
                created_note(&state, owner)
            ))
        }
        ModeCommand::Reset => {
            stored(state.set_runtime_mode(None))?;
            let how = "lb-feedback mode reset".to_string();
            owe_recovery(config, &state, now, mode_event(now, was, config.mode, how));
            print(&format!(
                "runtime mode cleared; {} ({}) counts again\n",
                config.mode.name(),
                config.mode_origin
            ))
        }
    }
}

/// The directory did not exist, so it now belongs to whoever ran `mode`: say so, since an
/// agent running as another user cannot record its replies there.
fn created_note(state: &StateDir, owner: Option<&str>) -> String {
    if !state.created() || owner.is_some() {
        return String::new();
    }
    format!(
        "note: created {0}, owned by the user who ran this; if the agent runs as another user, give it the directory (chown -R lb-feedback: {0}) or set state_owner\n",
        state.path().display()
    )
}

/// A mode change may have to be undone in HAProxy (`ready`, `up`): every known poller is owed
/// recovery from now, whatever it was told before. Best effort: a table that cannot take it
/// already makes the agent send `up ready` always, and a poller not in it is new, so owed.
fn owe_recovery(config: &Config, state: &StateDir, now: u64, event: Event) {
    lb_feedback::syslog::tell(config, Some(&event));
    let _ = state.owe_all(now, event);
}

/// The history's record of a mode change.
fn mode_event(at_ms: u64, from: Option<Mode>, to: Mode, why: String) -> Event {
    Event {
        at_ms,
        change: Change::Mode { from, to },
        why,
    }
}

/// Writes to stdout; a write that fails or falls short (`>/dev/full`) is a failure, so a
/// script never takes a truncated file for success. A closed pipe (a person piping to `head`)
/// fails without a message: the reader chose to stop.
fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::BrokenPipe => Failure::Silent,
            _ => Failure::Runtime(format!(
                "cannot write to standard output: {}",
                lb_feedback::ioerr::io_reason(&err)
            )),
        })
}
