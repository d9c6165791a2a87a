//! The settings' layers, errors and positions, tested through `load` and `apply_json`.

use super::*;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The key table's row for `name`.
fn key(name: &str) -> Key {
    Setting::named(name).unwrap()
}

fn json(text: &str) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    config.apply_json(text, Path::new("c.json"))?;
    Ok(config)
}

fn json_err(text: &str) -> String {
    json(text).unwrap_err().to_string()
}

fn env_map(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |key| map.get(key).map(OsString::from)
}

fn missing_file() -> ConfigFile {
    ConfigFile {
        path: PathBuf::from("/nonexistent/lb-feedback/config.json"),
        explicit: false,
    }
}

#[test]
fn defaults_are_cpu_and_ram_with_no_thresholds() {
    let config = Config::default();
    assert_eq!(config.cpu.importance.get(), 1.0);
    assert_eq!(config.ram.importance.get(), 1.0);
    assert_eq!(config.cpu.threshold.get(), 0.0);
    assert!(config.tcp.is_empty());
    assert_eq!(config.sample_ms.get(), 1000);
    assert_eq!(config.recovery, Recovery::Window);
    assert_eq!(config.recovery_seconds.get(), 10);
    assert_eq!(config.recovery_replies.get(), 3);
    assert_eq!(config.mode, Mode::Normal);
}

#[test]
fn full_example_from_the_issue_parses() {
    let config = json(
        r#"{ "mode": "normal", "sample_ms": 1000,
  "cpu": {"importance": 1, "threshold": 0},
  "ram": {"importance": 1, "threshold": 0},
  "tcp": [{"port": 3389, "max_connections": 50, "importance": 1, "threshold": 0}],
  "maxconn": null, "recovery": "window", "recovery_seconds": 10,
  "state_dir": "/var/lib/lb-feedback" }"#,
    )
    .unwrap();
    assert_eq!(config.tcp.len(), 1);
    assert_eq!(config.tcp[0].port.get(), 3389);
    assert_eq!(config.tcp[0].max_connections.get(), 50);
    assert_eq!(config.mode_origin, Origin::File(PathBuf::from("c.json")));
}

#[test]
fn partial_file_keeps_defaults_for_the_rest() {
    let config = json(r#"{"cpu": {"threshold": 90}}"#).unwrap();
    assert_eq!(config.cpu.threshold.get(), 90.0);
    assert_eq!(config.cpu.importance.get(), 1.0);
    assert_eq!(config.ram, Config::default().ram);
}

#[test]
fn steady_steering_settings_from_every_layer() {
    let config = Config::default();
    assert_eq!(config.hysteresis.get(), 10.0);
    assert_eq!(config.smoothing_seconds.get(), 0);
    assert_eq!(config.min_percent.get(), 0);
    assert_eq!(config.cpu.release, None);
    let config = json(
        r#"{"hysteresis": 5, "smoothing_seconds": 10, "min_percent": 5,
            "cpu": {"threshold": 90, "release": 70},
            "tcp": [{"port": 80, "max_connections": 10, "threshold": 95, "release": 80}]}"#,
    )
    .unwrap();
    assert_eq!(config.hysteresis.get(), 5.0);
    assert_eq!(config.smoothing_seconds.get(), 10);
    assert_eq!(config.min_percent.get(), 5);
    assert_eq!(config.cpu.release.map(Real::get), Some(70.0));
    assert_eq!(config.tcp[0].release.map(Real::get), Some(80.0));
    let env = env_map(&[
        ("LB_FEEDBACK_HYSTERESIS", "0"),
        ("LB_FEEDBACK_MIN_PERCENT", "3"),
        ("LB_FEEDBACK_RAM_RELEASE", "50"),
        ("LB_FEEDBACK_RAM_THRESHOLD", "60"),
    ]);
    let flags = [
        (key("smoothing_seconds"), "30".to_string()),
        (key("tcp"), "3389:50:1:95:90".to_string()),
    ];
    let config = load(&missing_file(), &env, &flags).unwrap();
    assert_eq!(config.hysteresis.get(), 0.0);
    assert_eq!(config.min_percent.get(), 3);
    assert_eq!(config.smoothing_seconds.get(), 30);
    assert_eq!(config.ram.release.map(Real::get), Some(50.0));
    assert_eq!(config.tcp[0].release.map(Real::get), Some(90.0));
    // `auto` clears a release back to threshold − hysteresis.
    let flags = [(key("cpu.release"), "auto".to_string())];
    let env = env_map(&[("LB_FEEDBACK_CPU_RELEASE", "20")]);
    assert_eq!(
        load(&missing_file(), &env, &flags).unwrap().cpu.release,
        None
    );
    assert_eq!(release_of(95.0, None, 10.0), 85.0);
    assert_eq!(release_of(5.0, None, 10.0), 0.0);
    assert_eq!(release_of(95.0, Some(50.0), 10.0), 50.0);
}

#[test]
fn a_release_must_be_below_its_threshold_wherever_they_come_from() {
    let message = json_err(
        r#"{"tcp": [{"port": 80, "max_connections": 10, "threshold": 90, "release": 90}]}"#,
    );
    // A whole TCP entry is checked as it is read, so the error has its position.
    assert!(message.starts_with("c.json:1:"), "{message}");
    assert!(
        message.contains("tcp:80: release 90 must be below its threshold 90"),
        "{message}"
    );
    let file = ConfigFile {
        path: std::env::temp_dir().join(format!("lbf-release-{}.json", std::process::id())),
        explicit: true,
    };
    std::fs::write(
        &file.path,
        r#"{"profiles": {"web": {"cpu": {"threshold": 50}}}, "cpu": {"release": 60}}"#,
    )
    .unwrap();
    let err = load(&file, &env_map(&[]), &[]).unwrap_err();
    assert_eq!(err.place, Place::Combined);
    assert_eq!(
        err.to_string(),
        "the settings (file, environment and flags together): profile \"web\": cpu: \
         release 60 must be below its threshold 50 (a drain by the threshold lasts until \
         the load is at or below release)"
    );
    // A flag laid over the file puts it right.
    let flags = [(key("cpu.release"), "40".to_string())];
    assert!(load(&file, &env_map(&[]), &flags).is_ok());
    let _ = std::fs::remove_file(&file.path);
    assert!(
        load(
            &missing_file(),
            &env_map(&[]),
            &[(key("tcp"), "80:10:1:50:60".into())]
        )
        .unwrap_err()
        .to_string()
        .contains("release 60 must be below")
    );
}

#[test]
fn tcp_entry_defaults_importance_one_threshold_off() {
    let config = json(r#"{"tcp": [{"port": 80, "max_connections": 10}]}"#).unwrap();
    assert_eq!(config.tcp[0].importance.get(), 1.0);
    assert_eq!(config.tcp[0].threshold.get(), 0.0);
}

#[test]
fn syntax_error_names_file_line_and_column() {
    assert_eq!(
        json_err("{\n  \"mode\": \"drain\",\n}"),
        "c.json:3:1: trailing comma"
    );
}

#[test]
fn unknown_key_is_rejected_with_position() {
    assert_eq!(
        json_err("{\"cpu\": {\"importanse\": 1}}"),
        "c.json:1:21: unknown key \"importanse\" in cpu: did you mean \"importance\"?"
    );
    assert_eq!(
        json_err("{\"treshold\": 1}"),
        "c.json:1:11: unknown key \"treshold\"; the keys allowed here are listed in \
         lb-feedback.json(5) and docs/configuration.md"
    );
    assert_eq!(
        json_err("{\"sampel_ms\": 500}"),
        "c.json:1:12: unknown key \"sampel_ms\": did you mean \"sample_ms\"?"
    );
    assert_eq!(
        json_err("{\"tcp\": {}}"),
        "c.json:1:8: tcp: invalid type: map, expected a sequence"
    );
}

#[test]
fn out_of_range_values_are_rejected_with_position() {
    let message = json_err("{\n\"sample_ms\": 50}");
    assert_eq!(
        message,
        "c.json:2:16: 50 is out of range; allowed: 100 to 10000"
    );
    assert!(json_err(r#"{"cpu": {"importance": -1}}"#).contains("-1 is out of range"));
    assert!(json_err(r#"{"cpu": {"threshold": 101}}"#).contains("allowed: 0 to 100"));
    assert!(
        json_err(r#"{"tcp": [{"port": 0, "max_connections": 1}]}"#)
            .contains("0 is out of range; allowed: 1 to 65535")
    );
    assert!(
        json_err(r#"{"tcp": [{"port": 80, "max_connections": 0}]}"#)
            .contains("allowed: 1 to 1000000")
    );
    assert!(json_err(r#"{"tcp": [{"port": 80}]}"#).contains("missing field `max_connections`"));
    assert!(json_err(r#"{"maxconn": 0}"#).contains("allowed: 1 to 1000000"));
    assert!(json_err(r#"{"recovery_seconds": 1.5}"#).contains("expected u64"));
    assert!(json_err(r#"{"mode": "sleep"}"#).contains("unknown variant `sleep`"));
    assert!(json_err(r#"{"recovery": "sometimes"}"#).contains("unknown variant"));
    assert!(json_err(r#"{"state_dir": ""}"#).contains("state_dir must not be empty"));
    assert!(json_err(r#"{"state_owner": "a b"}"#).contains("user name \"a b\""));
    assert!(json_err(r#"{"state_owner": "-x"}"#).contains("not starting with '-'"));
    assert_eq!(
        json(r#"{"state_owner": "lb-feedback"}"#)
            .unwrap()
            .state_owner
            .map(String::from),
        Some("lb-feedback".to_string())
    );
    assert_eq!(json(r#"{"state_owner": null}"#).unwrap().state_owner, None);
    assert!(
        json_err("[]").contains("expected struct Layer") || json_err("[]").contains("invalid type")
    );
    assert!(json_err("").contains("EOF"));
}

#[test]
fn maintenance_is_an_alias_of_maint() {
    assert_eq!(
        json(r#"{"mode": "maintenance"}"#).unwrap().mode,
        Mode::Maint
    );
    assert_eq!(Mode::parse("MAINTENANCE"), Ok(Mode::Maint));
}

#[test]
fn maxconn_null_clears_and_absent_keeps() {
    let mut config = Config::default();
    config
        .apply_json(r#"{"maxconn": 40}"#, Path::new("a"))
        .unwrap();
    assert_eq!(config.maxconn.map(Int::get), Some(40));
    config.apply_json("{}", Path::new("b")).unwrap();
    assert_eq!(config.maxconn.map(Int::get), Some(40));
    config
        .apply_json(r#"{"maxconn": null}"#, Path::new("c"))
        .unwrap();
    assert_eq!(config.maxconn, None);
}

#[test]
fn tcp_list_text_form() {
    let list = TcpMonitor::parse_list("3389:50, 80:10:2:90").unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].importance.get(), 1.0);
    assert_eq!(list[1].port.get(), 80);
    assert_eq!(list[1].importance.get(), 2.0);
    assert_eq!(list[1].threshold.get(), 90.0);
    assert!(TcpMonitor::parse_list("").unwrap().is_empty());
    assert!(
        TcpMonitor::parse_list("80")
            .unwrap_err()
            .to_string()
            .contains("expected port:max")
    );
    assert!(TcpMonitor::parse_list("80:1:1:1:1").is_err());
    assert!(
        TcpMonitor::parse_list("x:1")
            .unwrap_err()
            .to_string()
            .starts_with("port ")
    );
    assert!(
        TcpMonitor::parse_list("80:0")
            .unwrap_err()
            .to_string()
            .starts_with("max_connections ")
    );
    assert!(TcpMonitor::parse_list("80:5:nan").is_err());
    assert!(TcpMonitor::parse_list("80:5:1:-3").is_err());
}

#[test]
fn layering_order_is_defaults_file_env_flags() {
    let dir = std::env::temp_dir().join(format!("lbf-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        r#"{"sample_ms": 200, "mode": "drain", "maxconn": 9}"#,
    )
    .unwrap();
    let file = ConfigFile {
        path: path.clone(),
        explicit: true,
    };
    let env = env_map(&[
        ("LB_FEEDBACK_SAMPLE_MS", "300"),
        ("LB_FEEDBACK_MODE", "maint"),
    ]);
    let config = load(&file, &env, &[]).unwrap();
    assert_eq!(config.sample_ms.get(), 300);
    assert_eq!(config.mode, Mode::Maint);
    assert_eq!(config.mode_origin, Origin::Env("LB_FEEDBACK_MODE"));
    assert_eq!(config.maxconn.map(Int::get), Some(9));
    let flags = [
        (key("sample_ms"), "400".to_string()),
        (key("maxconn"), "none".to_string()),
    ];
    let config = load(&file, &env, &flags).unwrap();
    assert_eq!(config.sample_ms.get(), 400);
    assert_eq!(config.maxconn, None);
    assert_eq!(config.mode_origin, Origin::Env("LB_FEEDBACK_MODE"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_default_file_means_defaults_but_named_file_must_exist() {
    let none = env_map(&[]);
    assert_eq!(
        load(&missing_file(), &none, &[]).unwrap(),
        Config::default()
    );
    let named = ConfigFile {
        explicit: true,
        ..missing_file()
    };
    let err = load(&named, &none, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/lb-feedback/config.json: cannot read: No such file or directory"
    );
}

#[test]
fn env_errors_name_the_variable() {
    let env = env_map(&[("LB_FEEDBACK_CPU_IMPORTANCE", "lots")]);
    let err = load(&missing_file(), &env, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable LB_FEEDBACK_CPU_IMPORTANCE: \"lots\" is not a number; allowed: 0 to 100"
    );
    let env = env_map(&[("LB_FEEDBACK_TCP", "3389")]);
    assert!(
        load(&missing_file(), &env, &[])
            .unwrap_err()
            .to_string()
            .starts_with(
                "environment variable LB_FEEDBACK_TCP: \"3389\": expected port:max_connections"
            )
    );
    let env = env_map(&[("LB_FEEDBACK_MODE", "off")]);
    assert!(
        load(&missing_file(), &env, &[])
            .unwrap_err()
            .to_string()
            .contains("allowed: normal, drain")
    );
}

#[test]
fn flag_errors_name_the_flag() {
    let flags = [(key("recovery_seconds"), "-1".to_string())];
    let err = load(&missing_file(), &env_map(&[]), &flags).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--recovery-seconds: \"-1\" is not a whole number; allowed: 0 to 86400"
    );
}

#[test]
fn env_tcp_replaces_the_file_list_and_empty_clears_it() {
    let mut config = json(r#"{"tcp": [{"port": 80, "max_connections": 10}]}"#).unwrap();
    config
        .apply_text(key("tcp"), "443:5", Origin::Env("LB_FEEDBACK_TCP"))
        .unwrap();
    assert_eq!(config.tcp.len(), 1);
    assert_eq!(config.tcp[0].port.get(), 443);
    config
        .apply_text(key("tcp"), "", Origin::Env("LB_FEEDBACK_TCP"))
        .unwrap();
    assert!(config.tcp.is_empty());
}

#[test]
fn config_file_choice() {
    let none = env_map(&[]);
    assert!(!ConfigFile::choose(None, &none).explicit);
    let env = env_map(&[("LB_FEEDBACK_CONFIG", "/e.json")]);
    assert_eq!(
        ConfigFile::choose(None, &env).path,
        PathBuf::from("/e.json")
    );
    let chosen = ConfigFile::choose(Some(Path::new("/f.json")), &env);
    assert_eq!(chosen.path, PathBuf::from("/f.json"));
    assert!(chosen.explicit);
}

mod profiles;
