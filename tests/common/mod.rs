//! Shared by the integration tests: temporary directories, running the built binary with a
//! clean environment, and holding real established connections on a loopback port.
#![allow(dead_code)]

use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_lb-feedback");

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "lbf-test-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with an empty environment, its own config file (`{}` unless written over)
/// and state directory, and a short sample so tests stay quick.
pub fn agent(dir: &TempDir) -> Command {
    prepared(BIN, dir)
}

/// [`agent`] answering from the monitors a test sets alone: CPU and RAM left out, and no
/// recovery words, so each reply is exactly what those monitors give.
pub fn agent_without_cpu_ram(dir: &TempDir) -> Command {
    let mut command = agent(dir);
    command
        .env("LB_FEEDBACK_CPU_IMPORTANCE", "0")
        .env("LB_FEEDBACK_RAM_IMPORTANCE", "0")
        .env("LB_FEEDBACK_RECOVERY", "never");
    command
}

/// `program` (`lb-feedback` or `lb-feedback-service`) set up as [`agent`] describes.
pub fn prepared(program: &str, dir: &TempDir) -> Command {
    let config = dir.path().join("config.json");
    if !config.exists() {
        std::fs::write(&config, "{}").unwrap();
    }
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("LB_FEEDBACK_CONFIG", &config)
        .env("LB_FEEDBACK_STATE_DIR", dir.path().join("state"))
        .env("LB_FEEDBACK_SAMPLE_MS", "100");
    command
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A loopback listener and `n` established connections to it, held until dropped.
pub struct Connections {
    pub listener: TcpListener,
    clients: Vec<TcpStream>,
    servers: Vec<TcpStream>,
}

impl Connections {
    pub fn open(n: usize) -> Connections {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut held = Connections {
            listener,
            clients: Vec::new(),
            servers: Vec::new(),
        };
        held.add(n);
        held
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    pub fn add(&mut self, n: usize) {
        for _ in 0..n {
            self.clients
                .push(TcpStream::connect(self.listener.local_addr().unwrap()).unwrap());
            self.servers.push(self.listener.accept().unwrap().0);
        }
    }

    /// Holds exactly `n` connections, adding or closing only the difference, so the count
    /// moves straight from one figure to the other (never through 0 as closing all would).
    pub fn set(&mut self, n: usize) {
        if n > self.servers.len() {
            self.add(n - self.servers.len());
        } else {
            self.servers.truncate(n);
            self.clients.truncate(n);
            self.settle();
        }
    }

    /// Closes every connection and waits until the kernel no longer counts them. The
    /// listening side goes first: closing a socket leaves ESTABLISHED at once, while the other
    /// end's leaves it only when its FIN is processed, which a busy machine defers. And a
    /// process another test's thread is forking holds copies of these sockets until it execs,
    /// which holds the close back for that moment.
    pub fn close_all(&mut self) {
        self.servers.clear();
        self.clients.clear();
        self.settle();
    }

    /// Waits (at most 5 s) until the kernel's ESTABLISHED sockets on the port are the ones
    /// held: what the agent will count. Linux only (it reads /proc/net/tcp and tcp6).
    fn settle(&self) {
        #[cfg(target_os = "linux")]
        {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while established(self.port()) != self.servers.len() {
                assert!(
                    std::time::Instant::now() < until,
                    "port {}: the kernel still counts {} established, {} held",
                    self.port(),
                    established(self.port()),
                    self.servers.len()
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// ESTABLISHED sockets whose local port is `port`, from /proc/net/tcp and /proc/net/tcp6.
#[cfg(target_os = "linux")]
fn established(port: u16) -> usize {
    let local = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    fields.len() > 3
                        && format!("{} ", fields[1]).ends_with(&local)
                        && fields[3] == "01"
                })
                .count()
        })
        .sum()
}

/// Whether the end-to-end tools must be present (CI) or may be skipped (a newcomer's machine).
pub fn e2e_required() -> bool {
    std::env::var_os("LB_FEEDBACK_E2E").is_some_and(|v| v == "1")
}

/// Starts `command` on the server end of a fresh loopback connection as its stdin, stdout
/// and stderr (the way xinetd hands it over); returns the client end.
pub fn serve(command: Command) -> (TcpStream, Child) {
    serve_from(command, [127, 0, 0, 1])
}

/// A client socket bound to `source` (a loopback address: 127.0.0.2 plays a second load
/// balancer), connected to `to`.
pub fn connect_from(source: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let from = std::net::SocketAddr::from((source, 0));
    socket.bind(&from.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// [`serve`], the connection coming from `source`.
pub fn serve_from(mut command: Command, source: [u8; 4]) -> (TcpStream, Child) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = connect_from(source, listener.local_addr().unwrap());
    let (server, _) = listener.accept().unwrap();
    let fd: OwnedFd = server.into();
    let child = command
        .stdin(Stdio::from(fd.try_clone().unwrap()))
        .stdout(Stdio::from(fd.try_clone().unwrap()))
        .stderr(Stdio::from(fd))
        .spawn()
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (client, child)
}

/// Everything the agent sent, up to its FIN; an error (a reset) fails the test.
pub fn reply(client: &mut TcpStream, child: &mut Child) -> String {
    let mut bytes = Vec::new();
    client
        .read_to_end(&mut bytes)
        .expect("the agent must close with a FIN, not a reset");
    drop(client.shutdown(Shutdown::Both));
    assert!(child.wait().is_ok());
    String::from_utf8(bytes).unwrap()
}
