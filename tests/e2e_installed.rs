//! The Debian package as installed by `dpkg -i`: its own system user, the static probe, its
//! man pages, its xinetd entry, enabled the way the entry's comment tells an admin to, answering on
//! 127.0.0.1:3333 with a real HAProxy following it; and what `dpkg --purge` leaves.
//!
//! The installed test runs only with LB_FEEDBACK_INSTALLED=1 (contrib/deb/ci.sh sets it after
//! installing the .deb) and reads and writes the installed files: /etc/xinetd.d/lb-feedback,
//! /etc/services, /usr/bin/lb-feedback with its default config and state directory. It leaves
//! the runtime mode as it found it. The purge test runs only with LB_FEEDBACK_PURGED=1
//! (contrib/deb/ci.sh, after `dpkg --purge`). The check that the packaged entry is the contrib
//! one, and the fan-in test of the contrib entry's limits (real xinetd, the built binary), run
//! always (the latter needs xinetd).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/e2e.rs"]
mod e2e;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::TempDir;
use e2e::{Agent, Backend, Haproxy, Server, poll, render_xinetd_entry, xinetd_conf};

const PACKAGED_XINETD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/deb/xinetd-lb-feedback"
);
const INSTALLED_BIN: &str = "/usr/bin/lb-feedback";
const STATE_DIR: &str = "/var/lib/lb-feedback";
const CONTRIB_SERVICES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/xinetd/services");
/// The system user the package creates and runs the agent as.
const USER: &str = "lb-feedback";
const OWNER: &str = "lb-feedback:lb-feedback";

/// The service block of an xinetd entry, without the header comment.
fn service_block(text: &str) -> &str {
    let start = text.find("service lb-feedback").expect("no service block");
    &text[start..]
}

#[test]
fn packaged_xinetd_entry_is_the_contrib_one_disabled() {
    let contrib = fs::read_to_string(e2e::CONTRIB_XINETD).unwrap();
    let packaged = fs::read_to_string(PACKAGED_XINETD).unwrap();
    let expected = render_xinetd_entry(service_block(&contrib), &[("disable", "yes".into())], &[]);
    let packaged = service_block(&packaged).replace(
        "\t# Shipped disabled: set \"no\" to serve the agent through xinetd.\n",
        "",
    );
    assert_eq!(packaged, expected);
}

fn owner(path: &str) -> String {
    let output = Command::new("stat")
        .args(["-c", "%U:%G", path])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// `lb-feedback mode ...` as an admin runs it: the installed binary, its default config
/// (/etc/lb-feedback/config.json) and state directory (/var/lib/lb-feedback).
fn installed_mode(args: &[&str]) -> String {
    let output = Command::new(INSTALLED_BIN)
        .env_clear()
        .arg("mode")
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "mode {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Puts back the runtime mode the machine had before the test.
struct RestoreMode(Option<String>);

impl Drop for RestoreMode {
    fn drop(&mut self) {
        let path = Path::new(STATE_DIR).join("mode.json");
        match &self.0 {
            Some(text) => drop(fs::write(&path, text)),
            None => drop(fs::remove_file(&path)),
        }
    }
}

/// The user's passwd line split at ':' (name, password, uid, gid, gecos, home, shell), if
/// the user exists.
fn passwd(user: &str) -> Option<Vec<String>> {
    let output = Command::new("getent")
        .args(["passwd", user])
        .output()
        .unwrap();
    if !output.status.success() {
        return None;
    }
    let line = String::from_utf8(output.stdout).unwrap();
    Some(line.trim_end().split(':').map(str::to_string).collect())
}

/// False, with a SKIPPED line, unless `var` is 1 (contrib/deb/ci.sh sets it).
fn wanted(var: &str, what: &str) -> bool {
    if std::env::var_os(var).is_some_and(|v| v == "1") {
        return true;
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {what} ({var}=1; contrib/deb/ci.sh installs the .deb, tests, purges)"
    );
    false
}

/// The three generated pages are where `man` looks, gzipped, and render.
#[test]
fn installed_man_pages_are_found_by_man() {
    if !wanted("LB_FEEDBACK_INSTALLED", "installed man pages") {
        return;
    }
    if !e2e::available("installed_man_pages_are_found_by_man", &["man"]) {
        return;
    }
    for (section, page) in [
        ("8", "lb-feedback"),
        ("8", "lb-feedback-service"),
        ("5", "lb-feedback.json"),
    ] {
        let found = Command::new("man")
            .args(["-w", section, page])
            .output()
            .unwrap();
        let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
        assert_eq!(
            path,
            format!("/usr/share/man/man{section}/{page}.{section}.gz")
        );
        let shown = Command::new("man")
            .args([section, page])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "man {section} {page}: {shown:?}");
        assert!(
            text.contains("NAME") && text.contains(page),
            "man {section} {page}: {text}"
        );
    }
}

#[test]
fn installed_package_answers_on_3333_through_xinetd_and_haproxy_follows() {
    if !wanted("LB_FEEDBACK_INSTALLED", "installed-package test") {
        return;
    }
    if !e2e::available(
        "installed_package_answers_on_3333_through_xinetd_and_haproxy_follows",
        &["haproxy", "xinetd"],
    ) {
        return;
    }

    // What the package put in place.
    let entry = fs::read_to_string("/etc/xinetd.d/lb-feedback").unwrap();
    assert!(entry.contains("\tdisable\t\t= yes\n"), "installed enabled");
    let services = fs::read_to_string("/etc/services").unwrap();
    let line = fs::read_to_string(CONTRIB_SERVICES).unwrap();
    assert_eq!(services.matches(line.as_str()).count(), 1, "{services}");

    // Its own system user: no login shell, no home, a system UID; the state directory is its.
    let user = passwd(USER).expect("postinst created no user lb-feedback");
    assert!(user[6].ends_with("/nologin"), "shell: {user:?}");
    assert_eq!(user[5], "/nonexistent", "home: {user:?}");
    assert!(!Path::new("/nonexistent").exists());
    let uid: u32 = user[2].parse().unwrap();
    assert!((100..1000).contains(&uid), "not a system uid: {user:?}");
    assert!(entry.contains(&format!("\tuser\t\t= {USER}\n")), "{entry}");
    assert!(entry.contains(&format!("\tgroup\t\t= {USER}\n")), "{entry}");
    assert_eq!(owner(STATE_DIR), OWNER);
    assert!(Path::new(STATE_DIR).is_dir() && !Path::new(STATE_DIR).is_symlink());

    // The static probe: `file` says "static-pie linked" for the static PIE rustc makes with
    // +crt-static ("statically linked" for a non-PIE one); a dynamic one names its
    // interpreter.
    let file = Command::new("file")
        .arg("-L")
        .arg(INSTALLED_BIN)
        .output()
        .unwrap();
    let file = String::from_utf8(file.stdout).unwrap();
    assert!(
        file.contains("static-pie linked") || file.contains("statically linked"),
        "{file}"
    );
    assert!(!file.contains("interpreter"), "{file}");

    for path in [
        "/etc/lb-feedback/config.json",
        "/usr/bin/lb-feedback-service",
        "/usr/lib/systemd/system/lb-feedback.socket",
        "/usr/lib/systemd/system/lb-feedback@.service",
        "/usr/lib/systemd/system/lb-feedback-service.service",
        "/usr/lib/sysusers.d/lb-feedback.conf",
        "/usr/lib/tmpfiles.d/lb-feedback.conf",
        "/usr/share/doc/lb-feedback/README.md",
    ] {
        assert!(Path::new(path).is_file(), "{path} not installed");
    }
    // Shipped, never enabled: `systemctl enable` would have linked a unit under /etc.
    let enabled = Command::new("find")
        .args(["/etc/systemd", "-name", "lb-feedback*"])
        .output()
        .unwrap();
    let enabled = String::from_utf8(enabled.stdout).unwrap();
    assert!(enabled.is_empty(), "the package enabled units:\n{enabled}");
    let _restore = RestoreMode(fs::read_to_string(Path::new(STATE_DIR).join("mode.json")).ok());

    // The installed entry as the admin enables it (disable = no), run by an xinetd of the
    // test's own so nothing in /etc changes. Its port comes from the /etc/services line the
    // package added; only `bind` is added, so the test listens on loopback alone.
    let dir = TempDir::new("installed");
    let rendered = render_xinetd_entry(
        &entry,
        &[("disable", "no".into())],
        &[("bind", "127.0.0.1".into())],
    );
    let conf = xinetd_conf(&dir, &dir.file("lb-feedback", &rendered));
    let agent = Agent::xinetd_with(&dir, &conf, 3333);

    // One poll by hand, as `socat - TCP:127.0.0.1:3333` would: one valid line from the agent
    // running as lb-feedback, which records this new poller, owed `up ready`, in the state
    // directory the package made for it. (A table an earlier run left is removed first, so
    // this is a new poller again.)
    let _ = fs::remove_file(format!("{STATE_DIR}/pollers"));
    let reply = poll(3333);
    let percent = reply
        .strip_prefix("up ready ")
        .and_then(|rest| rest.strip_suffix("%\n"))
        .and_then(|n| n.parse::<u8>().ok());
    assert!(percent.is_some_and(|n| n <= 100), "{reply:?}");
    assert_eq!(owner(&format!("{STATE_DIR}/pollers")), OWNER);

    // A real HAProxy polling it: the weight the agent gives, then drain and back through the
    // installed `lb-feedback mode`.
    let backend = Backend::start();
    let haproxy = Haproxy::start(
        &dir,
        &[format!(
            "server s1 {} weight 100 check inter 1s agent-check agent-port 3333 agent-inter 1s",
            backend.addr()
        )],
    );
    let s1 = haproxy.wait_server("s1", "the agent's `up ready N%`", &agent, |s| {
        s.last_agent == "via agent : up"
    });
    assert!(s1.up() && s1.ready() && s1.weight <= 100, "{s1:#?}");

    installed_mode(&["drain"]);
    // Root's command leaves the agent's files to the agent's user.
    assert_eq!(owner(&format!("{STATE_DIR}/mode.json")), OWNER);
    haproxy.wait_server("s1", "DRAIN", &agent, Server::drain);
    installed_mode(&["normal"]);
    haproxy.wait_server("s1", "READY", &agent, |s| s.ready() && s.up());
    installed_mode(&["reset"]);

    // A state directory someone removed: root's `mode` makes it again for the agent's user
    // (the installed config's state_owner), and the agent records its replies there.
    fs::remove_dir_all(STATE_DIR).unwrap();
    installed_mode(&["drain"]);
    assert_eq!(owner(STATE_DIR), OWNER);
    assert_eq!(owner(&format!("{STATE_DIR}/mode.json")), OWNER);
    assert_eq!(poll(3333), "drain #mode\n");
    installed_mode(&["reset"]);
}

/// After `dpkg --purge lb-feedback`: every file the package installed or its scripts made is
/// gone, the /etc/services line too; the system user stays (Debian leaves system users of
/// purged packages; contrib/deb/postrm says why) and owns nothing under /var/lib or /etc.
#[test]
fn purged_package_leaves_only_its_user() {
    if !wanted("LB_FEEDBACK_PURGED", "purge test") {
        return;
    }
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "lb-feedback"])
        .output()
        .unwrap();
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(!status.contains("installed"), "still installed: {status}");
    for path in [
        INSTALLED_BIN,
        "/usr/bin/lb-feedback-service",
        "/etc/lb-feedback",
        "/etc/xinetd.d/lb-feedback",
        "/usr/lib/systemd/system/lb-feedback.socket",
        "/usr/lib/systemd/system/lb-feedback@.service",
        "/usr/lib/systemd/system/lb-feedback-service.service",
        "/usr/lib/sysusers.d/lb-feedback.conf",
        "/usr/lib/tmpfiles.d/lb-feedback.conf",
        "/usr/share/doc/lb-feedback",
        STATE_DIR,
        "/var/lib/private/lb-feedback",
    ] {
        assert!(
            fs::symlink_metadata(path).is_err(),
            "{path} is still there after the purge"
        );
    }
    let services = fs::read_to_string("/etc/services").unwrap();
    assert!(
        !services.lines().any(|l| l.starts_with("lb-feedback")),
        "the /etc/services line is still there"
    );
    assert!(passwd(USER).is_some(), "the purge removed the system user");
    let owned = Command::new("find")
        .args(["/etc", "/var/lib", "/usr", "-xdev", "-user", USER])
        .output()
        .unwrap();
    let owned = String::from_utf8(owned.stdout).unwrap();
    assert!(owned.is_empty(), "still owned by {USER}:\n{owned}");
}

/// One poll from `from`, bounded: the reply line, or what went wrong.
fn poll_from(from: &str, to: SocketAddr) -> Result<String, String> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    socket
        .bind(&from.into())
        .map_err(|e| format!("bind: {e}"))?;
    socket
        .connect_timeout(&to.into(), Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    Ok(reply)
}

/// The contrib xinetd entry's limits (instances, per_source, cps) under the fan-in they are
/// sized for, scaled down to what a CI machine runs: two load balancers (127.0.0.1 and
/// 127.0.0.2) with 20 server lines each polling this host, every check taking a real 1 s
/// sample and the next starting 500 ms after it ended (agent-inter 500ms; HAProxy runs one
/// agent check per server line at a time), for five rounds. That is 40 probes in flight and
/// about 27 connections a second: the old limits (instances 32, per_source 8, cps 50 10)
/// refused 12 of every 20 polls of each source. Not one may be refused.
#[test]
fn contrib_xinetd_limits_take_realistic_fan_in_without_refusals() {
    const SOURCES: [&str; 2] = ["127.0.0.1", "127.0.0.2"];
    const LINES: usize = 20;
    const ROUNDS: usize = 5;
    if !e2e::available(
        "contrib_xinetd_limits_take_realistic_fan_in_without_refusals",
        &["xinetd"],
    ) {
        return;
    }
    let dir = TempDir::new("fan-in");
    dir.file("config.json", "{}");
    // The contrib entry as it is but for its port, user (the state directory is the test's),
    // binary and paths: instances, per_source and cps are the contrib entry's.
    let agent = Agent::xinetd(&dir, &[("LB_FEEDBACK_SAMPLE_MS", "1000")]);
    let port = agent.port;
    let to: SocketAddr = ([127, 0, 0, 1], port).into();

    let started = Instant::now();
    let outcomes: Vec<(String, Result<String, String>)> = std::thread::scope(|scope| {
        let lines: Vec<_> = SOURCES
            .iter()
            .flat_map(|&from| (0..LINES).map(move |_| from))
            .map(|from| {
                scope.spawn(move || {
                    (0..ROUNDS)
                        .map(|_| {
                            let outcome = poll_from(from, to);
                            std::thread::sleep(Duration::from_millis(500));
                            (from.to_string(), outcome)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        lines
            .into_iter()
            .flat_map(|line| line.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();

    let refused: Vec<_> = outcomes
        .iter()
        .filter(|(_, outcome)| !outcome.as_ref().is_ok_and(|r| r.ends_with("%\n")))
        .collect();
    let log = fs::read_to_string(dir.path().join("xinetd-services.log")).unwrap_or_default();
    let failures: Vec<_> = log.lines().filter(|l| l.contains("FAIL")).collect();
    assert!(
        refused.is_empty() && failures.is_empty(),
        "{} of {} polls refused or unanswered in {elapsed:?}, e.g. {:?}\nxinetd: {} FAIL lines, e.g. {:?}\n{}",
        refused.len(),
        outcomes.len(),
        refused.iter().take(3).collect::<Vec<_>>(),
        failures.len(),
        failures.iter().take(3).collect::<Vec<_>>(),
        agent.describe()
    );
    assert_eq!(outcomes.len(), SOURCES.len() * LINES * ROUNDS);
}
