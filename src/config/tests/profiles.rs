//! Profiles, scopes, the service's settings and the monitors added later, tested the same way.

use super::*;

#[test]
fn profiles_lay_over_the_base() {
    let config = json(
        r#"{"cpu": {"importance": 1}, "maxconn": 10,
            "tcp": [{"port": 80, "max_connections": 10}],
            "profiles": {
              "rdp": {"cpu": {"importance": 0}, "tcp": [{"port": 3389, "max_connections": 50}]},
              "web": {"ram": {"threshold": 90}, "maxconn": null}}}"#,
    )
    .unwrap();
    let rdp = config.with_profile("rdp").unwrap();
    assert_eq!(rdp.cpu.importance.get(), 0.0);
    assert_eq!(rdp.tcp[0].port.get(), 3389);
    assert_eq!(rdp.maxconn.map(Int::get), Some(10));
    let web = config.with_profile("web").unwrap();
    assert_eq!(web.ram.threshold.get(), 90.0);
    assert_eq!(web.tcp[0].port.get(), 80);
    assert_eq!(web.maxconn, None);
    assert!(config.with_profile("db").is_none());
    let base = config.monitors(None);
    assert_eq!((base.cpu, base.tcp), (config.cpu, &config.tcp[..]));
    let rdp_monitors = config.monitors(config.profiles.get("rdp"));
    assert_eq!(rdp_monitors.cpu, rdp.cpu);
    assert_eq!(rdp_monitors.tcp, &rdp.tcp[..]);
}

#[test]
fn profile_errors() {
    assert!(
        json_err(r#"{"profiles": {"rdp": {"mode": "drain"}}}"#)
            .contains("unknown key \"mode\" in profiles.rdp;")
    );
    assert!(json_err(r#"{"profiles": {"a b": {}}}"#).contains("profile name \"a b\""));
    assert!(
        json_err(r#"{"profiles": {"x": {"cpu": {"importance": 200}}}}"#)
            .contains("200 is out of range")
    );
}

#[test]
fn a_byte_order_mark_is_skipped_and_positions_stay_right() {
    let config = json("\u{feff}{\"sample_ms\": 200}").unwrap();
    assert_eq!(config.sample_ms.get(), 200);
    // Line 1 columns count from after the mark, as an editor shows them; later lines too.
    assert_eq!(
        json_err("\u{feff}{\"sample_ms\": 50}"),
        json_err("{\"sample_ms\": 50}")
    );
    assert_eq!(
        json_err("\u{feff}{\n\"sample_ms\": 50}"),
        "c.json:2:16: 50 is out of range; allowed: 100 to 10000"
    );
    // Only at the start: anywhere else it is still an error.
    assert!(json("{\u{feff}}").is_err());
}

#[test]
fn a_repeated_profile_name_is_an_error_at_its_place() {
    assert_eq!(
        json_err("{\"profiles\": {\n  \"web\": {},\n  \"web\": {\"maxconn\": 5}}}"),
        "c.json:3:7: duplicate profile \"web\""
    );
    // As a repeated top-level key is.
    assert!(json_err("{\"mode\": \"drain\",\n \"mode\": \"stop\"}").starts_with("c.json:2:"));
    // `null` still leaves the profiles as they were.
    assert!(json(r#"{"profiles": null}"#).unwrap().profiles.is_empty());
}

#[test]
fn profiles_are_capped_with_the_place_of_the_first_one_too_many() {
    let many = |n: usize| {
        let entries: Vec<String> = (0..n).map(|i| format!("\"p{i}\": {{}}")).collect();
        format!("{{\"profiles\": {{\n{}}}}}", entries.join(",\n"))
    };
    assert_eq!(
        json(&many(MAX_PROFILES)).unwrap().profiles.len(),
        MAX_PROFILES
    );
    let message = json_err(&many(MAX_PROFILES + 1));
    assert_eq!(
        message,
        format!(
            "c.json:{}:7: more than {MAX_PROFILES} profiles (the most one config may hold)",
            MAX_PROFILES + 2
        )
    );
}

#[test]
fn a_state_dir_with_a_nul_byte_is_rejected_everywhere() {
    assert_eq!(
        json_err("{\n\"state_dir\": \"/var/lib/x\\u0000y\"}"),
        "c.json:2:33: state_dir must not contain a NUL byte (no file name can)"
    );
    assert!(json(r#"{"state_dir": null}"#).is_ok());
    let env = env_map(&[("LB_FEEDBACK_STATE_DIR", "/tmp/a\0b")]);
    assert_eq!(
        load(&missing_file(), &env, &[]).unwrap_err().to_string(),
        "environment variable LB_FEEDBACK_STATE_DIR: must not contain a NUL byte (no file name can)"
    );
    let flags = [(key("state_dir"), "/tmp/a\0b".to_string())];
    let err = load(&missing_file(), &env_map(&[]), &flags).unwrap_err();
    assert_eq!(err.place, Place::Flag("state-dir"));
    let flags = [(key("state_dir"), String::new())];
    let err = load(&missing_file(), &env_map(&[]), &flags).unwrap_err();
    assert_eq!(err.problem.to_string(), "must not be empty");
}

#[test]
fn cpu_mode_allow_and_in_flight() {
    let config = json(
        r#"{"cpu_mode": "since-last", "since_last_max_seconds": 60,
            "allow": ["10.0.0.0/8", "::1"], "max_in_flight": 8,
            "max_in_flight_per_source": 3}"#,
    )
    .unwrap();
    assert_eq!(config.cpu_mode, CpuMode::SinceLast);
    assert_eq!(config.since_last_max_seconds.get(), 60);
    assert_eq!(config.allow.len(), 2);
    assert_eq!(config.max_in_flight.get(), 8);
    assert_eq!(config.max_in_flight_per_source.get(), 3);
    assert!(json_err(r#"{"max_in_flight_per_source": 0}"#).contains("out of range"));
    assert!(json_err(r#"{"allow": ["10.0.0.0/40"]}"#).contains("prefix length"));
    assert!(json_err(r#"{"cpu_mode": "guess"}"#).contains("unknown variant `guess`"));
    let mut config = Config::default();
    config
        .apply_text(
            key("allow"),
            "127.0.0.1, ::1",
            Origin::Env("LB_FEEDBACK_ALLOW"),
        )
        .unwrap();
    assert_eq!(config.allow.len(), 2);
    config
        .apply_text(key("cpu_mode"), "since-last", Origin::Flag("cpu-mode"))
        .unwrap();
    assert_eq!(config.cpu_mode, CpuMode::SinceLast);
    config
        .apply_text(
            key("max_in_flight_per_source"),
            "20",
            Origin::Env("LB_FEEDBACK_MAX_IN_FLIGHT_PER_SOURCE"),
        )
        .unwrap();
    assert_eq!(config.max_in_flight_per_source.get(), 20);
    assert!(
        config
            .apply_text(key("max_in_flight_per_source"), "10001", Origin::Default)
            .is_err()
    );
}

#[test]
fn scope_for_both_monitors_or_each() {
    let mut config = Config::default();
    assert_eq!(config.scope.cpu, Scope::Auto);
    config
        .apply_json(r#"{"scope": {"cpu": "cgroup"}}"#, Path::new("t.json"))
        .unwrap();
    assert_eq!(
        (config.scope.cpu, config.scope.ram),
        (Scope::Cgroup, Scope::Auto)
    );
    config
        .apply_json(r#"{"scope": "host"}"#, Path::new("t.json"))
        .unwrap();
    assert_eq!(
        (config.scope.cpu, config.scope.ram),
        (Scope::Host, Scope::Host)
    );
    config
        .apply_text(key("scope"), "ram=cgroup", Origin::Flag("scope"))
        .unwrap();
    assert_eq!(
        (config.scope.cpu, config.scope.ram),
        (Scope::Host, Scope::Cgroup)
    );
    config
        .apply_text(key("scope"), " Auto ", Origin::Flag("scope"))
        .unwrap();
    assert_eq!(
        (config.scope.cpu, config.scope.ram),
        (Scope::Auto, Scope::Auto)
    );
    let bad = |text| {
        config
            .clone()
            .apply_text(key("scope"), text, Origin::Default)
            .map_err(|e| e.to_string())
    };
    assert!(
        bad("box")
            .unwrap_err()
            .contains("allowed: auto, host, cgroup")
    );
    assert!(bad("tcp=host").unwrap_err().contains("has no scope"));
    assert!(bad("cpu=").is_err());
    assert!(json_err(r#"{"scope": "box"}"#).contains("\"auto\", \"host\""));
    assert!(json_err(r#"{"scope": {"tcp": "host"}}"#).contains("\"auto\""));
}

#[test]
fn every_key_has_a_flag_and_a_variable() {
    for key in Setting::textual() {
        assert_eq!(Setting::from_flag(key.flag()), Some(key));
        assert!(key.env_var().starts_with("LB_FEEDBACK_"));
    }
}

#[test]
fn effective_config_serializes_as_plain_json() {
    let text = serde_json::to_string(&Config::default()).unwrap();
    assert!(text.contains("\"sample_ms\":1000"), "{text}");
    assert!(
        text.contains("\"cpu\":{\"importance\":1.0,\"threshold\":0.0}"),
        "{text}"
    );
    let mut again = Config::default();
    again.apply_json(&text, Path::new("x")).unwrap();
    assert_eq!(again.sample_ms, Config::default().sample_ms);
}

#[test]
fn custom_monitors_come_from_the_file_and_profiles_replace_them() {
    let config = json(
        r#"{"custom": [{"name": "q", "file": "/run/q", "max": 200}],
            "profiles": {"app": {"custom": [{"name": "app", "http": "http://127.0.0.1:8080/"}]},
                         "none": {"custom": []}, "same": {}}}"#,
    )
    .unwrap();
    assert_eq!(config.custom[0].name, "q");
    assert_eq!(config.with_profile("app").unwrap().custom[0].name, "app");
    assert!(config.with_profile("none").unwrap().custom.is_empty());
    assert_eq!(config.with_profile("same").unwrap().custom, config.custom);
    // Errors carry the entry's place in the file.
    assert_eq!(
        json_err(
            "{\"custom\": [\n  {\"name\": \"q\", \"file\": \"/q\", \"http\": \"http://h/\"}]}"
        ),
        "c.json:2:51: custom \"q\": give exactly one of command, file, http"
    );
    assert!(
        json_err(r#"{"profiles": {"p": {"custom": [{"name": "ram", "file": "/q"}]}}}"#)
            .contains("taken by a built-in")
    );
}

#[test]
fn http_is_off_by_default_and_takes_an_address() {
    assert_eq!(Config::default().http, None);
    let config = json(r#"{"http": "127.0.0.1:3334"}"#).unwrap();
    assert_eq!(config.http, Some("127.0.0.1:3334".parse().unwrap()));
    assert_eq!(json(r#"{"http": null}"#).unwrap().http, None);
    assert!(json_err(r#"{"http": "3334"}"#).contains("invalid socket address"));
    let mut config = Config::default();
    config
        .apply_text(key("http"), "[::1]:3334", Origin::Flag("http"))
        .unwrap();
    assert_eq!(config.http, Some("[::1]:3334".parse().unwrap()));
    config
        .apply_text(key("http"), "off", Origin::Env("LB_FEEDBACK_HTTP"))
        .unwrap();
    assert_eq!(config.http, None);
    let err = config
        .apply_text(key("http"), "localhost:80", Origin::Default)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected ADDR:PORT"), "{err}");
}

#[test]
fn sessions_is_off_by_default_and_set_in_every_layer() {
    assert_eq!(Config::default().sessions, None);
    let config = json(r#"{"sessions": {"max_sessions": 50}}"#).unwrap();
    let sessions = config.sessions.unwrap();
    assert_eq!(sessions.max_sessions.get(), 50);
    assert_eq!(sessions.importance.get(), 1.0);
    assert_eq!(sessions.threshold.get(), 0.0);
    assert!(sessions.disconnected);
    let config = json(
        r#"{"sessions": {"max_sessions": 40, "importance": 2, "threshold": 120,
            "disconnected": false}}"#,
    )
    .unwrap();
    let sessions = config.sessions.unwrap();
    assert_eq!(sessions.threshold.get(), 120.0);
    assert!(!sessions.disconnected);
    assert_eq!(json(r#"{"sessions": null}"#).unwrap().sessions, None);
    assert!(json_err(r#"{"sessions": {}}"#).contains("missing field `max_sessions`"));
    assert!(json_err(r#"{"sessions": {"max_sessions": 0}}"#).contains("allowed: 1 to 1000000"));
    assert!(
        json_err(r#"{"sessions": {"max_sessions": 5, "active": true}}"#)
            .contains("unknown key \"active\" in sessions;")
    );
    let env = env_map(&[("LB_FEEDBACK_SESSIONS", "50:2:90")]);
    let config = load(&missing_file(), &env, &[]).unwrap();
    let sessions = config.sessions.unwrap();
    assert_eq!(
        (sessions.max_sessions.get(), sessions.importance.get()),
        (50, 2.0)
    );
    assert_eq!(sessions.threshold.get(), 90.0);
    assert!(sessions.disconnected);
    let flags = [(key("sessions"), "off".to_string())];
    assert_eq!(load(&missing_file(), &env, &flags).unwrap().sessions, None);
    let flags = [(key("sessions"), String::new())];
    assert_eq!(load(&missing_file(), &env, &flags).unwrap().sessions, None);
    let flags = [(key("sessions"), "30:1:0:no".to_string())];
    let sessions = load(&missing_file(), &env, &flags)
        .unwrap()
        .sessions
        .unwrap();
    assert!(!sessions.disconnected);
    let bad = |text: &str| {
        let flags = [(key("sessions"), text.to_string())];
        load(&missing_file(), &env_map(&[]), &flags)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        bad("0"),
        "--sessions: max_sessions 0 is out of range; allowed: 1 to 1000000"
    );
    assert!(bad("50:1:0:maybe").contains("disconnected \"maybe\": expected yes or no"));
    assert!(bad("50:1:0:no:x").contains("expected max_sessions[:importance"));
    assert!(bad("50:x").starts_with("--sessions: importance "));
    let env = env_map(&[("LB_FEEDBACK_SESSIONS", "many")]);
    assert!(
        load(&missing_file(), &env, &[])
            .unwrap_err()
            .to_string()
            .starts_with("environment variable LB_FEEDBACK_SESSIONS: max_sessions")
    );
}

#[test]
fn profiles_set_or_clear_the_sessions_monitor() {
    let config = json(
        r#"{"sessions": {"max_sessions": 50},
            "profiles": {"rds": {"sessions": {"max_sessions": 20, "disconnected": false}},
                         "web": {"sessions": null}, "same": {}}}"#,
    )
    .unwrap();
    let rds = config.with_profile("rds").unwrap().sessions.unwrap();
    assert_eq!(rds.max_sessions.get(), 20);
    assert!(!rds.disconnected);
    assert_eq!(config.with_profile("web").unwrap().sessions, None);
    assert_eq!(
        config.with_profile("same").unwrap().sessions,
        config.sessions
    );
    assert_eq!(config.monitors(config.profiles.get("web")).sessions, None);
    // The effective config's JSON reads back the same.
    let text = serde_json::to_string(&config).unwrap();
    assert!(
        text.contains(
            r#""sessions":{"max_sessions":50,"importance":1.0,"threshold":0.0,"disconnected":true}"#
        ),
        "{text}"
    );
    let again = json(&text).unwrap();
    assert_eq!(again.sessions, config.sessions);
    assert_eq!(again.profiles, config.profiles);
}
