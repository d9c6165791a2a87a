//! End to end: a real HAProxy polls lb-feedback served the two ways users run it —
//! `systemd-socket-activate --inetd` (the model of the `Accept=yes` socket unit) and real xinetd
//! with the contrib entry — and the tests read what HAProxy made of the replies from its admin
//! stats socket and its log.
//!
//! Needs haproxy, systemd-socket-activate and xinetd. Without them each test prints a SKIPPED
//! line and passes, unless LB_FEEDBACK_E2E=1 (CI), where it fails.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/e2e.rs"]
mod e2e;

use std::time::Duration;

use common::{Connections, TempDir, agent};
use e2e::{Agent, Backend, Haproxy, Server, poll, wait_for};

/// Short, so a state change shows within a fraction of a second.
const INTER: &str = "200ms";

/// A server line of backend `b`: HAProxy's own check on `backend`, the agent on its port.
fn server_line(name: &str, backend: &Backend, agent: &Agent, extra: &str) -> String {
    format!(
        "server {name} {} weight 100 check inter 1s agent-check agent-port {} agent-inter {INTER} {extra}",
        backend.addr(),
        agent.port
    )
}

/// Only the TCP monitor counts: `port` against 10 connections, with a threshold (0 is off),
/// and maxconn 40 so the reply carries `maxconn:40`.
fn tcp_config(port: u16, threshold: u32, extra: &str) -> String {
    format!(
        r#"{{"cpu": {{"importance": 0}}, "ram": {{"importance": 0}},
            "tcp": [{{"port": {port}, "max_connections": 10, "threshold": {threshold}}}],
            "maxconn": 40 {extra}}}"#
    )
}

/// `lb-feedback mode MODE` with the served agent's config and state directory.
fn set_mode(dir: &TempDir, mode: &str) {
    let output = agent(dir).args(["mode", mode]).output().unwrap();
    assert!(output.status.success(), "mode {mode}: {output:?}");
}

/// Nothing in HAProxy's log says an agent reply failed or was not understood.
fn assert_clean(haproxy: &Haproxy) {
    let log = haproxy.log();
    for trouble in [
        "agent reports an error",
        "agent warns",
        "Layer7 timeout",
        "Layer7 invalid",
        "reset",
    ] {
        assert!(
            !log.contains(trouble),
            "{trouble:?} in HAProxy's log:\n{log}"
        );
    }
    let failed = log
        .lines()
        .find(|line| line.starts_with("Agent check for server") && line.contains(" failed"));
    assert!(failed.is_none(), "{failed:?}\n{log}");
}

#[test]
fn socket_activate_weight_follows_tcp_load_threshold_drains_and_maxconn_applies() {
    if !e2e::available(
        "socket_activate_weight_follows_tcp_load",
        &["haproxy", "systemd-socket-activate"],
    ) {
        return;
    }
    let dir = TempDir::new("e2e-load");
    let mut held = Connections::open(5);
    let port = held.port();
    dir.file("config.json", &tcp_config(port, 0, ""));
    let agent = Agent::socket_activate(&dir, &[]);
    let backend = Backend::start();
    let haproxy = Haproxy::start(&dir, &[server_line("s1", &backend, &agent, "")]);

    // 5 of 10 connections: 50% of the configured 100, and `maxconn:40` sets the limit.
    let s1 = haproxy.wait_server("s1", "weight 50", &agent, |s| s.weight == 50);
    assert!(s1.up() && s1.ready(), "{s1:#?}");
    assert_eq!(s1.initial_weight, 100);
    assert_eq!(s1.maxconn, "40", "{s1:#?}");

    // 10 of 10: `0%` is weight 0, not DRAIN.
    held.add(5);
    let s1 = haproxy.wait_server("s1", "weight 0", &agent, |s| s.weight == 0);
    assert!(s1.up() && s1.ready(), "{s1:#?}");

    // A threshold of 60%: the reply is drain with its reason after maxconn, and HAProxy
    // takes it without complaint.
    dir.file("config.json", &tcp_config(port, 60, ""));
    let s1 = haproxy.wait_server("s1", "DRAIN", &agent, Server::drain);
    assert!(s1.up(), "{s1:#?}");
    assert_eq!(s1.status, "DRAIN (agent)", "{s1:#?}");
    assert_eq!(
        poll(agent.port),
        format!("drain maxconn:40 #tcp:{port}:100>=60\n")
    );

    // Load back down to 2 of 10: `up ready 80%` leaves DRAIN with the new weight.
    held.close_all();
    held.add(2);
    let s1 = haproxy.wait_server("s1", "READY, weight 80", &agent, |s| {
        s.ready() && s.up() && s.weight == 80
    });
    assert_eq!(s1.status, "UP", "{s1:#?}");
    assert_clean(&haproxy);
}

#[test]
fn socket_activate_modes_maint_stop_and_back() {
    if !e2e::available(
        "socket_activate_modes_maint_stop_and_back",
        &["haproxy", "systemd-socket-activate"],
    ) {
        return;
    }
    let dir = TempDir::new("e2e-modes");
    let held = Connections::open(5);
    dir.file("config.json", &tcp_config(held.port(), 0, ""));
    let agent = Agent::socket_activate(&dir, &[]);
    let backend = Backend::start();
    let haproxy = Haproxy::start(&dir, &[server_line("s1", &backend, &agent, "")]);
    haproxy.wait_server("s1", "weight 50", &agent, |s| s.weight == 50);

    set_mode(&dir, "maint");
    let s1 = haproxy.wait_server("s1", "MAINT", &agent, Server::maint);
    assert!(s1.status.starts_with("MAINT"), "{s1:#?}");

    set_mode(&dir, "normal");
    haproxy.wait_server("s1", "UP and READY, weight 50", &agent, |s| {
        s.up() && s.ready() && s.weight == 50
    });

    // From normal, `stopped` is plain DOWN (from maint, see the xinetd test).
    set_mode(&dir, "stop");
    let s1 = haproxy.wait_server("s1", "DOWN", &agent, |s| s.down() && s.ready());
    assert_eq!(s1.status, "DOWN (agent)", "{s1:#?}");
    assert!(
        haproxy.log().contains("via agent : stopped (mode)"),
        "{}",
        haproxy.log()
    );

    set_mode(&dir, "normal");
    let s1 = haproxy.wait_server("s1", "UP and READY again, weight 50", &agent, |s| {
        s.up() && s.ready() && s.weight == 50
    });
    assert_eq!(s1.agent_status, "L7OK", "{s1:#?}");
}

#[test]
fn broken_config_is_reported_by_haproxy_and_changes_nothing() {
    if !e2e::available(
        "broken_config_is_reported_by_haproxy_and_changes_nothing",
        &["haproxy", "systemd-socket-activate"],
    ) {
        return;
    }
    let dir = TempDir::new("e2e-broken");
    let held = Connections::open(5);
    dir.file("config.json", &tcp_config(held.port(), 0, ""));
    let agent = Agent::socket_activate(&dir, &[]);
    let backend = Backend::start();
    let haproxy = Haproxy::start(&dir, &[server_line("s1", &backend, &agent, "")]);
    let before = haproxy.wait_server("s1", "weight 50", &agent, |s| s.weight == 50);

    // HAProxy 2.6 shows an agent's unknown word in its stats (last_agt) and does not log it:
    // a reply that changes nothing is "neutral" and set_server_check_status() returns before
    // its log line.
    dir.file("config.json", "{ \"cpu\": ");
    let after = haproxy.wait_server("s1", "the agent's error in HAProxy's stats", &agent, |s| {
        s.last_agent == "agent reports an error : error:config"
    });
    // A few more polls of the broken config: still as before. (HAProxy clears last_agt while
    // a check is in progress, hence the wait for it.)
    std::thread::sleep(Duration::from_secs(1));
    let later = haproxy.wait_server("s1", "the error still reported", &agent, |s| {
        s.last_agent == "agent reports an error : error:config"
    });
    for server in [&after, &later] {
        assert_eq!(
            (server.op_state, server.admin_state, server.weight),
            (before.op_state, before.admin_state, before.weight),
            "{server:#?}"
        );
    }
    assert!(later.up() && later.ready() && later.weight == 50);
    assert!(!haproxy.log().contains("error:config"), "{}", haproxy.log());
}

#[test]
fn agent_send_profiles_give_servers_their_own_weights() {
    if !e2e::available(
        "agent_send_profiles_give_servers_their_own_weights",
        &["haproxy", "systemd-socket-activate"],
    ) {
        return;
    }
    let dir = TempDir::new("e2e-profiles");
    let held = Connections::open(5);
    let port = held.port();
    // 5 connections: the base counts them against 50 (90%), rdp against 20 (75%), web against
    // 10 (50%).
    dir.file(
        "config.json",
        &format!(
            r#"{{"cpu": {{"importance": 0}}, "ram": {{"importance": 0}},
                "tcp": [{{"port": {port}, "max_connections": 50}}],
                "profiles": {{
                    "rdp": {{"tcp": [{{"port": {port}, "max_connections": 20}}]}},
                    "web": {{"tcp": [{{"port": {port}, "max_connections": 10}}]}}}}}}"#
        ),
    );
    let agent = Agent::socket_activate(&dir, &[]);
    let backend = Backend::start();
    let haproxy = Haproxy::start(
        &dir,
        &[
            server_line("rdp1", &backend, &agent, r#"agent-send "rdp\n""#),
            server_line("web1", &backend, &agent, r#"agent-send "web\n""#),
            server_line("base1", &backend, &agent, ""),
            server_line("other1", &backend, &agent, r#"agent-send "nope\n""#),
        ],
    );
    for (name, weight) in [("rdp1", 75), ("web1", 50), ("base1", 90)] {
        let server = haproxy.wait_server(name, &format!("weight {weight}"), &agent, |s| {
            s.weight == weight
        });
        assert!(server.up() && server.ready(), "{server:#?}");
    }
    // A profile the config does not have: an error HAProxy reports, the server as it was.
    let other = haproxy.wait_server("other1", "the profile error", &agent, |s| {
        s.last_agent.contains("error:profile")
    });
    assert!(
        other.up() && other.ready() && other.weight == 100,
        "{other:#?}"
    );
}

#[test]
fn fifty_polls_at_100ms_without_timeout_reset_or_error() {
    if !e2e::available(
        "fifty_polls_at_100ms_without_timeout_reset_or_error",
        &["haproxy", "systemd-socket-activate"],
    ) {
        return;
    }
    let dir = TempDir::new("e2e-soak");
    // The default monitors (a 100 ms CPU sample, RAM) and an agent-send profile: every probe
    // reads HAProxy's bytes while it samples, then answers and closes.
    dir.file("config.json", r#"{"profiles": {"rdp": {}}}"#);
    let agent = Agent::socket_activate(&dir, &[]);
    let backend = Backend::start();
    let line = format!(
        "server s1 {} weight 100 check inter 1s agent-check agent-port {} agent-inter 100ms agent-send \"rdp\\n\"",
        backend.addr(),
        agent.port
    );
    let haproxy = Haproxy::start(&dir, &[line]);
    // HAProxy logs failed agent checks (timeouts, resets) but not error words, which only
    // show in its stats: look at those at every turn.
    let mut seen = Vec::new();
    wait_for(
        "50 polls",
        Duration::from_secs(60),
        || {
            let s1 = haproxy.server("s1")?;
            // INI: before the first poll; L7OK: a reply with `up`; CHECKED: one without.
            if !["INI", "L7OK", "CHECKED"].contains(&s1.agent_status.as_str())
                || s1.last_agent.contains("error")
                || s1.last_agent.contains("warns")
            {
                seen.push(s1);
            }
            (agent.connections() >= 50).then_some(())
        },
        || format!("{}\n{}", haproxy.describe(), agent.describe()),
    );
    assert!(seen.is_empty(), "{seen:#?}");
    let s1 = haproxy.server("s1").unwrap();
    assert!(s1.up() && s1.ready() && s1.weight <= 100, "{s1:#?}");
    assert_clean(&haproxy);
}

#[test]
fn xinetd_with_the_contrib_entry_sets_weight_and_modes() {
    if !e2e::available(
        "xinetd_with_the_contrib_entry_sets_weight_and_modes",
        &["haproxy", "xinetd"],
    ) {
        return;
    }
    let dir = TempDir::new("e2e-xinetd");
    let mut held = Connections::open(5);
    dir.file("config.json", &tcp_config(held.port(), 0, ""));
    let agent = Agent::xinetd(&dir, &[]);
    let backend = Backend::start();
    let haproxy = Haproxy::start(&dir, &[server_line("s1", &backend, &agent, "")]);

    let s1 = haproxy.wait_server("s1", "weight 50", &agent, |s| s.weight == 50);
    assert_eq!(s1.maxconn, "40", "{s1:#?}");
    held.add(5);
    haproxy.wait_server("s1", "weight 0", &agent, |s| s.weight == 0 && s.up());
    held.close_all();
    held.add(5);
    // Any non-zero percentage undoes `0%`.
    haproxy.wait_server("s1", "weight 50 again", &agent, |s| s.weight == 50);
    // The state directory works under xinetd: HAProxy is in the poller table, with the last
    // reply it got.
    let table = std::fs::read_to_string(dir.path().join("state/pollers")).unwrap();
    assert!(table.contains("\n127.0.0.1 * "), "{table}");
    assert!(table.contains("50% maxconn:40\n"), "{table}");

    set_mode(&dir, "maint");
    haproxy.wait_server("s1", "MAINT", &agent, Server::maint);
    // From maint, `stopped` takes the server DOWN; HAProxy keeps the maint flag too, since
    // only `ready` clears it.
    set_mode(&dir, "stop");
    let s1 = haproxy.wait_server("s1", "DOWN", &agent, |s| {
        s.down() && s.agent_status == "L7STS"
    });
    assert!(s1.maint(), "{s1:#?}");
    set_mode(&dir, "normal");
    haproxy.wait_server("s1", "UP and READY, weight 50", &agent, |s| {
        s.up() && s.ready() && s.weight == 50
    });
}

/// Two load balancers polling one agent at different intervals (the issue's measurement:
/// with one recovery window for everybody the slow one stayed in DRAIN in half the cycles).
/// HAProxy A polls every second from 127.0.0.1, B every three seconds from 127.0.0.2, with
/// `recovery_seconds` 3 and the default one-second CPU sample (which is what made the slow
/// one's next poll come after a window of 3 s had closed); through drain/normal cycles, by
/// `mode normal` and by a timed drain ending by itself, both come back UP and READY every
/// time. B's agent disabled during a drain and enabled long after: B comes back too. Then,
/// recovery done, a drain set on A's CLI stays: the agent no longer says `ready`.
#[test]
fn two_haproxy_processes_at_1s_and_3s_both_come_back_every_cycle() {
    if !e2e::available(
        "two_haproxy_processes_at_1s_and_3s_both_come_back_every_cycle",
        &["haproxy", "xinetd"],
    ) {
        return;
    }
    let dir = TempDir::new("e2e-two-a");
    let dir_b = TempDir::new("e2e-two-b");
    dir.file("config.json", r#"{"recovery_seconds": 3}"#);
    let xinetd = Agent::xinetd(&dir, &[("LB_FEEDBACK_SAMPLE_MS", "1000")]);
    let backend = Backend::start();
    let line = |inter: &str, extra: &str| {
        format!(
            "server s1 {} weight 100 check inter 1s agent-check agent-port {} agent-inter {inter} {extra}",
            backend.addr(),
            xinetd.port
        )
    };
    let a = Haproxy::start(&dir, &[line("1s", "")]);
    let b = Haproxy::start(&dir_b, &[line("3s", "source 127.0.0.2")]);
    let both = |what: &str, wanted: fn(&Server) -> bool| {
        for haproxy in [&a, &b] {
            haproxy.wait_server("s1", what, &xinetd, wanted);
        }
    };
    let back = |s: &Server| s.up() && s.ready() && s.weight > 0;
    both("UP, READY, with the agent's weight", back);
    const CYCLES: usize = 4;
    for cycle in 1..=CYCLES {
        match cycle % 2 {
            1 => {
                set_mode(&dir, "drain");
                both("DRAIN", Server::drain);
                set_mode(&dir, "normal");
            }
            _ => {
                // Long enough for both to see the drain; it ends by itself.
                let output = agent(&dir)
                    .args(["mode", "drain", "--for", "5s"])
                    .output()
                    .unwrap();
                assert!(output.status.success(), "{output:?}");
                both("DRAIN (timed)", Server::drain);
            }
        }
        both("back UP and READY after the drain", back);
        eprintln!("cycle {cycle} of {CYCLES}: both load balancers back UP and READY");
    }
    // B's agent disabled while drained (an operator, a network cut), the agent back to normal
    // meanwhile, well past recovery_seconds; when the agent is enabled again B is still owed.
    set_mode(&dir, "drain");
    both("DRAIN before B's agent is disabled", Server::drain);
    b.command("disable agent b/s1");
    set_mode(&dir, "normal");
    a.wait_server("s1", "A back UP and READY", &xinetd, back);
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        b.server("s1").unwrap().drain(),
        "B's agent is disabled: still DRAIN"
    );
    b.command("enable agent b/s1");
    b.wait_server(
        "s1",
        "B back UP and READY once its agent is enabled",
        &xinetd,
        back,
    );

    let status = common::stdout(&agent(&dir).arg("status").output().unwrap());
    assert!(status.contains("pollers   2\n"), "{status}");
    assert!(
        status.contains("  127.0.0.1 ") && status.contains("  127.0.0.2 "),
        "{status}"
    );

    // Recovery done for A (three replies and 3 s): a manual drain on its CLI is left alone.
    std::thread::sleep(Duration::from_secs(5));
    a.command("set server b/s1 state drain");
    std::thread::sleep(Duration::from_secs(3));
    let s1 = a.server("s1").unwrap();
    assert!(
        s1.drain(),
        "the agent undid an operator's drain: {s1:#?}\n{status}"
    );
    assert_clean(&a);
    assert_clean(&b);
}

/// The load that made servers flap: TCP hovering at the drain threshold, 9 ↔ 10 connections
/// of max 10 (90 % ↔ 100 %, threshold 95), changing every 2 s, for 40 s, polled every second.
/// s1's agent has the defaults (hysteresis 10: a drain holds until the load is at or below
/// 85); s2's has `hysteresis: 0`, the rule before hysteresis. HAProxy's log counts each
/// server's DRAIN and UP transitions: s1 at most one of each, s2 flapping with the load.
/// Then the load falls to 5 and s1 comes back.
#[test]
fn a_load_hovering_at_its_threshold_drains_once_with_hysteresis() {
    if !e2e::available(
        "a_load_hovering_at_its_threshold_drains_once_with_hysteresis",
        &["haproxy", "systemd-socket-activate"],
    ) {
        return;
    }
    let mut held = Connections::open(9);
    let port = held.port();
    let steady = TempDir::new("e2e-hover-steady");
    let flappy = TempDir::new("e2e-hover-flappy");
    steady.file("config.json", &tcp_config(port, 95, ""));
    flappy.file("config.json", &tcp_config(port, 95, r#", "hysteresis": 0"#));
    let agent_steady = Agent::socket_activate(&steady, &[]);
    let agent_flappy = Agent::socket_activate(&flappy, &[]);
    let backend = Backend::start();
    let line = |name: &str, agent: &Agent| {
        format!(
            "server {name} {} weight 100 check inter 1s agent-check agent-port {} agent-inter 1s",
            backend.addr(),
            agent.port
        )
    };
    let haproxy = Haproxy::start(
        &steady,
        &[line("s1", &agent_steady), line("s2", &agent_flappy)],
    );
    haproxy.wait_server("s1", "UP at 90%", &agent_steady, |s| s.weight == 10);
    haproxy.wait_server("s2", "UP at 90%", &agent_flappy, |s| s.weight == 10);
    let before = haproxy.log().len();
    for step in 0..20 {
        held.set(if step % 2 == 0 { 10 } else { 9 });
        std::thread::sleep(Duration::from_secs(2));
    }
    let log = haproxy.log()[before..].to_string();
    let transitions = |server: &str| {
        // The log lines proper (HAProxy also prints each as a [WARNING] on stderr).
        let name = format!("Server b/{server} ");
        let of = |what: &str| {
            log.lines()
                .filter(|l| l.starts_with(&name) && l.contains(what))
                .count()
        };
        (
            of(" enters drain state"),
            of(" is UP (leaving forced drain)"),
        )
    };
    let (s1, s2) = (transitions("s1"), transitions("s2"));
    eprintln!("over 40 s: s1 (hysteresis 10) {s1:?}, s2 (hysteresis 0) {s2:?} (drains, returns)");
    assert!(s1.0 <= 1 && s1.1 <= 1, "s1 {s1:?}\n{log}");
    assert!(haproxy.server("s1").unwrap().drain(), "{log}");
    // The same load without hysteresis flaps: this test sees the difference.
    assert!(s2.0 >= 5 && s2.1 >= 5, "s2 {s2:?}\n{log}");
    held.close_all();
    held.add(5);
    haproxy.wait_server("s1", "back UP and READY at 50%", &agent_steady, |s| {
        s.up() && s.ready() && s.weight == 50
    });
    assert_clean(&haproxy);
}

/// `min_percent 5` on a saturated server (10 of 10): `5%`, weight 5 of 100, still a share of
/// new sessions; on a `weight 1` line HAProxy rounds 1 × 5 / 100 down to 0, as the README
/// warns; and a threshold still drains.
#[test]
fn min_percent_keeps_a_saturated_server_weighted_and_weight_1_truncates() {
    if !e2e::available(
        "min_percent_keeps_a_saturated_server_weighted_and_weight_1_truncates",
        &["haproxy", "systemd-socket-activate"],
    ) {
        return;
    }
    let held = Connections::open(10);
    let port = held.port();
    let dir = TempDir::new("e2e-floor");
    dir.file("config.json", &tcp_config(port, 0, r#", "min_percent": 5"#));
    let agent = Agent::socket_activate(&dir, &[]);
    let backend = Backend::start();
    let line = |name: &str, weight: u32| {
        format!(
            "server {name} {} weight {weight} check inter 1s agent-check agent-port {} agent-inter {INTER}",
            backend.addr(),
            agent.port
        )
    };
    let haproxy = Haproxy::start(&dir, &[line("s1", 100), line("s2", 1)]);
    // This poll is a new poller, so owed `up ready`.
    assert_eq!(poll(agent.port), "up ready 5% maxconn:40\n");
    let s1 = haproxy.wait_server("s1", "weight 5", &agent, |s| s.weight == 5);
    assert!(s1.up() && s1.ready(), "{s1:#?}");
    let s2 = haproxy.wait_server("s2", "weight 0", &agent, |s| s.weight == 0);
    assert!(s2.up() && s2.ready(), "{s2:#?}");
    dir.file(
        "config.json",
        &tcp_config(port, 95, r#", "min_percent": 5"#),
    );
    haproxy.wait_server("s1", "DRAIN", &agent, Server::drain);
    assert_clean(&haproxy);
}

/// When the agent last saw a poll from `peer` (base config), from `status --json`.
fn last_seen(dir: &TempDir, peer: &str) -> Option<u64> {
    let json = common::stdout(&agent(dir).args(["status", "--json"]).output().unwrap());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let pollers = json["pollers"].as_array()?;
    let poller = pollers.iter().find(|p| p["peer"] == peer)?;
    poller["last_seen_ms"].as_u64()
}

/// The README's check, run by hand three times at once from a load balancer's own address
/// right after a drain ends, must not use up that load balancer's recovery (docs/recovery.md,
/// "Checks by hand"). Two HAProxy processes poll one agent (the one-shot behind
/// systemd-socket-activate): A from 127.0.0.1 with `agent-inter 12s`, B from 127.0.0.3 with
/// `agent-inter 30s`, the default recovery (3 replies, 10 s). `mode drain`: both DRAIN.
/// `mode normal` just after A's poll, then at once three checks from each one's address that read their reply
/// like HAProxy (not shut down first, so they are delivered): each gets `up ready`; both
/// still come back UP, each within about two of its intervals.
#[test]
fn checks_by_hand_from_the_load_balancers_address_leave_its_recovery_at_12s_and_30s() {
    if !e2e::available(
        "checks_by_hand_from_the_load_balancers_address_leave_its_recovery",
        &["haproxy", "systemd-socket-activate"],
    ) {
        return;
    }
    let dir = TempDir::new("e2e-by-hand");
    let dir_b = TempDir::new("e2e-by-hand-b");
    dir.file(
        "config.json",
        r#"{"cpu": {"importance": 0}, "ram": {"importance": 0}}"#,
    );
    let agent = Agent::socket_activate(&dir, &[]);
    let backend = Backend::start();
    let line = |inter: &str, extra: &str| {
        format!(
            "server s1 {} weight 100 check inter 1s agent-check agent-port {} agent-inter {inter} {extra}",
            backend.addr(),
            agent.port
        )
    };
    let a = Haproxy::start(&dir, &[line("12s", "")]);
    let b = Haproxy::start(&dir_b, &[line("30s", "source 127.0.0.3")]);
    let balancers = [(&a, [127, 0, 0, 1], 12), (&b, [127, 0, 0, 3], 30)];
    let wait = |haproxy: &Haproxy, what: &str, within: u64, wanted: fn(&Server) -> bool| {
        wait_for(
            what,
            Duration::from_secs(within),
            || haproxy.server("s1").filter(wanted),
            || {
                format!(
                    "{:#?}\n{}\n{}",
                    haproxy.server("s1"),
                    haproxy.describe(),
                    agent.describe()
                )
            },
        )
    };
    let back = |s: &Server| s.up() && s.ready() && s.weight > 0;
    for (haproxy, _, inter) in balancers {
        wait(haproxy, "UP at the first poll", inter + 3, back);
    }
    set_mode(&dir, "drain");
    for (haproxy, _, inter) in balancers {
        wait(haproxy, "DRAIN", inter + 3, Server::drain);
    }
    // Right after A's own poll, so its next one comes past recovery_seconds: three checks
    // counted as three would leave it a bare `100%`, and A in DRAIN.
    let polled = last_seen(&dir, "127.0.0.1");
    wait_for(
        "A's next poll",
        Duration::from_secs(15),
        || (last_seen(&dir, "127.0.0.1") != polled).then_some(()),
        || agent.describe(),
    );
    set_mode(&dir, "normal");
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], agent.port));
    for (_, source, _) in balancers {
        for check in 1..=3 {
            let mut stream = common::connect_from(source, to);
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reply = String::new();
            std::io::Read::read_to_string(&mut stream, &mut reply).unwrap();
            assert_eq!(reply, "up ready 100%\n", "check {check} from {source:?}");
        }
    }
    let ended = std::time::Instant::now();
    for (haproxy, source, inter) in balancers {
        let s1 = wait(
            haproxy,
            "UP again after the checks by hand",
            2 * inter + 3,
            back,
        );
        eprintln!(
            "{source:?} (agent-inter {inter}s): UP {:.1} s after mode normal and the checks",
            ended.elapsed().as_secs_f64()
        );
        assert_eq!(s1.agent_status, "L7OK", "{s1:#?}");
    }
    assert_clean(&a);
    assert_clean(&b);
}
