//! Unit tests of `probe`: needs, sampling from fixtures, answers and profiles.

use super::*;
use crate::metrics::cpu;
use crate::metrics::memory::Memory;
use crate::metrics::sessions::Sessions;
use crate::state::CpuRecord;
use std::path::Path;

fn config(json: &str) -> Config {
    let mut config = Config::default();
    config.apply_json(json, Path::new("t.json")).unwrap();
    config
}

fn temp_state(name: &str) -> StateDir {
    let dir = std::env::temp_dir().join(format!("lbf-probe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    StateDir::new(&dir)
}

#[test]
fn needs_cover_the_base_and_every_profile() {
    let config = config(
        r#"{"cpu": {"importance": 0}, "ram": {"importance": 0},
                "tcp": [{"port": 80, "max_connections": 5}],
                "profiles": {"rdp": {"tcp": [{"port": 3389, "max_connections": 5}, {"port": 80, "max_connections": 9}]},
                             "cpu": {"cpu": {"threshold": 90}}}}"#,
    );
    let needs = Needs::of(&config);
    assert!(needs.cpu);
    assert!(!needs.ram);
    assert_eq!(needs.tcp, vec![80, 3389]);
    assert!(needs.custom.is_empty());
}

#[test]
fn needs_run_each_custom_source_once() {
    let config = config(
        r#"{"custom": [{"name": "q", "file": "/q"}, {"name": "off", "file": "/off", "importance": 0}],
                "profiles": {"a": {"custom": [{"name": "q2", "file": "/q", "max": 5}]},
                             "b": {"custom": [{"name": "q", "file": "/q", "timeout_ms": 50}]}}}"#,
    );
    let needs = Needs::of(&config);
    let sources: Vec<String> = needs.custom.iter().map(|s| s.to_string()).collect();
    // The same file twice (other max, same source) once; another timeout is another source.
    assert_eq!(sources, ["file /q", "file /q"]);
    assert_ne!(needs.custom[0], needs.custom[1]);
}

#[test]
fn answer_uses_only_the_monitors_of_the_selected_config() {
    let config = config(
        r#"{"ram": {"importance": 0}, "tcp": [{"port": 80, "max_connections": 10}],
                "recovery": "never",
                "profiles": {"web": {"cpu": {"importance": 0}}}}"#,
    );
    let readings = Readings {
        cpu: Some(CpuFigure {
            busy: 30.0,
            how: "test".into(),
            from: "test".into(),
        }),
        ram: Some(RamFigure {
            memory: Memory {
                total: 100,
                available: 10,
            },
            from: "test".into(),
        }),
        tcp: vec![(80, 5)],
        sessions: None,
        custom: Vec::new(),
        pressure: Vec::new(),
    };
    let state = temp_state("answer");
    let mode = || (Mode::Normal, "test".to_string());
    let base = answer(&config, None, &readings, mode(), Caller::Person, &state).unwrap();
    // (30 + 50) / 2 = 40 → 60%
    assert_eq!(base.line, "60%\n");
    let (web, name) = select(&config, Some("web")).unwrap();
    let web = answer(web, name, &readings, mode(), Caller::Person, &state).unwrap();
    assert_eq!(web.line, "50%\n");
    assert_eq!(web.profile.as_deref(), Some("web"));
    assert!(matches!(
        select(&config, Some("db")),
        Err(ProbeError::Profile(_))
    ));
    assert_eq!(ProbeError::Profile("db".into()).line(), "error:profile\n");
    let _ = std::fs::remove_dir_all(state.path());
}

#[test]
fn since_last_answers_from_the_saved_counters() {
    let state = temp_state("since");
    let config =
        config(r#"{"cpu_mode": "since-last", "sample_ms": 100, "ram": {"importance": 0}}"#);
    let waited = std::cell::RefCell::new(Vec::new());
    let mut wait = |deadline: Instant| {
        let left = deadline.saturating_duration_since(Instant::now());
        waited.borrow_mut().push(left);
        std::thread::sleep(left);
    };
    let needs = Needs::of(&config);
    // No counters yet: it samples and saves them with the window's figure.
    let first = sample(&needs, &config, &state, &mut wait)
        .unwrap()
        .cpu
        .unwrap();
    assert!(first.how.contains("no fresh counters"), "{}", first.how);
    let saved = state.cpu_counters().unwrap().unwrap();
    assert_eq!(
        saved.last,
        Some(((first.busy * 1000.0).round() / 1000.0, 100))
    );
    // Too soon for a window of its own: the last complete window answers, at once, and
    // the counters stay as they were.
    let soon = sample(&needs, &config, &state, &mut wait)
        .unwrap()
        .cpu
        .unwrap();
    assert!(soon.how.contains("last complete window"), "{}", soon.how);
    assert_eq!(soon.busy, saved.last.unwrap().0);
    assert_eq!(state.cpu_counters().unwrap().unwrap(), saved);
    // Past the minimum window: the difference, without waiting.
    std::thread::sleep(Duration::from_millis(SINCE_LAST_MIN_MS + 10));
    let second = sample(&needs, &config, &state, &mut wait)
        .unwrap()
        .cpu
        .unwrap();
    assert!(
        second.how.contains("since the previous probe"),
        "{}",
        second.how
    );
    assert!(second.from.contains("host /proc/stat"), "{}", second.from);
    assert_eq!(waited.borrow().len(), 1);
    assert!(waited.borrow()[0] >= Duration::from_millis(50));
    // Counters older than the bound are not used, nor another source's.
    let mut record = state.cpu_counters().unwrap().unwrap();
    record.at_ms = clock::now_ms() - 31_000;
    state.save_cpu_counters(&record).unwrap();
    let third = sample(&needs, &config, &state, &mut wait)
        .unwrap()
        .cpu
        .unwrap();
    assert!(third.how.contains("no fresh counters"), "{}", third.how);
    let mut record = state.cpu_counters().unwrap().unwrap();
    record.source = 12345;
    state.save_cpu_counters(&record).unwrap();
    let fourth = sample(&needs, &config, &state, &mut wait)
        .unwrap()
        .cpu
        .unwrap();
    assert!(fourth.how.contains("no fresh counters"), "{}", fourth.how);
    let _ = std::fs::remove_dir_all(state.path());
}

#[test]
fn since_last_without_a_last_figure_waits_out_the_minimum_window_only() {
    let state = temp_state("since-min");
    let config =
        config(r#"{"cpu_mode": "since-last", "sample_ms": 2000, "ram": {"importance": 0}}"#);
    let counters = cpu::read().unwrap();
    let record = CpuRecord {
        at_ms: clock::now_ms(),
        counters,
        source: 0,
        last: None,
    };
    state.save_cpu_counters(&record).unwrap();
    let started = Instant::now();
    let mut wait = |deadline: Instant| std::thread::sleep(deadline - Instant::now());
    let cpu = sample(&Needs::of(&config), &config, &state, &mut wait)
        .unwrap()
        .cpu
        .unwrap();
    let took = started.elapsed();
    assert!(cpu.how.contains("waited to make it 250 ms"), "{}", cpu.how);
    // Not the 2 s sample: at most the minimum window (and some slack for a busy machine).
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1500));
    let _ = std::fs::remove_dir_all(state.path());
}

#[test]
fn sessions_are_needed_when_a_config_or_profile_counts_them() {
    assert!(!Needs::of(&config("{}")).sessions);
    let off = config(r#"{"sessions": {"max_sessions": 5, "importance": 0}}"#);
    assert!(!Needs::of(&off).sessions);
    let profiled = config(r#"{"profiles": {"rds": {"sessions": {"max_sessions": 5}}}}"#);
    assert!(Needs::of(&profiled).sessions);
}

#[test]
fn answer_counts_sessions_against_the_maximum() {
    let config = config(
        r#"{"cpu": {"importance": 0}, "ram": {"importance": 0}, "recovery": "never",
                "sessions": {"max_sessions": 40, "threshold": 100},
                "profiles": {"active": {"sessions": {"max_sessions": 40, "disconnected": false}}}}"#,
    );
    let mut readings = Readings {
        sessions: Some(Sessions {
            active: 6,
            disconnected: 4,
            source: "fixture".into(),
        }),
        ..Readings::default()
    };
    let state = temp_state("sessions");
    let mode = || (Mode::Normal, "test".to_string());
    let base = answer(&config, None, &readings, mode(), Caller::Person, &state).unwrap();
    // 10 of 40: load 25, reply 75%.
    assert_eq!(base.line, "75%\n");
    let (load, figure) = &base.loads[0];
    assert_eq!((load.name.as_str(), load.load), ("sessions", 25.0));
    assert_eq!(figure.text, "10 of 40 (6 active, 4 disconnected)");
    assert_eq!(figure.source.as_deref(), Some("fixture"));
    let (active, name) = select(&config, Some("active")).unwrap();
    let active = answer(active, name, &readings, mode(), Caller::Person, &state).unwrap();
    assert_eq!(active.line, "85%\n");
    assert_eq!(
        active.loads[0].1.text,
        "6 of 40 active (4 disconnected not counted)"
    );
    // Over the maximum the load passes 100 and the threshold drains.
    readings.sessions = Some(Sessions {
        active: 44,
        disconnected: 0,
        source: "fixture".into(),
    });
    let full = answer(&config, None, &readings, mode(), Caller::Person, &state).unwrap();
    assert_eq!(full.loads[0].0.load, 110.0);
    assert!(full.line.starts_with("drain"), "{}", full.line);
    let _ = std::fs::remove_dir_all(state.path());
}
