//! Unit tests of `state`: the state directory's files through `StateDir`.

use super::*;
use crate::metrics::cpu::Counters;
use history::Change;
use std::fs;

/// Where since-last keeps the CPU counters (what older versions wrote, too).
const CPU_FILE: &str = "cpu-counters";

fn temp_state(name: &str) -> StateDir {
    let dir = std::env::temp_dir().join(format!("lbf-state-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    StateDir::new(&dir)
}

#[test]
fn runtime_mode_round_trip_and_clear() {
    let state = temp_state("mode");
    assert_eq!(state.runtime_mode().unwrap(), None);
    let mode = RuntimeMode {
        mode: Mode::Drain,
        set_at_ms: 1000,
        until_ms: Some(5000),
    };
    state.set_runtime_mode(Some(&mode)).unwrap();
    let read = state.runtime_mode().unwrap().unwrap();
    assert_eq!(read, mode);
    assert!(!read.expired(4999));
    assert!(read.expired(5000));
    state.set_runtime_mode(None).unwrap();
    assert_eq!(state.runtime_mode().unwrap(), None);
    state.set_runtime_mode(None).unwrap();
    let leftovers: Vec<_> = fs::read_dir(state.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    fs::remove_dir_all(state.path()).unwrap();
}

#[test]
fn corrupt_mode_file_is_an_error_not_a_guess() {
    let state = temp_state("corrupt");
    fs::create_dir_all(state.path()).unwrap();
    fs::write(state.path().join(MODE_FILE), "{\"mode\":").unwrap();
    let err = state.runtime_mode().unwrap_err();
    assert!(err.problem.to_string().contains("not a mode file"), "{err}");
    fs::remove_dir_all(state.path()).unwrap();
}

#[test]
fn cpu_counters_round_trip() {
    let state = temp_state("cpu");
    assert_eq!(state.cpu_counters().unwrap(), None);
    let counters = Counters { busy: 5, total: 50 };
    let record = |at_ms, last| CpuRecord {
        at_ms,
        counters,
        source: 7,
        last,
    };
    state.save_cpu_counters(&record(1234, None)).unwrap();
    assert_eq!(state.cpu_counters().unwrap(), Some(record(1234, None)));
    state
        .save_cpu_counters(&record(1234, Some((42.125, 250))))
        .unwrap();
    assert_eq!(
        state.cpu_counters().unwrap(),
        Some(record(1234, Some((42.125, 250))))
    );
    fs::write(state.path().join(CPU_FILE), "garbage").unwrap();
    assert_eq!(state.cpu_counters().unwrap(), None);
    // The formats before (no checksum; no source and last figure), and a record with one
    // digit changed.
    fs::write(state.path().join(CPU_FILE), "1234 5 50\n").unwrap();
    assert_eq!(state.cpu_counters().unwrap(), None);
    let fields = "00000000000000001234 00000000000000000005 00000000000000000050";
    let older = format!("{fields} {:016x}\n", checksum(fields.as_bytes()));
    fs::write(state.path().join(CPU_FILE), older).unwrap();
    assert_eq!(state.cpu_counters().unwrap(), None);
    state.save_cpu_counters(&record(1234, None)).unwrap();
    let text = fs::read_to_string(state.path().join(CPU_FILE)).unwrap();
    assert_eq!(text.len(), 143);
    fs::write(state.path().join(CPU_FILE), text.replace("50 ", "51 ")).unwrap();
    assert_eq!(state.cpu_counters().unwrap(), None);
    // Overwriting a longer file in place keeps only the first line.
    fs::write(state.path().join(CPU_FILE), "x".repeat(200)).unwrap();
    state.save_cpu_counters(&record(99, None)).unwrap();
    assert_eq!(state.cpu_counters().unwrap(), Some(record(99, None)));
    fs::remove_dir_all(state.path()).unwrap();
}

/// Readers racing writers see a whole record or none (a torn one is simulated above, with
/// one digit changed: it may be too rare to catch here).
#[test]
fn cpu_counters_read_while_written_are_whole_or_none() {
    let state = temp_state("cpu-race");
    let state = &state;
    std::thread::scope(|scope| {
        for writer in 0..2u64 {
            scope.spawn(move || {
                for i in 0..5_000u64 {
                    let at = writer * 1_000_000_000 + i * 99_991;
                    let counters = Counters {
                        busy: at * 3,
                        total: at * 7 + 1,
                    };
                    let record = CpuRecord {
                        at_ms: at,
                        counters,
                        source: 0,
                        last: None,
                    };
                    state.save_cpu_counters(&record).unwrap();
                }
            });
        }
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..5_000 {
                    if let Some(record) = state.cpu_counters().unwrap() {
                        let (at, counters) = (record.at_ms, record.counters);
                        assert_eq!((counters.busy, counters.total), (at * 3, at * 7 + 1));
                    }
                }
            });
        }
    });
    fs::remove_dir_all(state.path()).unwrap();
}

const RULE: Rule = Rule {
    policy: RecoveryPolicy::Window,
    replies: 3,
    seconds: 10,
};

fn line(recover: bool) -> String {
    match recover {
        true => "up ready 70%\n".into(),
        false => "70%\n".into(),
    }
}

fn poll(state: &StateDir, poller: &Poller, kind: Kind, at: u64) -> RecoveryDecision {
    recovery(RULE, kind, state, Some(poller), at, &line).0
}

#[test]
fn the_table_on_disk_carries_what_each_poller_is_owed() {
    let state = temp_state("table");
    let a = Poller::new(Some("127.0.0.1".parse().unwrap()), None);
    let b = Poller::new(Some("127.0.0.2".parse().unwrap()), Some("web"));
    assert!(poll(&state, &a, Kind::Normal, 1_000).recover, "new poller");
    assert!(
        poll(&state, &b, Kind::NonNormal, 1_000)
            .why
            .contains("owed")
    );
    let entries = state.pollers().unwrap().unwrap();
    assert_eq!(entries.len(), 2);
    let find = |p: &Poller| entries.iter().find(|e| e.poller == *p).unwrap().clone();
    assert_eq!(find(&a).last_reply, "up ready 70%");
    assert_eq!(find(&b).last_reply, "70%");
    // A mode change owes everyone again, a poller owed nothing included.
    for at in [2_000, 3_000, 20_000] {
        poll(&state, &a, Kind::Normal, at);
    }
    assert!(!poll(&state, &a, Kind::Normal, 21_000).recover);
    let mode = Event {
        at_ms: 22_000,
        change: Change::Mode {
            from: Some(Mode::Drain),
            to: Mode::Normal,
        },
        why: "lb-feedback mode normal until changed".into(),
    };
    state.owe_all(22_000, mode.clone()).unwrap();
    // The history: each first poll, then the mode change; later polls changed nothing.
    let history = state.history().unwrap();
    let words: Vec<(String, String)> = history
        .iter()
        .map(|e| (e.from_word(), e.to_word()))
        .collect();
    let seen: Vec<(&str, &str, &str)> = history
        .iter()
        .zip(&words)
        .map(|(e, (from, to))| (e.peer(), from.as_str(), to.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("127.0.0.1", "new", "normal"),
            ("127.0.0.2", "new", "normal"),
            ("mode", "drain", "normal")
        ]
    );
    assert_eq!(history[2], mode);
    assert!(poll(&state, &a, Kind::Normal, 23_000).recover);
    // By hand: nothing owed, nothing recorded.
    let (by_hand, sent) = recovery(RULE, Kind::Normal, &state, None, 24_000, &line);
    assert!(
        !by_hand.recover && by_hand.why.contains("by hand"),
        "{by_hand:?}"
    );
    assert_eq!(sent, "70%\n");
    assert_eq!(state.pollers().unwrap().unwrap().len(), 2);
    let leftovers = fs::read_dir(state.path()).unwrap().count();
    assert_eq!(leftovers, 2, "only the table and the history");
    fs::remove_dir_all(state.path()).unwrap();
}

#[test]
fn a_damaged_table_starts_afresh_with_every_poller_owed() {
    let state = temp_state("damaged");
    let a = Poller::new(Some("10.0.0.1".parse().unwrap()), None);
    for at in [1, 2, 3, 20_000, 20_001] {
        poll(&state, &a, Kind::Normal, at);
    }
    assert!(!poll(&state, &a, Kind::Normal, 20_002).recover);
    let file = state.path().join(POLLERS_FILE);
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() - 2]).unwrap();
    assert!(
        state
            .pollers()
            .unwrap_err()
            .problem
            .to_string()
            .contains("afresh")
    );
    let d = poll(&state, &a, Kind::Normal, 20_003);
    assert!(d.recover && d.why.contains("started afresh"), "{d:?}");
    fs::remove_dir_all(state.path()).unwrap();
}

#[test]
fn a_held_lock_or_a_planted_file_means_up_ready_not_a_hang() {
    let state = temp_state("held");
    let a = Poller::new(None, None);
    poll(&state, &a, Kind::Normal, 1);
    let holder = fs::File::open(state.path().join(POLLERS_FILE)).unwrap();
    holder.lock().unwrap();
    let start = std::time::Instant::now();
    let d = poll(&state, &a, Kind::Normal, 100_000);
    assert!(d.recover && d.why.contains("lock"), "{d:?}");
    assert!(start.elapsed() < LOCK_WAIT * 4);
    // A drain that cannot be recorded removes the table: everyone is new, so owed.
    let d = poll(&state, &a, Kind::NonNormal, 100_001);
    assert!(d.why.contains("removed"), "{d:?}");
    drop(holder);
    assert!(state.pollers().unwrap().is_none());
    // A link planted at the table is never followed (Windows needs a privilege to make one).
    #[cfg(unix)]
    {
        let target = state.path().join("target");
        fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, state.path().join(POLLERS_FILE)).unwrap();
        let d = poll(&state, &a, Kind::Normal, 100_002);
        assert!(d.recover && d.why.contains("symbolic link"), "{d:?}");
        assert_eq!(fs::read(&target).unwrap(), b"keep");
    }
    fs::remove_dir_all(state.path()).unwrap();
}

#[test]
fn concurrent_polls_lose_no_update() {
    let state = temp_state("concurrent");
    let state = &state;
    std::thread::scope(|scope| {
        for t in 0..8u8 {
            scope.spawn(move || {
                let p = Poller::new(Some(std::net::IpAddr::from([127, 0, 0, t + 1])), None);
                for i in 0..50 {
                    let d = poll(state, &p, Kind::Normal, 1_000 + i);
                    assert!(!d.why.contains("unusable"), "{d:?}");
                }
            });
        }
    });
    let entries = state.pollers().unwrap().unwrap();
    assert_eq!(entries.len(), 8);
    // Each was sent `up ready` on all 50 (the 10 s are not over): none lost a count.
    for entry in &entries {
        assert_eq!(entry.owed.unwrap().sent, 50, "{entry:?}");
    }
    fs::remove_dir_all(state.path()).unwrap();
}

#[test]
fn unusable_state_dir_behaves_as_always() {
    let file = std::env::temp_dir().join(format!("lbf-state-file-{}", std::process::id()));
    fs::write(&file, "not a dir").unwrap();
    let state = StateDir::new(&file.join("sub"));
    let a = Poller::new(None, None);
    let d = poll(&state, &a, Kind::Normal, 1);
    assert!(d.recover);
    assert!(d.why.contains("unusable"), "{}", d.why);
    let d = poll(&state, &a, Kind::NonNormal, 1);
    assert!(d.why.contains("could not record"), "{}", d.why);
    fs::remove_file(&file).unwrap();
}
