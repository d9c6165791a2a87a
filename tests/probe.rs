//! The built `lb-feedback` binary run by hand: replies, rules over real TCP connections,
//! thresholds, config errors, the mode command. By hand is not a poller: no `up ready` here
//! (tests/pollers.rs polls over sockets).

mod common;

use std::time::Duration;

use common::{Connections, TempDir, agent, stderr, stdout};

fn is_percent_line(text: &str) -> bool {
    text.strip_suffix("%\n")
        .and_then(|n| n.parse::<u8>().ok())
        .is_some_and(|n| n <= 100)
}

#[test]
fn by_hand_prints_one_percent_line_and_nothing_else() {
    let dir = TempDir::new("plain");
    let output = agent(&dir).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(is_percent_line(&stdout(&output)), "{:?}", stdout(&output));
    assert_eq!(stderr(&output), "");
}

#[test]
fn tcp_five_of_ten_is_fifty_then_threshold_drains_then_recovers() {
    let dir = TempDir::new("tcp");
    let mut held = Connections::open(5);
    let port = held.port();
    let tcp_only = |threshold: &str| {
        let mut command = agent(&dir);
        command
            .env("LB_FEEDBACK_CPU_IMPORTANCE", "0")
            .env("LB_FEEDBACK_RAM_IMPORTANCE", "0")
            .env("LB_FEEDBACK_TCP", format!("{port}:10{threshold}"));
        stdout(&command.output().unwrap())
    };
    assert_eq!(tcp_only(""), "50%\n");
    assert_eq!(tcp_only(":1:40"), format!("drain #tcp:{port}:50>=40\n"));
    held.close_all();
    // The kernel drops closed loopback sockets from ESTABLISHED at once. A person is owed no
    // recovery words.
    assert_eq!(tcp_only(":1:40"), "100%\n");
}

#[test]
fn ten_of_ten_is_zero_and_more_than_max_stays_zero() {
    let dir = TempDir::new("full");
    let mut held = Connections::open(10);
    let run = |port: u16| {
        let output = agent(&dir)
            .env("LB_FEEDBACK_CPU_IMPORTANCE", "0")
            .env("LB_FEEDBACK_RAM_IMPORTANCE", "0")
            .env("LB_FEEDBACK_RECOVERY", "never")
            .env("LB_FEEDBACK_TCP", format!("{port}:10"))
            .output()
            .unwrap();
        stdout(&output)
    };
    assert_eq!(run(held.port()), "0%\n");
    held.add(5);
    assert_eq!(run(held.port()), "0%\n");
}

#[test]
fn importance_zero_monitors_are_left_out_of_the_average() {
    let dir = TempDir::new("weights");
    let held = Connections::open(3);
    // tcp 3 of 4 = 75 with importance 2 → 150, one monitor counted → clamped to 0%;
    // with importance 1 → 25%.
    let run = |spec: String| {
        stdout(
            &agent(&dir)
                .env("LB_FEEDBACK_CPU_IMPORTANCE", "0")
                .env("LB_FEEDBACK_RAM_IMPORTANCE", "0")
                .env("LB_FEEDBACK_RECOVERY", "never")
                .env("LB_FEEDBACK_TCP", spec)
                .output()
                .unwrap(),
        )
    };
    assert_eq!(run(format!("{}:4:2", held.port())), "0%\n");
    assert_eq!(run(format!("{}:4", held.port())), "25%\n");
}

#[test]
fn maxconn_is_appended() {
    let dir = TempDir::new("maxconn");
    let output = agent(&dir)
        .args([
            "--cpu-importance",
            "0",
            "--ram-importance",
            "0",
            "--maxconn",
            "40",
        ])
        .args(["--recovery", "never"])
        .output()
        .unwrap();
    assert_eq!(stdout(&output), "100% maxconn:40\n");
}

#[test]
fn broken_json_names_file_line_and_column_and_exits_2() {
    let dir = TempDir::new("broken");
    let path = dir.file("config.json", "{\n  \"cpu\": {\"importance\": 1,}\n}\n");
    let output = agent(&dir).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "error:config\n");
    assert_eq!(
        stderr(&output),
        format!("lb-feedback: {}:2:27: trailing comma\n", path.display())
    );
}

#[test]
fn bad_values_name_their_source() {
    let dir = TempDir::new("badvalues");
    dir.file("config.json", "{\"sample_ms\": 20}");
    let output = agent(&dir)
        .env("LB_FEEDBACK_SAMPLE_MS", "200")
        .output()
        .unwrap();
    // The file is read (and rejected) even though the environment would override it.
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("config.json:1:17: 20 is out of range; allowed: 100 to 10000")
    );

    let dir = TempDir::new("badenv");
    let output = agent(&dir)
        .env("LB_FEEDBACK_TCP", "3389:0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "lb-feedback: environment variable LB_FEEDBACK_TCP: max_connections 0 is out of range; allowed: 1 to 1000000\n"
    );
    let output = agent(&dir).args(["--recovery", "soon"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("lb-feedback: --recovery: unknown recovery \"soon\""));
    let output = agent(&dir).arg("--bogus").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--bogus"));
    assert!(stderr(&output).contains("--help"));
    // The reply the exit code stands for, as for a broken config.
    assert_eq!(stdout(&output), "error:config\n");
    let output = agent(&dir).args(["--cpu-treshold", "90"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "error:config\n");
    assert_eq!(
        stderr(&output),
        "lb-feedback: invalid option '--cpu-treshold'\nTry 'lb-feedback --help'.\n"
    );
}

#[test]
fn missing_named_config_is_an_error() {
    let dir = TempDir::new("missing");
    let output = agent(&dir)
        .env("LB_FEEDBACK_CONFIG", dir.path().join("nope.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("nope.json: cannot read: No such file or directory"));
}

#[test]
fn mode_round_trip() {
    let dir = TempDir::new("mode");
    let probe = || stdout(&agent(&dir).output().unwrap());
    let mode = |args: &[&str]| {
        let output = agent(&dir).arg("mode").args(args).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        stdout(&output)
    };
    assert_eq!(mode(&[]), "normal (built-in default)\n");
    assert!(mode(&["drain"]).starts_with("drain until changed"));
    assert_eq!(probe(), "drain #mode\n");
    assert!(mode(&[]).starts_with("drain (runtime mode set with `lb-feedback mode`"));
    mode(&["maint"]);
    assert_eq!(probe(), "maint #mode\n");
    mode(&["stop"]);
    assert_eq!(probe(), "stopped #mode\n");
    mode(&["normal"]);
    let line = probe();
    assert!(is_percent_line(&line), "{line:?}");
    mode(&["reset"]);
    assert_eq!(mode(&[]), "normal (built-in default)\n");
}

#[test]
fn runtime_mode_expires_by_itself() {
    let dir = TempDir::new("expire");
    let output = agent(&dir)
        .args(["mode", "drain", "--for", "1s"])
        .output()
        .unwrap();
    assert_eq!(stdout(&output).split(' ').next(), Some("drain"));
    assert_eq!(stdout(&agent(&dir).output().unwrap()), "drain #mode\n");
    std::thread::sleep(Duration::from_millis(1100));
    let line = stdout(&agent(&dir).output().unwrap());
    assert!(is_percent_line(&line), "{line:?}");
    let shown = stdout(&agent(&dir).arg("mode").output().unwrap());
    assert!(shown.contains("a runtime mode expired"), "{shown}");
}

#[test]
fn mode_from_config_and_env() {
    let dir = TempDir::new("cfgmode");
    dir.file("config.json", "{\"mode\": \"maintenance\"}");
    assert_eq!(stdout(&agent(&dir).output().unwrap()), "maint #mode\n");
    let output = agent(&dir)
        .env("LB_FEEDBACK_MODE", "stop")
        .output()
        .unwrap();
    assert_eq!(stdout(&output), "stopped #mode\n");
    let shown = stdout(&agent(&dir).arg("mode").output().unwrap());
    assert!(shown.starts_with("maint (config file "), "{shown}");
}

#[test]
fn check_config_prints_the_effective_config() {
    let dir = TempDir::new("check");
    dir.file(
        "config.json",
        "{\"tcp\": [{\"port\": 3389, \"max_connections\": 50}]}",
    );
    let output = agent(&dir).arg("check-config").output().unwrap();
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["tcp"][0]["port"], 3389);
    assert_eq!(json["sample_ms"], 100);
    dir.file("config.json", "{\"tcp\": 5}");
    let output = agent(&dir).arg("check-config").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("invalid type: integer `5`, expected a sequence"));
}

#[test]
fn explain_shows_the_breakdown() {
    let dir = TempDir::new("explain");
    let held = Connections::open(2);
    let output = agent(&dir)
        .arg("--explain")
        .env("LB_FEEDBACK_TCP", format!("{}:8", held.port()))
        .output()
        .unwrap();
    let text = stdout(&output);
    for needle in [
        "mode        normal",
        "cpu ",
        "ram ",
        "2 of 8 established",
        "utilization (",
        "recovery ",
        "reply       ",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
}

#[test]
fn help_and_version() {
    let dir = TempDir::new("help");
    let help = stdout(&agent(&dir).arg("--help").output().unwrap());
    assert!(help.contains("EXIT STATUS"));
    let version = stdout(&agent(&dir).arg("--version").output().unwrap());
    assert_eq!(
        version,
        format!("lb-feedback {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn explain_by_hand_records_nothing_and_says_why() {
    let dir = TempDir::new("by-hand");
    let text = stdout(&agent(&dir).arg("--explain").output().unwrap());
    assert!(
        text.contains("recovery    run by hand: not a poller"),
        "{text}"
    );
    assert!(!dir.path().join("state/pollers").exists());
}

#[test]
fn explain_json_is_one_object_with_every_figure_and_the_reply() {
    let dir = TempDir::new("explain-json");
    let held = Connections::open(2);
    let output = agent(&dir)
        .args(["--explain", "--json"])
        .env("LB_FEEDBACK_TCP", format!("{}:8:1:20", held.port()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["mode"], "normal");
    assert_eq!(json["mode_from"], "built-in default");
    let monitors = json["monitors"].as_array().unwrap();
    let names: Vec<&str> = monitors
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cpu", "ram", &format!("tcp:{}", held.port())]);
    let tcp = &monitors[2];
    assert_eq!(tcp["figure"], "2 of 8 established");
    assert_eq!(tcp["load"], 25.0);
    assert_eq!(tcp["raw"], 25.0);
    assert_eq!(tcp["threshold"], 20.0);
    assert_eq!(tcp["release"], 10.0);
    assert_eq!(tcp["tripped"], true);
    assert_eq!(tcp["holding"], false);
    assert_eq!(json["min_percent_applied"], false);
    assert_eq!(
        json["steady"],
        "no smoothing: each load is this probe's own figure"
    );
    assert!(
        monitors[0]["source"]
            .as_str()
            .unwrap()
            .contains("/proc/stat")
    );
    assert_eq!(json["state"], "drain");
    assert_eq!(json["reason"], format!("tcp:{}:25>=20", held.port()));
    assert_eq!(json["reply"], format!("drain #tcp:{}:25>=20", held.port()));
    assert_eq!(json["recovery"]["up_ready"], false);
    // --json alone is a usage error, not a silent plain reply.
    let output = agent(&dir).arg("--json").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--json goes with --explain or status"));
}

#[test]
fn profile_by_hand_shows_what_a_poller_naming_it_is_told() {
    let dir = TempDir::new("by-hand-profile");
    let mut held = Connections::open(5);
    let port = held.port();
    dir.file(
        "config.json",
        &format!(
            r#"{{"cpu": {{"importance": 0}}, "ram": {{"importance": 0}}, "recovery": "never",
                "profiles": {{"web": {{"tcp": [{{"port": {port}, "max_connections": 10}}], "maxconn": 7}}, "api": {{}}}}}}"#
        ),
    );
    let run = |args: &[&str]| agent(&dir).args(args).output().unwrap();
    // The base config watches nothing; the profile half of its port.
    let output = run(&["--explain"]);
    assert!(
        stdout(&output).ends_with("reply       100%\n"),
        "{output:?}"
    );
    let output = run(&["--profile", "web", "--explain"]);
    let text = stdout(&output);
    assert!(text.contains("profile     web "), "{text}");
    assert!(text.ends_with("reply       50% maxconn:7\n"), "{text}");
    let output = run(&["--profile", "web", "--explain", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["profile"], "web");
    assert_eq!(report["reply"], "50% maxconn:7");
    let output = run(&["--profile", "web", "check-config"]);
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(config["maxconn"], 7);
    assert_eq!(config["tcp"][0]["port"], port);
    // An unknown name: the reply such a poller gets, and the names there are.
    for args in [
        &["--explain"][..],
        &["--explain", "--json"],
        &["check-config"],
    ] {
        let output = run(&[&["--profile", "nope"][..], args].concat());
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(stdout(&output), "error:profile\n", "{args:?}");
        assert_eq!(
            stderr(&output),
            "lb-feedback: --profile \"nope\": no such profile; the config's profiles: api, web\n"
        );
    }
    // Not with a plain probe or status.
    for args in [&["--profile", "web"][..], &["--profile", "web", "status"]] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr(&output).contains("--profile goes with --explain or check-config"));
    }
    held.close_all();
}
