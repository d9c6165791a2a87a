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

/// The host's CPU, busy over a one-second window.
fn host_cpu(busy: f64) -> CpuFigure {
    CpuFigure {
        busy,
        how: cpu::How::Window { length: 1000 },
        from: cpu::Source::Host,
    }
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
        cpu: Some(host_cpu(30.0)),
        ram: Some(RamFigure {
            memory: Memory {
                total: 100,
                available: 10,
            },
            from: crate::metrics::memory::Source::Host,
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
fn only_an_explained_probe_puts_its_figures_in_words() {
    let config = config(
        r#"{"tcp": [{"port": 80, "max_connections": 10}], "sessions": {"max_sessions": 40},
                "custom": [{"name": "queue", "file": "/q", "max": 50}],
                "pressure": [{"resource": "io"}], "recovery": "never"}"#,
    );
    let at = |some| crate::metrics::pressure::Counters {
        some,
        full: Some(0),
    };
    let readings = Readings {
        cpu: Some(host_cpu(30.0)),
        ram: Some(RamFigure {
            memory: Memory {
                total: 100 << 20,
                available: 10 << 20,
            },
            from: crate::metrics::memory::Source::Host,
        }),
        tcp: vec![(80, 5)],
        sessions: Some(Sessions {
            active: 6,
            disconnected: 4,
            source: "fixture".into(),
        }),
        custom: vec![crate::metrics::custom::Reading {
            source: config.custom[0].source.clone(),
            value: Ok(20.0),
            took: Duration::from_millis(3),
        }],
        pressure: vec![crate::metrics::pressure::Reading {
            resource: crate::config::Resource::Io,
            figures: Ok((at(0), at(100_000), 1_000_000)),
            from: "host /proc/pressure/io".into(),
        }],
    };
    let state = temp_state("words");
    let mode = || (Mode::Normal, "test".to_string());
    let replied = answer(&config, None, &readings, mode(), Caller::Person, &state).unwrap();
    let explained = answer_with(
        &config,
        None,
        &readings,
        mode(),
        Caller::Person,
        &state,
        true,
    )
    .unwrap();
    // Every monitor answered, the same loads and reply either way; words only when asked.
    let loads = |report: &Report| {
        report
            .loads
            .iter()
            .map(|(l, _)| l.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(loads(&replied).len(), 6);
    assert_eq!(loads(&replied), loads(&explained));
    assert_eq!(replied.line, explained.line);
    assert!(replied.loads.iter().all(|(_, figure)| figure.is_none()));
    let words: Vec<String> = explained
        .loads
        .iter()
        .map(|(_, figure)| figure.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(
        words,
        [
            "busy 30.0% over 1000 ms; host /proc/stat",
            "90 MiB of 100 MiB in use; host /proc/meminfo",
            "5 of 10 established",
            "10 of 40 (6 active, 4 disconnected); fixture",
            "20 of max 50; file /q, took 3 ms",
            "stalled (some) 10.0% of 1000 ms; host /proc/pressure/io",
        ]
    );
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
    assert!(first.to_string().contains("no fresh counters"), "{}", first);
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
    assert!(
        soon.to_string().contains("last complete window"),
        "{}",
        soon
    );
    assert_eq!(soon.busy, saved.last.unwrap().0);
    assert_eq!(state.cpu_counters().unwrap().unwrap(), saved);
    // Past the minimum window: the difference, without waiting.
    std::thread::sleep(Duration::from_millis(SINCE_LAST_MIN_MS + 10));
    let second = sample(&needs, &config, &state, &mut wait)
        .unwrap()
        .cpu
        .unwrap();
    assert!(
        second.to_string().contains("since the previous probe"),
        "{}",
        second
    );
    assert!(
        second.from.to_string().contains("host /proc/stat"),
        "{}",
        second.from
    );
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
    assert!(third.to_string().contains("no fresh counters"), "{}", third);
    let mut record = state.cpu_counters().unwrap().unwrap();
    record.source = 12345;
    state.save_cpu_counters(&record).unwrap();
    let fourth = sample(&needs, &config, &state, &mut wait)
        .unwrap()
        .cpu
        .unwrap();
    assert!(
        fourth.to_string().contains("no fresh counters"),
        "{}",
        fourth
    );
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
    assert!(
        cpu.to_string().contains("waited to make it 250 ms"),
        "{}",
        cpu
    );
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
    let explained = |config, profile, readings: &Readings| {
        answer_with(
            config,
            profile,
            readings,
            mode(),
            Caller::Person,
            &state,
            true,
        )
        .unwrap()
    };
    let base = explained(&config, None, &readings);
    // 10 of 40: load 25, reply 75%.
    assert_eq!(base.line, "75%\n");
    let (load, figure) = &base.loads[0];
    assert_eq!((load.name.as_str(), load.load), ("sessions", 25.0));
    let figure = figure.as_ref().unwrap();
    assert_eq!(figure.text, "10 of 40 (6 active, 4 disconnected)");
    assert_eq!(figure.source.as_deref(), Some("fixture"));
    let (active, name) = select(&config, Some("active")).unwrap();
    let active = explained(active, name, &readings);
    assert_eq!(active.line, "85%\n");
    assert_eq!(
        active.loads[0].1.as_ref().unwrap().text,
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
