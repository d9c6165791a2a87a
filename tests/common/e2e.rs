//! The real programs of the end-to-end tests: HAProxy in the foreground with an admin stats
//! socket, lb-feedback served by `systemd-socket-activate --inetd` or by xinetd, and a loopback
//! listener standing in for the backend server.
//!
//! Every process runs in its own process group and is killed and reaped when its guard drops;
//! every wait has a deadline; everything listens on 127.0.0.1 and lives in a temporary
//! directory.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{BIN, TempDir, e2e_required};

/// How long any one state change may take to show in HAProxy. Polls come every 200 ms; the
/// margin is for a loaded two-core CI machine running other tests at the same time.
pub const SETTLE: Duration = Duration::from_secs(20);

/// The contrib xinetd entry, rendered by the tests for their own ports and paths.
pub const CONTRIB_XINETD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/xinetd/lb-feedback");

/// Where a program is: PATH, then the sbin directories (haproxy and xinetd live in /usr/sbin,
/// which a non-root PATH may lack).
pub fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether every program `test` needs is installed. When one is missing the test should
/// return: this prints a SKIPPED line (on the real stderr, past the test harness's capture, so
/// a person sees it) — unless LB_FEEDBACK_E2E=1, where a missing program fails the test.
pub fn available(test: &str, names: &[&str]) -> bool {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| program(name).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let what = format!("{} not installed", missing.join(", "));
    skip(
        test,
        &what,
        ".ci/run's apt-get line installs what the tests need",
    )
}

/// What [`available`] does when something `test` needs is missing: a SKIPPED line with `what`
/// and a `hint`, or, under LB_FEEDBACK_E2E=1, a failure. Returns false, for `return`.
pub fn skip(test: &str, what: &str, hint: &str) -> bool {
    if e2e_required() {
        panic!("{what}, and LB_FEEDBACK_E2E=1 makes that a failure ({test})");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what} ({test}; {hint})");
    false
}

fn installed(name: &str) -> PathBuf {
    program(name).unwrap_or_else(|| panic!("{name} not installed; call available() first"))
}

/// Polls `probe` every 50 ms until it gives a value or `timeout` passes; then fails with
/// `what` and whatever `context` says about the last state.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port nobody listens on right now. Another process may take it before the
/// program under test binds it; the starters below retry with a new port when that happens.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A started program: its own process group, stdout and stderr in a log file, killed and
/// reaped on drop.
pub struct Process {
    name: String,
    // In a cell so that a wait's probe can ask whether it exited while its failure message
    // reads the log.
    child: RefCell<Child>,
    log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Process {
        File::create(log).unwrap();
        // Appending, so that a program that also opens the file itself (xinetd's -filelog)
        // adds to it instead of writing over it.
        let out = OpenOptions::new().append(true).open(log).unwrap();
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Process {
            name: name.to_string(),
            child: RefCell::new(child),
            log: log.to_path_buf(),
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `None` while it runs; its exit status once it has exited.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child.borrow_mut().try_wait().ok().flatten()
    }

    pub fn describe(&self) -> String {
        format!(
            "--- {} log ({}):\n{}",
            self.name,
            self.log.display(),
            self.log()
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // The whole group: an inetd's per-connection children die with it instead of living
        // on until their probe ends.
        let child = self.child.get_mut();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A listener standing in for the backend server, so HAProxy's own layer-4 `check` passes:
/// it accepts and closes every connection until dropped.
pub struct Backend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    pub fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for connection in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                drop(connection);
            }
        });
        Backend {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One backend server as HAProxy's `show servers state` and `show stat` see it.
#[derive(Clone, Debug, Default)]
pub struct Server {
    /// srv_op_state: 0 stopped (DOWN), 1 starting, 2 running (UP), 3 stopping.
    pub op_state: u32,
    /// srv_admin_state bits: 0x01 forced maintenance, 0x08 forced drain (what the agent sets).
    pub admin_state: u32,
    /// srv_uweight: the weight in force, as the agent's `N%` set it.
    pub weight: u32,
    /// srv_iweight: the configured weight.
    pub initial_weight: u32,
    /// show stat `status`: UP, DOWN, DRAIN, MAINT; "DOWN (agent)" and "DRAIN (agent)" when the
    /// agent did it; a rise/fall counter while changing ("UP 1/3").
    pub status: String,
    /// show stat `slim`: the maxconn in force.
    pub maxconn: String,
    /// show stat `agent_status`: L7OK after `up`, CHECKED after a reply without `up`, L7STS
    /// after `stopped`/`down`, L7TOUT on a timeout...
    pub agent_status: String,
    /// show stat `last_agt`: HAProxy's words for the last agent reply ("via agent : up",
    /// "agent reports an error : error:config"); empty after a plain `N%`. The only place
    /// HAProxy shows an agent's error: it does not log it.
    pub last_agent: String,
}

impl Server {
    pub fn up(&self) -> bool {
        self.op_state == 2
    }

    pub fn down(&self) -> bool {
        self.op_state == 0
    }

    pub fn drain(&self) -> bool {
        self.admin_state & 0x08 != 0
    }

    pub fn maint(&self) -> bool {
        self.admin_state & 0x01 != 0
    }

    /// Neither drain nor maintenance: what `ready` restores.
    pub fn ready(&self) -> bool {
        self.admin_state == 0
    }
}

/// HAProxy in the foreground (`-db`), backend `b`, log lines and health-check results on its
/// stdout, captured in a file.
pub struct Haproxy {
    socket: PathBuf,
    process: Process,
}

impl Haproxy {
    /// `servers`: the server lines of backend `b`, each starting with `server`.
    pub fn start(dir: &TempDir, servers: &[String]) -> Haproxy {
        let socket = dir.path().join("haproxy.sock");
        let config = format!(
            "global
    stats socket {socket} mode 600 level admin
    # Log lines to stdout, which the test captures: agent errors and state changes.
    log stdout format raw local0
    nbthread 1
    maxconn 200

defaults
    mode tcp
    log global
    # One log line per change of a check's result, the agent's included.
    option log-health-checks
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    # How long HAProxy waits for the agent's reply; without it, agent-inter would bound the
    # reply, and a 200 ms interval would time out every probe that samples 100 ms of CPU.
    timeout check 2s

backend b
    {servers}
",
            socket = socket.display(),
            servers = servers.join("\n    ")
        );
        let path = dir.file("haproxy.cfg", &config);
        let mut command = Command::new(installed("haproxy"));
        command.arg("-db").arg("-f").arg(&path);
        let haproxy = Haproxy {
            socket,
            process: Process::spawn("haproxy", command, &dir.path().join("haproxy.log")),
        };
        wait_for(
            "HAProxy's stats socket",
            SETTLE,
            || {
                if let Some(status) = haproxy.process.exited() {
                    panic!("haproxy exited ({status})\n{}", haproxy.process.describe());
                }
                haproxy.try_command("show servers state b").ok()
            },
            || haproxy.process.describe(),
        );
        haproxy
    }

    fn try_command(&self, command: &str) -> std::io::Result<String> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("{command}\n").as_bytes())?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    }

    /// One command on the admin socket; HAProxy answers and closes.
    pub fn command(&self, command: &str) -> String {
        self.try_command(command)
            .unwrap_or_else(|err| panic!("stats socket: {err}\n{}", self.process.describe()))
    }

    /// The server's state, or `None` if HAProxy does not list it.
    pub fn server(&self, name: &str) -> Option<Server> {
        let state = self.command("show servers state b");
        // Columns: be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state
        // srv_uweight srv_iweight ...; the first line is the format version, then a header.
        let fields: Vec<String> = state
            .lines()
            .map(|line| line.split_whitespace().map(str::to_string).collect())
            .find(|fields: &Vec<String>| fields.len() > 8 && fields[3] == name)?;
        let number = |i: usize| fields[i].parse::<u32>().unwrap();
        let mut server = Server {
            op_state: number(5),
            admin_state: number(6),
            weight: number(7),
            initial_weight: number(8),
            ..Server::default()
        };
        let stat = self.command("show stat");
        let mut lines = stat.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let row: Vec<&str> = lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .find(|row| row.len() > 1 && row[0] == "b" && row[1] == name)?;
        let column = |key: &str| {
            header
                .iter()
                .position(|h| *h == key)
                .and_then(|i| row.get(i))
                .map_or(String::new(), |v| v.to_string())
        };
        server.status = column("status");
        server.maxconn = column("slim");
        // "* L7OK": the star marks a check in progress.
        server.agent_status = column("agent_status").trim_start_matches("* ").to_string();
        server.last_agent = column("last_agt");
        Some(server)
    }

    /// Waits until `wanted` holds for server `name`; fails with its last state and the logs.
    pub fn wait_server(
        &self,
        name: &str,
        what: &str,
        agent: &Agent,
        wanted: impl Fn(&Server) -> bool,
    ) -> Server {
        let last = RefCell::new(None);
        wait_for(
            &format!("{name}: {what}"),
            SETTLE,
            || {
                let server = self.server(name)?;
                let done = wanted(&server);
                *last.borrow_mut() = Some(server.clone());
                done.then_some(server)
            },
            || {
                format!(
                    "last state: {:#?}\n{}\n{}",
                    last.borrow(),
                    self.process.describe(),
                    agent.describe()
                )
            },
        )
    }

    /// Everything HAProxy logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn describe(&self) -> String {
        self.process.describe()
    }
}

/// The environment every served agent gets: the same config file, state directory and short
/// sample as `common::agent(dir)`, so `agent(dir).args(["mode", ...])` steers it.
pub fn agent_env(dir: &TempDir) -> Vec<(String, String)> {
    vec![
        (
            "LB_FEEDBACK_CONFIG".into(),
            dir.path().join("config.json").display().to_string(),
        ),
        (
            "LB_FEEDBACK_STATE_DIR".into(),
            dir.path().join("state").display().to_string(),
        ),
        ("LB_FEEDBACK_SAMPLE_MS".into(), "100".into()),
    ]
}

/// [`agent_env`] with `extra` added; a name in `extra` replaces the default's value.
fn served_env(dir: &TempDir, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = agent_env(dir)
        .into_iter()
        .filter(|(name, _)| !extra.iter().any(|(n, _)| n == name))
        .collect();
    env.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    env
}

/// lb-feedback behind an inetd on a loopback port.
pub struct Agent {
    pub port: u16,
    process: Process,
}

impl Agent {
    /// `systemd-socket-activate -a --inetd`: one lb-feedback per connection with the socket
    /// as stdin and stdout, the model of the `Accept=yes` socket unit.
    pub fn socket_activate(dir: &TempDir, extra: &[(&str, &str)]) -> Agent {
        Agent::start_on_free_port("systemd-socket-activate", dir, "Listening on", |port| {
            let mut command = Command::new(installed("systemd-socket-activate"));
            command
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .args(["-a", "--inetd", "-l", &format!("127.0.0.1:{port}")]);
            for (name, value) in served_env(dir, extra) {
                command.arg("-E").arg(format!("{name}={value}"));
            }
            command.arg(BIN);
            (command, dir.path().join("socket-activate.log"))
        })
    }

    /// Real xinetd with the contrib entry, rendered for this port, this user and these paths.
    pub fn xinetd(dir: &TempDir, extra: &[(&str, &str)]) -> Agent {
        let template = fs::read_to_string(CONTRIB_XINETD).unwrap();
        let env: Vec<String> = served_env(dir, extra)
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let env = env.join(" ");
        Agent::start_on_free_port("xinetd", dir, "Started working", |port| {
            let entry = render_xinetd_entry(
                &template,
                &[
                    ("disable", "no".into()),
                    ("port", port.to_string()),
                    // xinetd (root here) switches to `user`: this test's user can write the
                    // temporary state directory, the lb-feedback user could not.
                    ("user", id("-un")),
                    ("group", id("-gn")),
                    ("server", BIN.into()),
                    ("env", env.clone()),
                ],
                &[
                    // No /etc/services line for a test port: xinetd then needs UNLISTED.
                    ("type", "UNLISTED".into()),
                    ("bind", "127.0.0.1".into()),
                ],
            );
            let conf = xinetd_conf(dir, &dir.file("xinetd-lb-feedback", &entry));
            xinetd_command(dir, &conf)
        })
    }

    /// An already rendered xinetd config: for the installed package's entry.
    pub fn xinetd_with(dir: &TempDir, conf: &Path, port: u16) -> Agent {
        let (command, log) = xinetd_command(dir, conf);
        let agent = Agent {
            port,
            process: Process::spawn("xinetd", command, &log),
        };
        assert!(
            agent.wait_started("Started working"),
            "xinetd did not start\n{}",
            agent.describe()
        );
        agent
    }

    /// Starts the inetd on a free port, again on another one if that was taken meanwhile.
    fn start_on_free_port(
        name: &str,
        dir: &TempDir,
        ready: &str,
        command: impl Fn(u16) -> (Command, PathBuf),
    ) -> Agent {
        for _ in 0..3 {
            let port = free_port();
            let (command, log) = command(port);
            let agent = Agent {
                port,
                process: Process::spawn(name, command, &log),
            };
            if agent.wait_started(ready) {
                return agent;
            }
        }
        panic!(
            "{name} did not start listening in three tries (see {})",
            dir.path().display()
        );
    }

    /// Waits for the readiness line in the log; false if the program exited first (a port
    /// taken between free_port() and its bind).
    fn wait_started(&self, ready: &str) -> bool {
        let process = &self.process;
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            if process.log().contains(ready) {
                return true;
            }
            if process.exited().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {ready:?} within {SETTLE:?}\n{}", process.describe());
    }

    /// Connections systemd-socket-activate accepted so far (it logs each one).
    pub fn connections(&self) -> usize {
        self.process.log().matches("Connection from").count()
    }

    pub fn describe(&self) -> String {
        self.process.describe()
    }
}

fn id(flag: &str) -> String {
    let output = Command::new("id").arg(flag).output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A main xinetd config with only `entry`: nothing from /etc/xinetd.d, and the services' own
/// log lines (refusals, limits) in the test directory instead of syslog.
pub fn xinetd_conf(dir: &TempDir, entry: &Path) -> PathBuf {
    dir.file(
        "xinetd.conf",
        &format!(
            "defaults\n{{\n\tlog_type = FILE {}\n}}\n\ninclude {}\n",
            dir.path().join("xinetd-services.log").display(),
            entry.display()
        ),
    )
}

fn xinetd_command(dir: &TempDir, conf: &Path) -> (Command, PathBuf) {
    let log = dir.path().join("xinetd.log");
    let mut command = Command::new(installed("xinetd"));
    command
        .arg("-dontfork")
        .arg("-f")
        .arg(conf)
        .arg("-pidfile")
        .arg(dir.path().join("xinetd.pid"))
        // xinetd's own messages, the readiness line "Started working" among them, go to the
        // same file as its stdout and stderr.
        .arg("-filelog")
        .arg(&log);
    (command, log)
}

/// An xinetd entry with `values` in place of its attributes of the same name (each must be
/// there, so a renamed attribute in contrib/ fails the test instead of going untested) and
/// `added` appended before the closing brace.
pub fn render_xinetd_entry(
    template: &str,
    values: &[(&str, String)],
    added: &[(&str, String)],
) -> String {
    let mut replaced = vec![false; values.len()];
    let mut out = String::new();
    for line in template.lines() {
        let trimmed = line.trim_start();
        let key = trimmed
            .split(|c: char| c.is_whitespace() || c == '=')
            .next()
            .unwrap_or_default();
        // `key = value`; not `key += value`, which adds to what the entry already has.
        let is_attribute =
            !trimmed.starts_with('#') && trimmed[key.len()..].trim_start().starts_with('=');
        match values.iter().position(|(name, _)| *name == key) {
            Some(i) if is_attribute => {
                replaced[i] = true;
                out.push_str(&format!("\t{key}\t\t= {}\n", values[i].1));
            }
            _ if trimmed == "}" => {
                for (name, value) in added {
                    out.push_str(&format!("\t{name}\t\t= {value}\n"));
                }
                out.push_str("}\n");
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for ((name, _), done) in values.iter().zip(&replaced) {
        assert!(done, "the xinetd entry has no `{name} =` line to render");
    }
    out
}

/// The reply of one poll made by hand, as HAProxy would make it (nothing sent).
pub fn poll(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}
