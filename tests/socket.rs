//! The binary with a real loopback TCP connection as its stdin, stdout and stderr, the way
//! xinetd and systemd's `Accept=yes` hand it over: one line, no stderr bytes, a clean FIN.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{TempDir, agent, reply, serve};

#[test]
fn one_line_after_agent_send_and_a_clean_close() {
    let dir = TempDir::new("sock-send");
    dir.file("config.json", r#"{"profiles": {"rdp": {}}}"#);
    let mut command = agent(&dir);
    command.env("LB_FEEDBACK_RECOVERY", "never");
    let (mut client, mut child) = serve(command);
    client.write_all(b"rdp\n").unwrap();
    let text = reply(&mut client, &mut child);
    assert!(
        text.ends_with("%\n") && text.lines().count() == 1,
        "{text:?}"
    );
    text.trim_end_matches("%\n").parse::<u8>().unwrap();
}

#[test]
fn nothing_sent_still_answers_after_the_sample() {
    let dir = TempDir::new("sock-silent");
    let mut command = agent(&dir);
    command.env("LB_FEEDBACK_RECOVERY", "never");
    let start = Instant::now();
    let (mut client, mut child) = serve(command);
    let text = reply(&mut client, &mut child);
    assert!(text.ends_with("%\n"), "{text:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn oversized_agent_send_is_drained_so_the_close_is_not_a_reset() {
    let dir = TempDir::new("sock-big");
    let mut command = agent(&dir);
    command.env("LB_FEEDBACK_RECOVERY", "never");
    let (mut client, mut child) = serve(command);
    client.write_all(&[b'x'; 8000]).unwrap();
    // Had the agent closed with unread input, its kernel would have sent a reset, which
    // shows as a pending error on our side once the agent has gone.
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        client.take_error().unwrap().is_none(),
        "the agent reset the connection"
    );
    // Without profiles in the config, agent-send selects nothing and is only drained.
    let text = reply(&mut client, &mut child);
    assert!(
        text.ends_with("%\n") && text.lines().count() == 1,
        "{text:?}"
    );
}

#[test]
fn unknown_profile_is_an_error_word() {
    let dir = TempDir::new("sock-profile");
    dir.file("config.json", r#"{"profiles": {"rdp": {}}}"#);
    let mut command = agent(&dir);
    command.env("LB_FEEDBACK_CPU_IMPORTANCE", "0");
    let (mut client, mut child) = serve(command);
    client.write_all(b"web\n").unwrap();
    assert_eq!(reply(&mut client, &mut child), "error:profile\n");
}

#[test]
fn a_first_poll_is_a_new_poller_owed_recovery() {
    let dir = TempDir::new("sock-first");
    let (mut client, mut child) = serve(agent(&dir));
    let text = reply(&mut client, &mut child);
    assert!(text.starts_with("up ready "), "{text:?}");
    let table = std::fs::read_to_string(dir.path().join("state/pollers")).unwrap();
    assert!(table.contains("\n127.0.0.1 * "), "{table}");
}

#[test]
fn an_unusable_state_dir_means_up_ready_on_every_reply() {
    let dir = TempDir::new("sock-unusable");
    let blocker = dir.file("blocker", "a file where a directory should be");
    for _ in 0..4 {
        let mut command = agent(&dir);
        command.env("LB_FEEDBACK_STATE_DIR", blocker.join("state"));
        let (mut client, mut child) = serve(command);
        let text = reply(&mut client, &mut child);
        assert!(text.starts_with("up ready "), "{text:?}");
    }
}

#[test]
fn broken_config_sends_only_error_config() {
    let dir = TempDir::new("sock-broken");
    dir.file("config.json", "{ not json");
    let (mut client, mut child) = serve(agent(&dir));
    assert_eq!(reply(&mut client, &mut child), "error:config\n");
}

#[test]
fn bad_arguments_send_only_error_config() {
    let dir = TempDir::new("sock-args");
    let mut command = agent(&dir);
    command.arg("--no-such-flag");
    let (mut client, mut child) = serve(command);
    assert_eq!(reply(&mut client, &mut child), "error:config\n");
}

#[test]
fn a_usage_error_answers_error_config_on_any_socket_stdout() {
    let dir = TempDir::new("sock-usage");
    let mut command = agent(&dir);
    command.args(["--cpu-treshold", "90"]);
    let (mut client, mut child) = serve(command);
    assert_eq!(reply(&mut client, &mut child), "error:config\n");
    // Stdout alone a socket (stdin empty, as socat or a unit may give it): the reply is
    // there too, and nothing else.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let server: std::os::fd::OwnedFd = server.into();
    let mut child = agent(&dir)
        .args(["--cpu-treshold", "90"])
        .stdin(std::process::Stdio::null())
        .stdout(server.try_clone().unwrap())
        .stderr(server)
        .spawn()
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    assert_eq!(reply(&mut client, &mut child), "error:config\n");
}

#[test]
fn explain_is_ignored_on_a_socket() {
    let dir = TempDir::new("sock-explain");
    let mut command = agent(&dir);
    command.args(["--explain", "--mode", "drain"]);
    let (mut client, mut child) = serve(command);
    assert_eq!(reply(&mut client, &mut child), "drain #mode\n");
}
