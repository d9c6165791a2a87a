//! Steady steering through the real binary: a drain held by hysteresis across one-shot probes
//! (each its own process, sharing the state directory), per profile; smoothing over real
//! time; the weight floor; a person's `--explain` that reads but moves nothing; a hostile or
//! damaged memory file. The load is real ESTABLISHED connections on a loopback port.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::{Connections, TempDir, agent, agent_without_cpu_ram, reply, serve, stderr, stdout};

/// An agent whose only monitor is TCP on `port` against 10; `extra` are more variables.
fn tcp_agent(dir: &TempDir, tcp: &str, extra: &[(&str, &str)]) -> Command {
    let mut command = agent_without_cpu_ram(dir);
    command
        .env("LB_FEEDBACK_TCP", tcp)
        .envs(extra.iter().copied());
    command
}

/// One poll over a socket, as HAProxy makes it, sending `send` first (agent-send).
fn poll(command: Command, send: &str) -> String {
    let (mut client, mut child) = serve(command);
    client.write_all(send.as_bytes()).unwrap();
    reply(&mut client, &mut child)
}

#[test]
fn a_drain_holds_until_the_load_is_at_or_below_release_across_probes() {
    let dir = TempDir::new("steady-hold");
    let mut held = Connections::open(10);
    let port = held.port();
    let tcp = format!("{port}:10:1:95");
    let probe = || poll(tcp_agent(&dir, &tcp, &[]), "");
    assert_eq!(probe(), format!("drain #tcp:{port}:100>=95\n"));
    // 9 of 10 is under the threshold but above its release (95 - 10): still drained.
    held.set(9);
    assert_eq!(probe(), format!("drain #tcp:{port}:90>85(release)\n"));
    assert_eq!(probe(), format!("drain #tcp:{port}:90>85(release)\n"));
    // A person's --explain shows the held drain and moves nothing.
    let explain = stdout(
        &tcp_agent(&dir, &tcp, &[])
            .arg("--explain")
            .output()
            .unwrap(),
    );
    assert!(
        explain.contains("95 (release 85), HOLDING a drain: 90.0 is still above release"),
        "{explain}"
    );
    assert!(explain.contains("threshold   held until the load is at or below release"));
    let status = stdout(&tcp_agent(&dir, &tcp, &[]).arg("status").output().unwrap());
    assert!(
        status.contains(&format!(
            "held      1 drain(s) held until the load is at or below release:\n  (base) tcp:{port}: load 90.0, updated "
        )),
        "{status}"
    );
    let json = stdout(
        &tcp_agent(&dir, &tcp, &[])
            .args(["status", "--json"])
            .output()
            .unwrap(),
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["held_drains"][0]["monitor"], format!("tcp:{port}"));
    assert_eq!(json["held_drains"][0]["profile"], serde_json::Value::Null);
    held.set(8);
    let explain = stdout(
        &tcp_agent(&dir, &tcp, &[])
            .arg("--explain")
            .output()
            .unwrap(),
    );
    assert!(explain.ends_with("reply       20%\n"), "{explain}");
    held.set(9);
    assert_eq!(probe(), format!("drain #tcp:{port}:90>85(release)\n"));
    // At the release it lets go; back at 9 it stays released, under the threshold.
    held.set(8);
    assert_eq!(probe(), "20%\n");
    held.set(9);
    assert_eq!(probe(), "10%\n");
    // hysteresis 0 is the old rule: under the threshold is normal at once.
    held.set(10);
    let old = |dir: &TempDir| poll(tcp_agent(dir, &tcp, &[("LB_FEEDBACK_HYSTERESIS", "0")]), "");
    let fresh = TempDir::new("steady-hold-0");
    assert_eq!(old(&fresh), format!("drain #tcp:{port}:100>=95\n"));
    held.set(9);
    assert_eq!(old(&fresh), "10%\n");
    // A release of its own: at or below 50, from the fifth field.
    held.set(10);
    let own = TempDir::new("steady-hold-own");
    let tcp = format!("{port}:10:1:95:50");
    let probe = || poll(tcp_agent(&own, &tcp, &[]), "");
    assert_eq!(probe(), format!("drain #tcp:{port}:100>=95\n"));
    held.set(6);
    assert_eq!(probe(), format!("drain #tcp:{port}:60>50(release)\n"));
    held.set(5);
    assert_eq!(probe(), "50%\n");
}

#[test]
fn each_profile_holds_its_own_drain() {
    let dir = TempDir::new("steady-profiles");
    let mut held = Connections::open(10);
    let port = held.port();
    dir.file(
        "config.json",
        &format!(
            r#"{{"cpu": {{"importance": 0}}, "ram": {{"importance": 0}}, "recovery": "never",
                "tcp": [{{"port": {port}, "max_connections": 10, "threshold": 95}}],
                "profiles": {{"web": {{"tcp": [{{"port": {port}, "max_connections": 10,
                    "threshold": 99, "release": 95}}]}}}}}}"#
        ),
    );
    let probe = |send: &str| poll(agent(&dir), send);
    assert_eq!(probe(""), format!("drain #tcp:{port}:100>=95\n"));
    assert_eq!(probe("web\n"), format!("drain #tcp:{port}:100>=99\n"));
    held.set(9);
    // The base holds (release 85); web lets go at its own release, 95.
    assert_eq!(probe(""), format!("drain #tcp:{port}:90>85(release)\n"));
    assert_eq!(probe("web\n"), "10%\n");
}

#[test]
fn smoothing_moves_the_weight_a_little_on_a_burst_and_thresholds_still_act_at_once() {
    let dir = TempDir::new("steady-smooth");
    let mut held = Connections::open(2);
    let port = held.port();
    let tcp = format!("{port}:10");
    let smooth = [("LB_FEEDBACK_SMOOTHING_SECONDS", "10")];
    let probe = || poll(tcp_agent(&dir, &tcp, &smooth), "");
    assert_eq!(probe(), "80%\n");
    std::thread::sleep(Duration::from_secs(1));
    // A burst to 10 of 10: the raw figure says 0%. About a second after the previous probe,
    // the average moves 1 - e^(-1/10) = 10 % of the way (a bit more when the probes are
    // slow to start): 20 + 0.1 x 80 = 28, so 72%, and at most 2 s apart 65%.
    held.set(10);
    let burst = probe();
    let percent: u8 = burst.trim_end().trim_end_matches('%').parse().unwrap();
    assert!((65..=73).contains(&percent), "{burst:?}");
    assert_eq!(
        poll(tcp_agent(&TempDir::new("steady-raw"), &tcp, &[]), ""),
        "0%\n"
    );
    // A threshold acts on the probe's own figure, not the average.
    let tcp = format!("{port}:10:1:95");
    let drain = poll(tcp_agent(&dir, &tcp, &smooth), "");
    assert_eq!(drain, format!("drain #tcp:{port}:100>=95\n"));
    let explain = stdout(
        &tcp_agent(&dir, &tcp, &smooth)
            .arg("--explain")
            .output()
            .unwrap(),
    );
    assert!(
        explain.contains("moving average over a 10 s time constant"),
        "{explain}"
    );
    assert!(
        explain.contains(&format!("tcp:{port}: 100.0 this probe, ")),
        "{explain}"
    );
}

#[test]
fn min_percent_floors_a_saturated_reply_and_a_threshold_still_drains() {
    let dir = TempDir::new("steady-floor");
    let held = Connections::open(10);
    let port = held.port();
    let floor = [("LB_FEEDBACK_MIN_PERCENT", "5")];
    let by_hand = |tcp: &str| stdout(&tcp_agent(&dir, tcp, &floor).output().unwrap());
    assert_eq!(by_hand(&format!("{port}:10")), "5%\n");
    assert_eq!(by_hand(&format!("{port}:20")), "50%\n");
    assert_eq!(
        by_hand(&format!("{port}:10:1:95")),
        format!("drain #tcp:{port}:100>=95\n")
    );
    let explain = stdout(
        &tcp_agent(&dir, &format!("{port}:10"), &floor)
            .arg("--explain")
            .output()
            .unwrap(),
    );
    assert!(
        explain.contains("rounded and clamped to 0..100 = 0%, raised to min_percent = 5%"),
        "{explain}"
    );
}

#[test]
fn a_hostile_or_damaged_memory_costs_the_hold_never_the_reply() {
    let dir = TempDir::new("steady-hostile");
    let mut held = Connections::open(10);
    let port = held.port();
    let tcp = format!("{port}:10:1:95");
    let state = dir.path().join("state");
    let probe = || {
        let command = tcp_agent(&dir, &tcp, &[]);
        poll(command, "")
    };
    assert_eq!(probe(), format!("drain #tcp:{port}:100>=95\n"));
    held.set(9);
    // A link planted where the memory is: not followed, the figures answer as they are.
    let victim = dir.file("victim", "untouched\n");
    std::fs::remove_file(state.join("steady")).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("steady")).unwrap();
    assert_eq!(probe(), "10%\n");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    let output = tcp_agent(&dir, &tcp, &[])
        .arg("--explain")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).contains("the steady-steering memory is unusable"),
        "{}",
        stdout(&output)
    );
    // Garbage: started afresh, and the next probes share a good file again.
    std::fs::remove_file(state.join("steady")).unwrap();
    std::fs::write(
        state.join("steady"),
        "lb-feedback-steady 1 1 0000\n* tcp 1 2 1\n",
    )
    .unwrap();
    held.set(10);
    assert_eq!(probe(), format!("drain #tcp:{port}:100>=95\n"));
    held.set(9);
    assert_eq!(probe(), format!("drain #tcp:{port}:90>85(release)\n"));
    // Twenty probes at once lose no update: the file still checks out and still holds.
    let probes: Vec<_> = (0..20)
        .map(|_| {
            let command = tcp_agent(&dir, &tcp, &[]);
            std::thread::spawn(move || poll(command, ""))
        })
        .collect();
    for probe in probes {
        assert_eq!(
            probe.join().unwrap(),
            format!("drain #tcp:{port}:90>85(release)\n")
        );
    }
    let output = tcp_agent(&dir, &tcp, &[])
        .arg("--explain")
        .output()
        .unwrap();
    assert!(
        !stdout(&output).contains("steady-steering memory"),
        "{output:?}"
    );
    assert_eq!(stderr(&output), "");
}

/// A load hovering at a threshold flips a held drain's reason between its threshold and its
/// release on every poll; the history keeps one event for the one drain, not one per flip.
#[test]
fn a_held_drain_flipping_between_threshold_and_release_is_one_event() {
    let dir = TempDir::new("steady-flip");
    let mut held = Connections::open(10);
    let port = held.port();
    let tcp = format!("{port}:10:1:95");
    let probe = || poll(tcp_agent(&dir, &tcp, &[]), "");
    for _ in 0..3 {
        held.set(10);
        assert_eq!(probe(), format!("drain #tcp:{port}:100>=95\n"));
        held.set(9);
        assert_eq!(probe(), format!("drain #tcp:{port}:90>85(release)\n"));
    }
    let json = stdout(
        &tcp_agent(&dir, &tcp, &[])
            .args(["status", "--json"])
            .output()
            .unwrap(),
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let events: Vec<(&str, &str)> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .collect();
    assert_eq!(events, [("new", "drain")], "{json:#}");
}
