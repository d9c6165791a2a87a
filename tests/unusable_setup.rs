//! A state directory the agent's user cannot use is said out loud everywhere a person looks:
//! `--explain` (text and JSON), `status` (text and JSON), `check-config`, the service's log
//! and its HTTP `/status`, with what it costs. The agent's user is `state_owner` (here
//! `nobody`, who cannot write a directory the test's user made with mode 755) or, without it,
//! the user running the command (here the state directory is a regular file, which nobody
//! can use).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "common/service.rs"]
mod service;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{TempDir, agent, connect_from, stderr, stdout};
use service::Service;

const COST: &str =
    "recovery and steady steering cannot be remembered, so every normal reply carries `up ready`";

/// The agent with its state directory owned by this test's user, mode 755, kept by `nobody`.
fn not_nobodys(dir: &TempDir) -> Command {
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = agent(dir);
    command
        .env("LB_FEEDBACK_STATE_OWNER", "nobody")
        .env("LB_FEEDBACK_CPU_IMPORTANCE", "0");
    command
}

#[test]
fn another_users_directory_is_said_in_explain_status_and_check_config() {
    let dir = TempDir::new("unusable-owner");
    let said = format!(
        "state directory unusable: {} is not writable by user nobody (owned by ",
        dir.path().join("state").display()
    );
    let explain = stdout(&not_nobodys(&dir).arg("--explain").output().unwrap());
    assert!(
        explain.contains(&format!("\nstate       {said}")),
        "{explain}"
    );
    assert!(
        explain.contains(&format!("mode 755); {COST}\n")),
        "{explain}"
    );
    let json = stdout(
        &not_nobodys(&dir)
            .args(["--explain", "--json"])
            .output()
            .unwrap(),
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        json["state_problem"].as_str().unwrap().starts_with(&said),
        "{json}"
    );

    let status = stdout(&not_nobodys(&dir).arg("status").output().unwrap());
    assert!(status.contains(&format!("\nstate     {said}")), "{status}");
    assert!(!status.contains("no load balancer has polled"), "{status}");
    let json = stdout(
        &not_nobodys(&dir)
            .args(["status", "--json"])
            .output()
            .unwrap(),
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        json["state_problem"].as_str().unwrap().ends_with(COST),
        "{json}"
    );

    let output = not_nobodys(&dir).arg("check-config").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        stderr(&output).starts_with(&format!("lb-feedback: warning: {said}")),
        "{output:?}"
    );
    serde_json::from_str::<serde_json::Value>(&stdout(&output)).unwrap();

    // Missing, and its parent is not nobody's either.
    let missing = dir.path().join("state").join("sub");
    let status = stdout(
        &not_nobodys(&dir)
            .env("LB_FEEDBACK_STATE_DIR", &missing)
            .arg("status")
            .output()
            .unwrap(),
    );
    assert!(
        status.contains(&format!(
            "state directory unusable: {} is missing and user nobody cannot create it ({}: owned by ",
            missing.display(),
            dir.path().join("state").display()
        )),
        "{status}"
    );
}

#[test]
fn a_usable_directory_says_nothing() {
    let dir = TempDir::new("unusable-none");
    let explain = stdout(&agent(&dir).arg("--explain").output().unwrap());
    assert!(!explain.contains("unusable"), "{explain}");
    let json = stdout(&agent(&dir).args(["status", "--json"]).output().unwrap());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["state_problem"], serde_json::Value::Null);
    let output = agent(&dir).arg("check-config").output().unwrap();
    assert_eq!(stderr(&output), "");
}

#[test]
fn the_service_says_it_once_in_its_log_and_on_http_status() {
    let dir = TempDir::new("unusable-service");
    let state = dir.file("state", "not a directory\n");
    let service = Service::run(&dir).http().start();
    let said = format!("state directory unusable: {}: ", state.display());
    service.wait_for_log(&said);
    let mut stream = connect_from([127, 0, 0, 1], service.http());
    write!(stream, "GET /status HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    let problem = json["state_problem"].as_str().unwrap();
    assert!(
        problem.starts_with(&said) && problem.ends_with(COST),
        "{json}"
    );
    // Polls answer all the same (availability first), and the log said it once.
    assert!(service.poll().starts_with("up ready "));
    assert!(service.poll().starts_with("up ready "));
    let log = service.log();
    let said = log
        .iter()
        .filter(|l| l.contains("state directory unusable"));
    assert_eq!(said.count(), 1, "{log:?}");
}
