//! since-last with several load balancers: a probe a few milliseconds after another answers at
//! once with the figure of the last complete window, not from the couple of kernel ticks in
//! between, and not by sampling a full window.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{TempDir, agent, stdout};

/// `--explain`'s CPU load and its raw figure, from a since-last probe of the host's CPU only.
fn probe(dir: &TempDir) -> (f64, String, Duration) {
    let started = Instant::now();
    let output = agent(dir)
        .env("LB_FEEDBACK_CPU_MODE", "since-last")
        .env("LB_FEEDBACK_SAMPLE_MS", "1000")
        .env("LB_FEEDBACK_RAM_IMPORTANCE", "0")
        .env("LB_FEEDBACK_SCOPE", "host")
        .arg("--explain")
        .output()
        .unwrap();
    let took = started.elapsed();
    let text = stdout(&output);
    let line = text
        .lines()
        .find(|line| line.starts_with("cpu "))
        .unwrap_or_else(|| panic!("no cpu line in:\n{text}"));
    let load = line
        .split_whitespace()
        .rev()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    (load, line.to_string(), took)
}

/// The host's busy and total ticks, as the agent counts them (iowait idle, steal busy).
fn proc_stat() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap();
    let fields: Vec<u64> = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().unwrap())
        .collect();
    let total: u64 = fields.iter().sum();
    (total - fields[3] - fields[4], total)
}

#[test]
fn two_probes_five_ms_apart_agree_with_the_full_window_at_once() {
    let dir = TempDir::new("since-last-close");
    // A steady load: one core kept busy for the length of the test.
    let stop = Arc::new(AtomicBool::new(false));
    let burner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(0u64.wrapping_add(1));
            }
        })
    };
    // The first probe has no counters: it samples a full window and saves them.
    let (_, first, _) = probe(&dir);
    assert!(first.contains("no fresh counters"), "{first}");
    let start = proc_stat();
    std::thread::sleep(Duration::from_millis(1000));
    let (a, a_line, _) = probe(&dir);
    let end = proc_stat();
    std::thread::sleep(Duration::from_millis(5));
    let (b, b_line, b_took) = probe(&dir);
    stop.store(true, Ordering::Relaxed);
    burner.join().unwrap();
    assert!(a_line.contains("since the previous probe"), "{a_line}");
    // The second answers with the first one's window, at once (no 1 s sample, no wait).
    assert!(b_line.contains("last complete window"), "{b_line}");
    assert_eq!(a, b, "{a_line}\n{b_line}");
    assert!(b_took < Duration::from_millis(500), "took {b_took:?}");
    // And that window agrees with the kernel's counters over about the same second; the
    // ends differ by the time a probe takes to start, so a few points of slack.
    let host = (end.0 - start.0) as f64 / (end.1 - start.1) as f64 * 100.0;
    assert!(
        (a - host).abs() < 8.0,
        "agent {a}, /proc/stat {host:.1}\n{a_line}"
    );
}
