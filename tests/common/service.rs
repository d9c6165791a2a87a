//! `lb-feedback-service run` as the integration tests start it: the test's config and state
//! directory, its environment and flags, the addresses it listens on read from its `--verbose`
//! log (not from a test connection, which would be a probe and a poller), the rest of that log
//! kept for the test; killed and reaped when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{TempDir, prepared};

pub const SERVICE: &str = env!("CARGO_BIN_EXE_lb-feedback-service");
/// The longest any single step may take before the test fails instead of hanging.
const BOUND: Duration = Duration::from_secs(10);

/// The service's command: empty environment, the test's config and state directory, a short
/// sample unless `env` says otherwise; no stdin, stdout dropped.
pub fn command(dir: &TempDir, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = prepared(SERVICE, dir);
    command
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// How to start it; see [`Service::run`].
pub struct Start<'a> {
    dir: &'a TempDir,
    env: Vec<(&'a str, &'a str)>,
    args: Vec<&'a str>,
    verbose: bool,
    http: bool,
    stderr: Option<Stdio>,
}

impl<'a> Start<'a> {
    pub fn envs(mut self, env: &[(&'a str, &'a str)]) -> Self {
        self.env.extend_from_slice(env);
        self
    }

    /// Flags after `run`; a `--listen` here replaces the default `--listen 127.0.0.1:0`.
    pub fn args(mut self, args: &[&'a str]) -> Self {
        self.args.extend_from_slice(args);
        self
    }

    /// `--http 127.0.0.1:0` as well, and wait for its address too.
    pub fn http(mut self) -> Self {
        self.http = true;
        self
    }

    /// Without `--verbose`: no address is logged, so nothing is waited for and the addresses
    /// are the `--listen` ones given (see [`Service::wait_until`]).
    pub fn quiet(mut self) -> Self {
        self.verbose = false;
        self
    }

    /// Its stderr goes to `stderr` instead of the log the test reads.
    pub fn stderr(mut self, stderr: Stdio) -> Self {
        self.stderr = Some(stderr);
        self
    }

    /// Spawns it; with `--verbose` and the log read, returns once every listener is up.
    pub fn start(self) -> Service {
        let given: Vec<&str> = self
            .args
            .windows(2)
            .filter(|pair| pair[0] == "--listen")
            .map(|pair| pair[1])
            .collect();
        let mut all = vec!["run"];
        if self.verbose {
            all.push("--verbose");
        }
        if !self.args.iter().any(|a| a.starts_with("--listen")) {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        if self.http {
            all.extend(["--http", "127.0.0.1:0"]);
        }
        all.extend(&self.args);
        let listeners = all.iter().filter(|a| a.starts_with("--listen")).count();
        let read = self.stderr.is_none();
        let mut child = command(self.dir, &self.env, &all)
            .stderr(self.stderr.unwrap_or_else(Stdio::piped))
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sender, receiver) = mpsc::channel();
        // Read to the end, so the service never blocks on a full pipe.
        let reader = child.stderr.take().map(|stderr| {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line.clone());
                    let _ = sender.send(line);
                }
            })
        });
        let mut service = Service {
            child,
            addrs: Vec::new(),
            http: None,
            lines,
            reader,
        };
        if self.verbose && read {
            service.listening(&receiver, listeners, self.http);
        } else {
            service.addrs = given.iter().map(|addr| addr.parse().unwrap()).collect();
        }
        service
    }
}

/// A running service, killed and reaped when dropped.
pub struct Service {
    pub child: Child,
    /// The agent port's addresses, in the order logged (or given, under [`Start::quiet`]).
    pub addrs: Vec<SocketAddr>,
    http: Option<SocketAddr>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Service {
    /// `run --verbose --listen 127.0.0.1:0` in `dir`, to be adjusted and then started.
    pub fn run(dir: &TempDir) -> Start<'_> {
        Start {
            dir,
            env: Vec::new(),
            args: Vec::new(),
            verbose: true,
            http: false,
            stderr: None,
        }
    }

    /// Reads the log until `listeners` agent addresses (and the HTTP one) are there.
    fn listening(&mut self, lines: &Receiver<String>, listeners: usize, http: bool) {
        let until = Instant::now() + BOUND;
        while self.addrs.len() < listeners || (http && self.http.is_none()) {
            let left = until.saturating_duration_since(Instant::now());
            let Ok(line) = lines.recv_timeout(left) else {
                panic!("the service did not start listening: {:?}", self.log());
            };
            let addr = |prefix: &str| line.strip_prefix(prefix).map(|a| a.parse().unwrap());
            if let Some(addr) = addr("lb-feedback-service: listening on ") {
                self.addrs.push(addr);
            } else if let Some(addr) = addr("lb-feedback-service: HTTP on ") {
                self.http = Some(addr);
            }
        }
    }

    /// Polls `up` with the agent address every 50 ms until it says so, the service still
    /// running (for a quiet service, whose log says nothing).
    pub fn wait_until(&mut self, up: impl Fn(SocketAddr) -> bool) {
        let until = Instant::now() + BOUND;
        while !up(self.addr()) {
            assert!(Instant::now() < until, "the service did not start");
            assert!(self.child.try_wait().unwrap().is_none(), "it exited");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn http(&self) -> SocketAddr {
        self.http.expect("started without --http")
    }

    /// The stderr lines so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a log line contains `text`; the log then.
    pub fn wait_for_log(&self, text: &str) -> Vec<String> {
        let until = Instant::now() + BOUND;
        loop {
            let log = self.log();
            if log.iter().any(|line| line.contains(text)) {
                return log;
            }
            assert!(Instant::now() < until, "no {text:?} in the log: {log:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One agent-port poll without agent-send, the way HAProxy makes it.
    pub fn poll(&self) -> String {
        let mut stream = TcpStream::connect_timeout(&self.addr(), BOUND).unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    /// Sends `signal` (`TERM`, `HUP`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Whether it exited within `time` (and with what status); once it has, the log is
    /// complete.
    pub fn exits_within(&mut self, time: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + time;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    reader.join().unwrap();
                }
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status, within `BOUND`.
    pub fn wait(&mut self) -> ExitStatus {
        self.exits_within(BOUND).expect("the service did not exit")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
