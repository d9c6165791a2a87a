//! `lb-feedback-service`: the listener that answers HAProxy's agent-check itself, for hosts
//! without xinetd or systemd socket activation (Windows above all; also containers). It gives
//! the same replies as `lb-feedback`: the same config layers, `probe::select` and
//! `probe::answer`, as HAProxy's caller.
//!
//! Threads, no async runtime: on each agent-port listener, threads that each accept a
//! connection and answer it themselves (a small stack each; as many as connections in
//! flight, at most `max_in_flight`, and one accepting; kept a while for the next connection,
//! [`workers`]); one accepting for `--http`, with a thread per request ([`http`]); one taking
//! samples ([`sampler`]); one writing the log ([`log`]: nothing else ever waits for a log
//! write), one writing the totals of refused connections every [`limits::REPORT_WINDOW`] and
//! one reloading the config when asked ([`reloader`]).
//! A poll is a few bytes each way, answered from the figures the sampler keeps fresh (only
//! the first after a pause waits for a CPU window), so a thread per connection costs little
//! and keeps every step a plain blocking call with a timeout.
//!
//! A connection, in order (see [`Service::serve`]):
//! 1. peer outside `allow`: closed without a reply;
//! 2. no slot for it ([`limits`]: `max_in_flight` in all, `max_in_flight_per_source` per
//!    address, the last free slots kept for addresses with nothing in flight): one from an
//!    address with connections in flight waits for a slot ([`slots`]; at most
//!    [`limits::QUEUE_WAIT`], and a bounded number), else, or after that wait, closed without
//!    a reply. Refusals are logged as [`limits::Refusals`] says: the first ones as they come,
//!    then totals, a few lines a window however many there are;
//! 3. the mode (runtime mode file, then config): not normal needs no sample;
//! 4. in normal mode, takes the last complete window while the sampler keeps them coming,
//!    else joins the running sample or starts one ([`sampler`]); when the config has
//!    profiles, in every mode, reads the first line of `agent-send` (1 KiB at most)
//!    meanwhile, waiting for it until the window ends or [`crate::probe::REQUEST_GRACE`]
//!    after the connection, whichever is later (without profiles it selects nothing and is
//!    left to the drain, as in the one-shot binary); an unknown profile is `error:profile` in
//!    every mode;
//! 5. answers one line, half-closes, drains for at most [`socket::DRAIN_TIME`], closes.
//!
//! Every connection has a deadline, `sample_ms` + [`CONNECTION_SLACK`]: reads, the write and
//! the wait for the sample all stop there, so a client that sends nothing or never reads
//! cannot hold a slot longer.
//!
//! Stopping ([`Stop`], triggered by SIGTERM/Ctrl-C or the Windows Service Control Manager):
//! the listeners stop accepting (each blocked `accept` is woken by one connection to itself,
//! which is closed unanswered), the connections in flight get their replies, then `serve`
//! returns, within [`Running::stop_time`]; `run` then gives the last log lines [`LOG_FLUSH`]
//! (a stderr nobody reads does not get them): `sample_ms` + 3 s in all.
//!
//! No connection waits for another's state I/O but for the poller table's lock, held for a
//! read and a write of the table and waited for at most [`crate::state::LOCK_WAIT`]: each
//! reads the mode and records its poll itself. That state I/O itself never blocks is the
//! state module's part (non-blocking, regular-file-only reads).

pub mod args;
mod bind_hint;
mod connection;
pub mod http;
pub mod limits;
mod listen;
pub mod log;
pub mod registration;
pub mod reload;
pub mod sampler;
pub mod signals;
mod slots;
#[cfg(windows)]
pub mod windows;
mod workers;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::{self, Config, ConfigError};
use crate::socket;
use crate::state;
use args::{Args, Command};
use connection::Shared;
pub(crate) use listen::{Accepted, accept};
use listen::{Agent, bind, check_fd_limit, stop_acceptors};
use log::Log;
use reload::Live;
use slots::Slots;
use workers::Workers;

/// Added to `sample_ms` for a connection's deadline: room for `agent-send`, the reply and a
/// loaded machine, yet short enough that a stuck client frees its slot within one poll or two.
pub const CONNECTION_SLACK: Duration = Duration::from_secs(2);
/// Handler threads do a few small reads and writes; the default 2 MiB stack is reserved for
/// nothing, and with `max_in_flight` up to 10,000 that adds up.
pub(crate) const HANDLER_STACK: usize = 256 * 1024;
/// How long a stop waits for its last log lines to be written: a stderr that nobody reads
/// cannot hold the process past it.
pub const LOG_FLUSH: Duration = Duration::from_millis(500);
/// How often the totals of refusals are looked at.
const REPORT_TICK: Duration = Duration::from_secs(1);
/// The shortest pause of that thread while connections wait for a slot.
const EXPIRY_TICK: Duration = Duration::from_millis(10);

/// Why a command failed; rendered once by the binary, with the exit code.
#[derive(Debug)]
pub enum Failure {
    Usage(String),
    Config(ConfigError),
    Runtime(String),
    /// Exit 1 with nothing to say (stdout was a pipe closed by its reader).
    Silent,
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Runtime(_) | Failure::Silent => 1,
            Failure::Usage(_) | Failure::Config(_) => 2,
        }
    }

    /// The message, empty for [`Failure::Silent`].
    pub fn message(&self) -> String {
        match self {
            Failure::Silent => String::new(),
            Failure::Usage(message) => {
                format!("{message}\nTry 'lb-feedback-service --help'.")
            }
            Failure::Config(err) => err.to_string(),
            Failure::Runtime(message) => message.clone(),
        }
    }
}

/// Runs one parsed command line.
pub fn execute(args: Args) -> Result<(), Failure> {
    match args.command {
        Command::Help => print(&args::help()),
        Command::ShortHelp => print(crate::short_help::SERVICE),
        Command::Version => print(&format!(
            "lb-feedback-service {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        Command::Run => run_foreground(&args),
        #[cfg(windows)]
        Command::Install => windows::install(&args),
        #[cfg(windows)]
        Command::Uninstall => windows::uninstall(),
        #[cfg(windows)]
        Command::Start => windows::start(),
        #[cfg(windows)]
        Command::Stop => windows::stop(),
        #[cfg(windows)]
        Command::Scm => windows::dispatch(),
        #[cfg(not(windows))]
        Command::Install | Command::Uninstall | Command::Start | Command::Stop | Command::Scm => {
            Err(Failure::Usage(
                "install, uninstall, start, stop and scm are for Windows. Here, run \
                 `lb-feedback-service run` from systemd or a container, or let xinetd or a \
                 systemd socket start `lb-feedback` (see contrib/)"
                    .into(),
            ))
        }
    }
}

/// The effective config, from the same layers as `lb-feedback`'s.
pub fn load_config(args: &Args) -> Result<Config, ConfigError> {
    config::load_from_environment(args.config.as_deref(), &args.settings)
}

/// `run`: listen until SIGTERM or Ctrl-C, logging to stderr.
fn run_foreground(args: &Args) -> Result<(), Failure> {
    let config = load_config(args).map_err(Failure::Config)?;
    let log = Arc::new(Log::stderr(args.verbose));
    // The descendants a custom command leaves running outside its group come back to the
    // service when the command exits, to be killed (metrics::custom::orphans).
    #[cfg(target_os = "linux")]
    if let Err(err) = crate::metrics::custom::orphans::adopt() {
        log.problem(format!(
            "cannot become the subreaper of custom commands; what they leave running stays: {err}"
        ));
    }
    let service = Service::bind(config, &args.listen, log.clone()).map_err(Failure::Runtime)?;
    let stop = Stop::new();
    let reload = reloader(args.clone(), service.live(), log.clone());
    // Installed before the listening addresses are logged, so a SIGTERM right after them
    // already means a clean stop.
    let signals = signals::install(&stop, reload)
        .map_err(|err| Failure::Runtime(format!("cannot handle SIGTERM/Ctrl-C: {err}")))?;
    let served = service.serve(&stop).map_err(Failure::Runtime);
    // Unix: the signal thread ends here, before the last log lines. Windows' handler stays
    // for the process's life (signals.rs says why), so there nothing is dropped.
    #[cfg_attr(windows, allow(clippy::drop_non_drop))]
    drop(signals);
    // The last lines ("stopped"), unless stderr is stalled: then they are lost, not waited for.
    log.flush(Instant::now() + LOG_FLUSH);
    served
}

/// What SIGHUP (and the SCM's `paramchange`) runs: a request to the reload thread, which
/// loads the config again from the same layers and puts it in force if it is valid. The
/// caller (the signal thread, the SCM's handler) never waits for the file, so a config that
/// is a FIFO, huge or on a stalled file system cannot keep it from a stop; requests made
/// while a reload runs are one more reload. A failed reload is logged once per different
/// failure ([`reload::Failures`]).
pub(crate) fn reloader(args: Args, live: Live, log: Arc<Log>) -> impl Fn() + Send + Sync + 'static {
    let (request, requests) = std::sync::mpsc::sync_channel::<()>(1);
    let worker_log = log.clone();
    // Not joined: a stop does not wait for a reload stuck in the kernel.
    let started = thread::Builder::new()
        .name("lbf-reload".into())
        .spawn(move || {
            let mut failures = reload::Failures::default();
            while requests.recv().is_ok() {
                let loaded = load_config(&args);
                if failures.is_new(&loaded) {
                    for line in live.replace(loaded) {
                        worker_log.problem(line);
                    }
                }
            }
        });
    if let Err(err) = &started {
        log.problem(format!("cannot start the reload thread: {err}"));
    }
    move || match request.try_send(()) {
        Ok(()) | Err(std::sync::mpsc::TrySendError::Full(())) => {}
        Err(std::sync::mpsc::TrySendError::Disconnected(())) => {
            log.problem("config not reloaded: there is no reload thread");
        }
    }
}

/// Writes to stdout; a write that fails or falls short (`>/dev/full`) is a failure. A closed
/// pipe (a person piping to `head`) fails without a message: the reader chose to stop.
fn print(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|err| match err.kind() {
            io::ErrorKind::BrokenPipe => Failure::Silent,
            _ => Failure::Runtime(format!(
                "cannot write to standard output: {}",
                crate::ioerr::io_reason(&err)
            )),
        })
}

/// A mutex's guard even if a thread panicked while holding it: the data here (counters,
/// flags) stays meaningful, and the service must keep answering.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stop request, shared by whoever asks (signal thread, console handler, the Service
/// Control Manager's handler, a test) and the listener that waits for it.
#[derive(Clone, Default)]
pub struct Stop(Arc<(Mutex<bool>, Condvar)>);

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    pub fn trigger(&self) {
        let (flag, changed) = &*self.0;
        *lock(flag) = true;
        changed.notify_all();
    }

    pub fn is_set(&self) -> bool {
        *lock(&self.0.0)
    }

    /// Blocks until [`Stop::trigger`] or for `time`; whether it was triggered.
    pub fn wait_timeout(&self, time: Duration) -> bool {
        let (flag, changed) = &*self.0;
        let until = Instant::now() + time;
        let mut stopped = lock(flag);
        while !*stopped {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stopped = match changed.wait_timeout(stopped, left) {
                Ok((stopped, _)) => stopped,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        *stopped
    }

    /// Blocks until [`Stop::trigger`].
    pub fn wait(&self) {
        let (flag, changed) = &*self.0;
        let mut stopped = lock(flag);
        while !*stopped {
            stopped = changed
                .wait(stopped)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Bound listeners and the config they answer for; [`Service::serve`] runs them.
pub struct Service {
    live: Live,
    listeners: Vec<(SocketAddr, TcpListener)>,
    /// `--http`'s listener ([`http`]).
    http: Option<(SocketAddr, TcpListener)>,
    log: Arc<Log>,
}

impl Service {
    /// Binds every address in `listen`, or the defaults (`0.0.0.0:3333`, `[::]:3333`) when it
    /// is empty. A given address that cannot be bound is an error; of the defaults, one that
    /// cannot be bound (no IPv6 on the host, say) is logged and skipped, as long as one is left.
    pub fn bind(config: Config, listen: &[SocketAddr], log: Arc<Log>) -> Result<Service, String> {
        let defaults = listen.is_empty();
        let addrs = match defaults {
            true => args::default_listen(),
            false => listen.to_vec(),
        };
        let mut listeners = Vec::new();
        let mut failures = Vec::new();
        for addr in addrs {
            match bind(addr) {
                Ok(listener) => {
                    let bound = listener.local_addr().unwrap_or(addr);
                    listeners.push((bound, listener));
                }
                Err(err) if defaults => {
                    failures.push(bind_hint::cannot_listen("cannot listen on", addr, &err))
                }
                Err(err) => return Err(bind_hint::cannot_listen("cannot listen on", addr, &err)),
            }
        }
        if listeners.is_empty() {
            return Err(failures.join("; "));
        }
        for failure in failures {
            log.problem(format!("{failure}; going on without it"));
        }
        let http = match config.http {
            Some(addr) => match bind(addr) {
                Ok(listener) => Some((listener.local_addr().unwrap_or(addr), listener)),
                Err(err) => {
                    return Err(bind_hint::cannot_listen("cannot serve HTTP on", addr, &err));
                }
            },
            None => None,
        };
        Ok(Service {
            live: Live::new(config),
            listeners,
            http,
            log,
        })
    }

    /// The config it answers with, to reload it ([`Live::replace`]).
    pub fn live(&self) -> Live {
        self.live.clone()
    }

    /// Where it listens, with the ports the OS chose for `:0`.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(addr, _)| *addr).collect()
    }

    /// Answers connections until `stop` is triggered, then finishes the replies in flight.
    pub fn serve(self, stop: &Stop) -> Result<(), String> {
        let running = self.start(stop)?;
        stop.wait();
        running.finish()
    }

    /// Starts answering; the listeners accept until `stop` is triggered, after which
    /// [`Running::finish`] completes the stop. (`serve` in two halves, so the Windows service
    /// can report "stop pending" in between.)
    pub fn start(self, stop: &Stop) -> Result<Running, String> {
        let shared = Arc::new(Shared::new(self.live, self.log));
        check_fd_limit(shared.slots.limits.max, &shared.log);
        let sampler = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("lbf-sampler".into())
                .spawn(move || shared.take_samples())
                .map_err(|err| format!("cannot start the sampler thread: {err}"))?
        };
        let reporter = {
            let (shared, stop) = (shared.clone(), stop.clone());
            thread::Builder::new()
                .name("lbf-refusals".into())
                .stack_size(HANDLER_STACK)
                .spawn(move || {
                    // Also closes the connections whose wait for a slot has ended, as soon
                    // as it has when no connection ending has done it.
                    let tick = || {
                        let now = Instant::now();
                        shared.slots.next_expiry().map_or(REPORT_TICK, |at| {
                            at.saturating_duration_since(now)
                                .clamp(EXPIRY_TICK, REPORT_TICK)
                        })
                    };
                    while !stop.wait_timeout(tick()) {
                        shared.refuse_expired(shared.slots.expired(Instant::now()));
                        shared.report_refusals(false);
                    }
                })
        };
        let reporter = match reporter {
            Ok(reporter) => reporter,
            Err(err) => {
                shared.sampler.stop();
                let _ = sampler.join();
                return Err(format!("cannot start the refusals' thread: {err}"));
            }
        };
        let mut running = Running {
            shared,
            sampler,
            reporter,
            pools: Vec::new(),
            acceptors: Vec::new(),
        };
        for (addr, listener) in self.listeners {
            let agent = Agent {
                shared: running.shared.clone(),
                stop: stop.clone(),
                what: format!("on {addr}"),
            };
            match Workers::start(listener, agent, workers::IDLE_KEEP) {
                Ok(workers) => running.pools.push((addr, workers)),
                Err(err) => {
                    stop.trigger();
                    let _ = running.finish();
                    return Err(format!("cannot start a thread for {addr}: {err}"));
                }
            }
        }
        for (addr, _) in &running.pools {
            running.shared.log.note(format!("listening on {addr}"));
        }
        if let Some(problem) = state::unusable(&running.shared.live.get().config) {
            running.shared.log.problem(problem);
        }
        if let Some((addr, listener)) = self.http {
            let (shared, stop_for_thread) = (running.shared.clone(), stop.clone());
            let spawned = thread::Builder::new()
                .name("lbf-http".into())
                .spawn(move || http::accept_loop(listener, &shared, &stop_for_thread));
            match spawned {
                // Among the acceptors, so the stop wakes it and waits for it as for the others.
                Ok(thread) => running.acceptors.push((addr, thread)),
                Err(err) => {
                    stop.trigger();
                    let _ = running.finish();
                    return Err(format!("cannot start the HTTP thread for {addr}: {err}"));
                }
            }
            running.shared.log.note(format!("HTTP on {addr}"));
        }
        Ok(running)
    }
}

/// A started [`Service`]: its sampler and refusals' threads, each agent-port listener's
/// threads, and `--http`'s.
pub struct Running {
    shared: Arc<Shared>,
    sampler: JoinHandle<()>,
    reporter: JoinHandle<()>,
    pools: Vec<(SocketAddr, Workers<Agent>)>,
    acceptors: Vec<(SocketAddr, JoinHandle<()>)>,
}

impl Running {
    /// How long [`Running::finish`] may take: the replies in flight have this long at most.
    pub fn stop_time(&self) -> Duration {
        self.shared.connection_time + socket::DRAIN_TIME
    }

    /// Once the stop was triggered: closes the listeners, waits for the replies in flight
    /// (at most [`Running::stop_time`]), ends the sampler.
    pub fn finish(self) -> Result<(), String> {
        let until = Instant::now() + self.stop_time();
        let log = &self.shared.log;
        log.note("stopping: finishing the replies in flight");
        let addrs: Vec<String> = (self.pools.iter().map(|(a, _)| a))
            .chain(self.acceptors.iter().map(|(a, _)| a))
            .map(|a| a.to_string())
            .collect();
        stop_acceptors(&self.pools, self.acceptors, until, log);
        // Nothing is accepted any more: those still waiting for a slot are closed unanswered.
        let waiting = self.shared.slots.take_waiting();
        self.shared.refuse_expired(waiting);
        // Ends at once: the stop is triggered. Then the last window's totals.
        let _ = self.reporter.join();
        self.shared.report_refusals(true);
        let left = self.shared.slots.wait_idle(until);
        // Each thread lets go of its listener as it ends: then the port is closed.
        for (_, workers) in &self.pools {
            workers.wait_ended(until);
        }
        self.shared.sampler.stop();
        let _ = self.sampler.join();
        if left > 0 {
            return Err(format!(
                "stopped with {left} connections still in flight past their deadline"
            ));
        }
        log.note(format!("stopped (listened on {})", addrs.join(", ")));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
