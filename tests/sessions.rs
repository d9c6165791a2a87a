//! The sessions monitor through the built binary: logind session records in a fixture tree
//! (pointed at with `LB_FEEDBACK_TEST_SESSIONS_ROOT`), the flag and the variable, disconnected
//! sessions counted or not, the threshold, a host without logind, and this machine's own.

mod common;

use std::path::Path;

use common::{TempDir, agent, stderr, stdout};

/// A logind session record of `class` in `state`, as systemd writes it.
fn record(class: &str, state: &str) -> String {
    format!(
        "# This is private data. Do not parse.\nUID=1000\nUSER=ann\nACTIVE=1\nIS_DISPLAY=0\n\
         STATE={state}\nREMOTE=1\nTYPE=tty\nCLASS={class}\nSCOPE=session-4.scope\n\
         SERVICE=sshd\nLEADER=812\n"
    )
}

/// A tree whose run/systemd/sessions holds 3 active user sessions, 1 closing (logged out,
/// processes left running), a greeter and a background session.
fn fixture(dir: &TempDir) -> std::path::PathBuf {
    let root = dir.path().join("root");
    let sessions = root.join("run/systemd/sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    // Present while systemd is the init system.
    std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    for (id, class, state) in [
        ("1", "user", "active"),
        ("2", "user", "active"),
        ("5", "user", "online"),
        ("7", "user", "closing"),
        ("c1", "greeter", "active"),
        ("9", "background", "active"),
    ] {
        std::fs::write(sessions.join(id), record(class, state)).unwrap();
    }
    root
}

fn sessions_only(dir: &TempDir, root: &Path) -> std::process::Command {
    let mut command = common::agent_without_cpu_ram(dir);
    command.env("LB_FEEDBACK_TEST_SESSIONS_ROOT", root);
    command
}

#[test]
fn sessions_50_counts_the_fixtures_user_sessions() {
    let dir = TempDir::new("sessions");
    let root = fixture(&dir);
    let run = |args: &[&str]| {
        let output = sessions_only(&dir, &root).args(args).output().unwrap();
        assert_eq!(stderr(&output), "", "{args:?}");
        assert!(output.status.success(), "{output:?}");
        stdout(&output)
    };
    // 4 of 50 (the closing one counts): load 8, reply 92%.
    assert_eq!(run(&["--sessions", "50"]), "92%\n");
    // Logged-in ones only: 3 of 50 is 6, 94%.
    assert_eq!(run(&["--sessions", "50:1:0:no"]), "94%\n");
    // 4 of 4 reaches a threshold of 100.
    assert_eq!(
        run(&["--sessions", "4:1:100"]),
        "drain #sessions:100>=100\n"
    );
    // off turns it off: nothing counts, all idle.
    assert_eq!(run(&["--sessions", "off"]), "100%\n");
    let explain = run(&["--sessions", "50", "--explain"]);
    assert!(
        explain.contains("4 of 50 (3 active, 1 disconnected); logind "),
        "{explain}"
    );
    assert!(explain.contains("run/systemd/sessions"), "{explain}");
    assert!(explain.contains("reply       92%"), "{explain}");
    let json = run(&["--sessions", "50", "--explain", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let monitor = &json["monitors"][0];
    assert_eq!(monitor["name"], "sessions");
    assert_eq!(monitor["figure"], "4 of 50 (3 active, 1 disconnected)");
    assert_eq!(monitor["load"], 8.0);
    let source = root.join("run/systemd/sessions");
    assert_eq!(
        monitor["source"],
        format!("logind {}", source.display()).as_str()
    );
}

#[test]
fn the_variable_and_the_config_file_set_it_too() {
    let dir = TempDir::new("sessions-env");
    let root = fixture(&dir);
    let output = sessions_only(&dir, &root)
        .env("LB_FEEDBACK_SESSIONS", "8:2")
        .output()
        .unwrap();
    // 4 of 8 is 50, importance 2: utilization 50 x 2 / 1 monitor = 100, reply 0%.
    assert_eq!(stdout(&output), "0%\n");
    dir.file(
        "config.json",
        r#"{"sessions": {"max_sessions": 10, "disconnected": false}}"#,
    );
    let output = sessions_only(&dir, &root).output().unwrap();
    assert_eq!(stdout(&output), "70%\n");
}

#[test]
fn without_logind_it_is_error_sessions_and_says_why() {
    let dir = TempDir::new("sessions-none");
    // What this machine has: a package made run/systemd/sessions, but systemd is not running.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("run/systemd/sessions")).unwrap();
    let output = sessions_only(&dir, &empty)
        .args(["--sessions", "50", "--explain"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(stdout(&output), "error:sessions\n");
    let message = stderr(&output);
    assert!(
        message.contains("cannot read sessions: ")
            && message.contains("not booted with systemd, so no systemd-logind")
            && message.contains("unavailable"),
        "{message}"
    );
}

#[test]
fn this_machines_own_sessions() {
    let dir = TempDir::new("sessions-host");
    let output = agent(&dir)
        .env("LB_FEEDBACK_CPU_IMPORTANCE", "0")
        .env("LB_FEEDBACK_RAM_IMPORTANCE", "0")
        .args(["--sessions", "50", "--explain"])
        .output()
        .unwrap();
    let text = stdout(&output);
    if Path::new("/run/systemd/system").is_dir() && Path::new("/run/systemd/sessions").is_dir() {
        assert!(output.status.success(), "{output:?}");
        assert!(
            text.contains("of 50") && text.contains("logind /run/systemd/sessions"),
            "{text}"
        );
    } else {
        eprintln!("SKIPPED: this machine runs no logind (not booted with systemd)");
        assert_eq!(text, "error:sessions\n");
    }
}
