//! Recovery per load balancer over real loopback sockets: two load balancers (source addresses
//! 127.0.0.1 and 127.0.0.2) polling at different intervals, through the inetd path (the
//! one-shot binary with the connection as stdio, as xinetd runs it) and through
//! lb-feedback-service; profiles with a timed drain longer than `recovery_seconds`; an unknown
//! profile in drain mode; many probes updating the poller table at once; `lb-feedback status`.
#![cfg(unix)]

mod common;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "common/service.rs"]
mod service;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{TempDir, agent, connect_from, reply, serve_from, stdout};
use service::Service;

const A: [u8; 4] = [127, 0, 0, 1];
const B: [u8; 4] = [127, 0, 0, 2];
/// Every reply is `100%` (or `up ready 100%`): no monitor counts, so nothing is sampled.
const CONFIG: &str = r#"{"cpu": {"importance": 0}, "ram": {"importance": 0},
    "recovery_seconds": 1, "profiles": {"web": {}}}"#;
const BOUND: Duration = Duration::from_secs(10);

/// How the agent is reached.
enum Via {
    /// The one-shot binary per connection, as xinetd and systemd's `Accept=yes` run it.
    Inetd,
    Service(Service),
}

impl Via {
    /// The log says when it listens (a test connection would be a poller).
    fn service(dir: &TempDir) -> Via {
        Via::Service(Service::run(dir).start())
    }

    /// One poll from `source`, sending `send` as HAProxy's agent-send does.
    fn poll(&self, dir: &TempDir, source: [u8; 4], send: &[u8]) -> String {
        match self {
            Via::Inetd => {
                let (mut client, mut child) = serve_from(agent(dir), source);
                client.write_all(send).unwrap();
                reply(&mut client, &mut child)
            }
            Via::Service(service) => {
                let mut stream = connect_from(source, service.addr());
                stream.set_read_timeout(Some(BOUND)).unwrap();
                stream.write_all(send).unwrap();
                let mut text = String::new();
                stream.read_to_string(&mut text).unwrap();
                text
            }
        }
    }
}

impl Via {
    /// One poll from `source` whose peer shuts its side down at once, as `socat` with empty
    /// input does; `read`: it still reads the reply (then it is back when the agent has
    /// finished), else it closes without reading (the one-shot only: its exit is the sign).
    fn poll_shut(&self, dir: &TempDir, source: [u8; 4], read: bool) -> String {
        let (mut stream, child) = match self {
            Via::Inetd => {
                let (client, child) = serve_from(agent(dir), source);
                (client, Some(child))
            }
            Via::Service(service) => (connect_from(source, service.addr()), None),
        };
        stream.set_read_timeout(Some(BOUND)).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut text = String::new();
        if read {
            stream.read_to_string(&mut text).unwrap();
        }
        drop(stream);
        if let Some(mut child) = child {
            assert!(child.wait().unwrap().success());
        }
        text
    }
}

/// `source`'s entry in the poller table, from `status --json`.
fn entry(dir: &TempDir, source: &str) -> Option<serde_json::Value> {
    let json = stdout(&agent(dir).args(["status", "--json"]).output().unwrap());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let pollers = json["pollers"].as_array().unwrap();
    pollers.iter().find(|p| p["peer"] == source).cloned()
}

/// The `up ready` replies counted toward `source`'s recovery.
fn sent(dir: &TempDir, source: &str) -> Option<u64> {
    entry(dir, source)?["owed"]["sent"].as_u64()
}

/// Replies to a peer that shut its side down before the write (`socat` with empty input, a
/// client gone) are sent but do not count toward recovery; HAProxy's own polls do.
fn replies_to_a_shut_peer_do_not_count(via: &Via, dir: &TempDir, closes: bool) {
    mode(dir, &["drain"]);
    assert_eq!(via.poll(dir, A, b""), "drain #mode\n");
    mode(dir, &["normal"]);
    for _ in 0..3 {
        assert_eq!(via.poll_shut(dir, A, true), "up ready 100%\n");
        if closes {
            assert_eq!(via.poll_shut(dir, A, false), "");
        }
    }
    assert_eq!(sent(dir, "127.0.0.1"), Some(0));
    // A peer never seen whose only reply went unread is not in the table at all.
    via.poll_shut(dir, B, true);
    assert_eq!(entry(dir, "127.0.0.2"), None);
    // The poller's own polls are counted, each.
    assert_eq!(via.poll(dir, A, b""), "up ready 100%\n");
    assert_eq!(sent(dir, "127.0.0.1"), Some(1));
}

#[test]
fn replies_to_a_shut_peer_do_not_count_through_the_inetd_path() {
    let dir = TempDir::new("pollers-shut-inetd");
    dir.file("config.json", CONFIG);
    replies_to_a_shut_peer_do_not_count(&Via::Inetd, &dir, true);
}

#[test]
fn replies_to_a_shut_peer_do_not_count_through_the_service() {
    let dir = TempDir::new("pollers-shut-service");
    dir.file("config.json", CONFIG);
    let via = Via::service(&dir);
    replies_to_a_shut_peer_do_not_count(&via, &dir, false);
}

/// The issue's own check: `socat -t 5` with empty input from the poller's address sends its
/// FIN at once, still reads the reply, and must not count toward that poller's recovery.
#[test]
fn socat_with_empty_input_gets_up_ready_and_is_not_counted() {
    if !e2e::available("socat_with_empty_input_is_not_counted", &["socat"]) {
        return;
    }
    let dir = TempDir::new("pollers-socat");
    dir.file("config.json", CONFIG);
    let service = Service::run(&dir).start();
    let port = service.addr().port();
    let via = Via::Service(service);
    mode(&dir, &["drain"]);
    assert_eq!(via.poll(&dir, A, b""), "drain #mode\n");
    mode(&dir, &["normal"]);
    let target = format!("TCP:127.0.0.1:{port},bind=127.0.0.1");
    for _ in 0..3 {
        let output = std::process::Command::new("socat")
            .args(["-t", "5", "-", &target])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(stdout(&output), "up ready 100%\n", "{output:?}");
    }
    assert_eq!(sent(&dir, "127.0.0.1"), Some(0));
}

fn mode(dir: &TempDir, args: &[&str]) {
    let output = agent(dir).arg("mode").args(args).output().unwrap();
    assert!(output.status.success(), "{output:?}");
}

/// Polls every `every` until a reply without `up ready`; returns how many carried it.
fn polls_until_bare(
    via: &Via,
    dir: &TempDir,
    source: [u8; 4],
    send: &[u8],
    every: Duration,
) -> usize {
    let until = Instant::now() + BOUND;
    let mut owed = 0;
    loop {
        let line = via.poll(dir, source, send);
        match line.strip_prefix("up ready ") {
            Some(rest) => {
                assert_eq!(rest, "100%\n");
                owed += 1;
            }
            None => {
                assert_eq!(line, "100%\n");
                return owed;
            }
        }
        assert!(
            Instant::now() < until,
            "still `up ready` after {owed} polls"
        );
        std::thread::sleep(every);
    }
}

/// The scenario that stranded servers: A (base config) polls often, B (profile `web`) rarely
/// and is away when the timed drain ends; both must get their `up ready` replies.
fn two_load_balancers_both_recover(via: &Via, dir: &TempDir) {
    let fast = Duration::from_millis(250);
    // New pollers are owed: three replies and a second, each.
    assert!(polls_until_bare(via, dir, A, b"", fast) >= 3);
    assert!(polls_until_bare(via, dir, B, b"web\n", fast) >= 3);

    // A drain longer than recovery_seconds, ending by itself.
    let set = Instant::now();
    mode(dir, &["drain", "--for", "2s"]);
    assert_eq!(via.poll(dir, B, b"web\n"), "drain #mode\n");
    while set.elapsed() < Duration::from_millis(1500) {
        assert_eq!(via.poll(dir, A, b""), "drain #mode\n");
        std::thread::sleep(fast);
    }
    std::thread::sleep(Duration::from_millis(2200).saturating_sub(set.elapsed()));
    let owed = polls_until_bare(via, dir, A, b"", fast);
    assert!(owed >= 3, "A got {owed} `up ready`");
    // B comes back long after A is done (and after any window of recovery_seconds would
    // have closed): still owed, all of it.
    std::thread::sleep(Duration::from_millis(1500));
    let owed = polls_until_bare(via, dir, B, b"web\n", fast);
    assert!(owed >= 3, "B got {owed} `up ready`");

    let status = stdout(&agent(dir).arg("status").output().unwrap());
    let lines: Vec<&str> = status.lines().collect();
    assert!(lines.contains(&"pollers   2"), "{status}");
    let a = lines
        .iter()
        .find(|l| l.starts_with("  127.0.0.1 "))
        .unwrap();
    let b = lines
        .iter()
        .find(|l| l.starts_with("  127.0.0.2 "))
        .unwrap();
    let words = |line: &str| {
        line.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (a, b) = (words(a), words(b));
    assert_eq!([&a[1], &a[4], &a[5]], ["(base)", "100%", "no"], "{status}");
    assert_eq!([&b[1], &b[4], &b[5]], ["web", "100%", "no"], "{status}");
}

#[test]
fn two_load_balancers_through_the_inetd_path() {
    let dir = TempDir::new("pollers-inetd");
    dir.file("config.json", CONFIG);
    two_load_balancers_both_recover(&Via::Inetd, &dir);
}

#[test]
fn two_load_balancers_through_the_service() {
    let dir = TempDir::new("pollers-service");
    dir.file("config.json", CONFIG);
    let via = Via::service(&dir);
    two_load_balancers_both_recover(&via, &dir);
}

/// An unknown profile is `error:profile` in every mode, so HAProxy never drains such a server
/// (it would stay drained: an error reply changes nothing).
fn unknown_profile_in_every_mode(via: &Via, dir: &TempDir) {
    for (set, word) in [("drain", "drain"), ("maint", "maint"), ("stop", "stopped")] {
        mode(dir, &[set]);
        assert_eq!(via.poll(dir, A, b"nope\n"), "error:profile\n", "{set}");
        assert_eq!(via.poll(dir, A, b"web\n"), format!("{word} #mode\n"));
    }
    mode(dir, &["normal"]);
    assert_eq!(via.poll(dir, A, b"nope\n"), "error:profile\n");
    assert_eq!(via.poll(dir, A, b"web\n"), "up ready 100%\n");
    // Unknown profiles are no pollers: nobody could fill the table with names.
    let status = stdout(&agent(dir).arg("status").output().unwrap());
    assert!(
        status.contains("pollers   1\n") && !status.contains("nope"),
        "{status}"
    );
}

#[test]
fn an_unknown_profile_is_an_error_in_every_mode_through_the_inetd_path() {
    let dir = TempDir::new("pollers-profile-inetd");
    dir.file("config.json", CONFIG);
    unknown_profile_in_every_mode(&Via::Inetd, &dir);
}

#[test]
fn an_unknown_profile_is_an_error_in_every_mode_through_the_service() {
    let dir = TempDir::new("pollers-profile-service");
    dir.file("config.json", CONFIG);
    let via = Via::service(&dir);
    unknown_profile_in_every_mode(&via, &dir);
}

#[test]
fn many_probes_at_once_lose_no_update_and_corrupt_nothing() {
    const N: u8 = 40;
    let dir = TempDir::new("pollers-concurrent");
    dir.file("config.json", CONFIG);
    for round in 1..=2 {
        std::thread::scope(|scope| {
            for i in 1..=N {
                let dir = &dir;
                scope.spawn(move || {
                    let line = Via::Inetd.poll(dir, [127, 0, 1, i], b"");
                    assert_eq!(line, "up ready 100%\n", "round {round}, 127.0.1.{i}");
                });
            }
        });
        // Each poller's count went up by one per round: none lost, none counted twice.
        let table = std::fs::read_to_string(dir.path().join("state/pollers")).unwrap();
        let counts: Vec<&str> = table
            .lines()
            .skip(1)
            .map(|line| line.split(' ').nth(5).unwrap())
            .collect();
        assert_eq!(counts.len(), N as usize, "{table}");
        assert!(counts.iter().all(|c| *c == round.to_string()), "{table}");
    }
    let status = agent(&dir).arg("status").output().unwrap();
    assert!(status.status.success());
    assert!(stdout(&status).contains(&format!("pollers   {N}\n")));
}

#[test]
fn status_shows_the_mode_and_says_when_nobody_polled_yet() {
    let dir = TempDir::new("pollers-status");
    let text = stdout(&agent(&dir).arg("status").output().unwrap());
    assert!(
        text.starts_with("mode      normal (built-in default)\n"),
        "{text}"
    );
    assert!(text.contains("pollers   none yet"), "{text}");
    mode(&dir, &["maint", "--for", "1h"]);
    let text = stdout(&agent(&dir).arg("status").output().unwrap());
    assert!(
        text.starts_with("mode      maint (runtime mode set with `lb-feedback mode`"),
        "{text}"
    );
    assert!(
        text.contains("expires in 1h 0m") || text.contains("expires in 59m"),
        "{text}"
    );
}

#[test]
fn a_threshold_drain_and_its_end_under_concurrent_probes_are_exactly_three_events() {
    let dir = TempDir::new("pollers-history");
    let mut held = common::Connections::open(2);
    let port = held.port();
    dir.file(
        "config.json",
        &format!(
            r#"{{"cpu": {{"importance": 0}}, "ram": {{"importance": 0}},
                "tcp": [{{"port": {port}, "max_connections": 10, "threshold": 50}}]}}"#
        ),
    );
    // Ten probes at once from one load balancer, as xinetd runs them.
    let round = |want: &str| {
        std::thread::scope(|scope| {
            let polls: Vec<_> = (0..10)
                .map(|_| scope.spawn(|| Via::Inetd.poll(&dir, A, b"")))
                .collect();
            for poll in polls {
                let line = poll.join().unwrap();
                assert!(line.contains(want), "{line:?}, wanted {want:?}");
            }
        });
    };
    round("80%");
    held.add(5);
    round(&format!("drain #tcp:{port}:70>=50"));
    held.close_all();
    round("100%");
    let output = agent(&dir).args(["status", "--json"]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let events: Vec<(String, String, String)> = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["peer"], "127.0.0.1");
            let text = |key: &str| e[key].as_str().unwrap().to_string();
            (text("from"), text("to"), text("why"))
        })
        .collect();
    let expected = [
        ("new", "normal", String::new()),
        ("normal", "drain", format!("tcp:{port}:70>=50")),
        ("drain", "normal", String::new()),
    ]
    .map(|(from, to, why)| (from.to_string(), to.to_string(), why));
    assert_eq!(events, expected);
    assert_eq!(status["pollers"].as_array().unwrap().len(), 1);
    assert_eq!(status["pollers"][0]["last_reply"], "up ready 100%");
    // The same, for people; a mode change is an event too.
    mode(&dir, &["maint"]);
    let text = stdout(&agent(&dir).arg("status").output().unwrap());
    assert!(text.contains("events    4 (the last 20 at most"), "{text}");
    assert!(
        text.contains(&format!(
            "  127.0.0.1 (base)  normal -> drain  tcp:{port}:70>=50\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("  mode  normal -> maint  lb-feedback mode maint until changed\n"),
        "{text}"
    );
    let recent = stdout(
        &agent(&dir)
            .args(["status", "--since", "1h"])
            .output()
            .unwrap(),
    );
    assert!(
        recent.contains("events    4 (of the last 1h 0m)"),
        "{recent}"
    );
}

/// `log: "syslog"`: every change, and only a change, is one datagram to /dev/log. The agent
/// runs in a mount namespace whose /dev has the test's socket as `log` (this machine may have
/// no syslog daemon, and the test must not write to the real one).
#[test]
fn with_log_syslog_each_change_is_one_datagram_to_dev_log() {
    const TEST: &str = "with_log_syslog_each_change_is_one_datagram_to_dev_log";
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        let why = format!("SKIPPED: {TEST} needs root (a mount namespace)");
        assert!(!common::e2e_required(), "{why}");
        eprintln!("{why}");
        return;
    }
    if !e2e::available(TEST, &["unshare"]) {
        return;
    }
    let dir = TempDir::new("pollers-syslog");
    dir.file(
        "config.json",
        r#"{"cpu": {"importance": 0}, "ram": {"importance": 0}, "log": "syslog"}"#,
    );
    let socket = dir.path().join("log.sock");
    let daemon = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    daemon.set_read_timeout(Some(BOUND)).unwrap();
    let in_namespace = || {
        let plain = agent(&dir);
        let mut command = std::process::Command::new("unshare");
        command
            .args(["-m", "sh", "-c"])
            .arg(r#"mount -t tmpfs lbf /dev && ln -s "$0" /dev/log && exec "$@""#)
            .arg(&socket)
            .arg(plain.get_program())
            .env_clear()
            .envs(plain.get_envs().filter_map(|(k, v)| Some((k, v?))));
        command
    };
    let poll = || {
        let (mut client, mut child) = serve_from(in_namespace(), A);
        reply(&mut client, &mut child)
    };
    assert_eq!(poll(), "up ready 100%\n");
    let mut datagram = [0u8; 512];
    let n = daemon.recv(&mut datagram).unwrap();
    let text = String::from_utf8_lossy(&datagram[..n]).to_string();
    assert!(text.starts_with("<29>lb-feedback["), "{text}");
    assert!(
        text.ends_with("]: 127.0.0.1 (base): new -> normal"),
        "{text}"
    );
    // No change, no datagram.
    assert_eq!(poll(), "up ready 100%\n");
    daemon.set_nonblocking(true).unwrap();
    assert!(
        daemon.recv(&mut datagram).is_err(),
        "a datagram without a change"
    );
    daemon.set_nonblocking(false).unwrap();
    mode(&dir, &["drain"]);
    assert_eq!(poll(), "drain #mode\n");
    let n = daemon.recv(&mut datagram).unwrap();
    let text = String::from_utf8_lossy(&datagram[..n]).to_string();
    assert!(
        text.ends_with("]: 127.0.0.1 (base): normal -> drain (mode)"),
        "{text}"
    );
}
