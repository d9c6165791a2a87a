//! The pressure monitor against the kernel's own counters: while busy loops outnumber the
//! CPUs, the share the agent reports for `/proc/pressure/cpu` agrees with the `total` delta
//! the test reads around it; and in a cgroup2 child it reads that cgroup's own file. Needs a
//! kernel with PSI (and, for the child, root and a writable cgroup2 mount); skipped with a
//! visible line elsewhere, a failure under LB_FEEDBACK_E2E=1.

#[path = "common/cgroup.rs"]
mod cgroup;
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cgroup::Cgroup;
use common::{TempDir, agent_without_cpu_ram, e2e_required, stdout};

fn skip(why: &str) {
    assert!(!e2e_required(), "LB_FEEDBACK_E2E=1 but {why}");
    eprintln!("skipped: {why}");
}

/// `some` stalled µs so far in a pressure file.
fn some_total(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.starts_with("some ")).unwrap();
    line.rsplit_once("total=")
        .unwrap()
        .1
        .trim()
        .parse()
        .unwrap()
}

/// Busy loops, one more than the CPUs, until dropped (and at most 20 s).
struct Busy(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Busy {
    fn start() -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..=cpus)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let end = Instant::now() + Duration::from_secs(20);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Busy(stop, threads)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        self.1.drain(..).for_each(|t| t.join().unwrap());
    }
}

/// The pressure monitor's raw figure and source from `--explain --json`.
fn pressure_of(output: &std::process::Output) -> (f64, String) {
    let text = stdout(output);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
    let monitor = json["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "pressure:cpu:some")
        .unwrap_or_else(|| panic!("{text}"));
    (
        monitor["raw"].as_f64().unwrap(),
        monitor["source"].as_str().unwrap().to_string(),
    )
}

#[test]
fn host_cpu_pressure_agrees_with_the_kernels_totals_over_the_same_window() {
    let file = PathBuf::from("/proc/pressure/cpu");
    if !file.is_file() {
        return skip("this kernel has no /proc/pressure/cpu");
    }
    let dir = TempDir::new("pressure-host");
    let _busy = Busy::start();
    std::thread::sleep(Duration::from_millis(300));
    let mut command = agent_without_cpu_ram(&dir);
    command
        .env("LB_FEEDBACK_PRESSURE", "cpu:some")
        .env("LB_FEEDBACK_SCOPE", "host")
        .env("LB_FEEDBACK_SAMPLE_MS", "1000")
        .args(["--explain", "--json"]);
    let (start, began) = (some_total(&file), Instant::now());
    let output = command.output().unwrap();
    let (end, elapsed) = (some_total(&file), began.elapsed());
    let (agent, source) = pressure_of(&output);
    let kernel = (end - start) as f64 / elapsed.as_micros() as f64 * 100.0;
    assert_eq!(source, "host /proc/pressure/cpu");
    // The test's window holds the agent's plus its start and exit: a few ms of 1000.
    assert!(
        (agent - kernel).abs() <= 5.0,
        "agent {agent:.1}%, kernel's totals {kernel:.1}% over {elapsed:?}"
    );
    assert!(
        kernel > 10.0,
        "the busy loops made no pressure: {kernel:.1}%"
    );
}

#[test]
fn in_a_cgroup2_child_the_cgroups_own_pressure_file_is_read() {
    let top = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .map(PathBuf::from)
        .into_iter()
        .find(|top| top.join("cgroup.controllers").is_file() && top.join("cpu.pressure").is_file());
    let Some(top) = top else {
        return skip("no cgroup2 mount with pressure files");
    };
    let child = top.join(format!("lbf-psi-{}", std::process::id()));
    if let Err(err) = std::fs::create_dir(&child) {
        return skip(&format!("cannot create {}: {err}", child.display()));
    }
    let dir = TempDir::new("pressure-cgroup");
    let mut command = agent_without_cpu_ram(&dir);
    command
        .env("LB_FEEDBACK_PRESSURE", "cpu:some:1:60")
        .env("LB_FEEDBACK_SCOPE", "cgroup")
        .env("LB_FEEDBACK_SAMPLE_MS", "200")
        .args(["--explain", "--json"]);
    let mut wrapped = std::process::Command::new("sh");
    wrapped
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$@\"",
            child.display()
        ))
        .arg("sh")
        .arg(command.get_program())
        .args(command.get_args())
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            wrapped.env(key, value);
        }
    }
    let output = wrapped.output().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::remove_dir(&child).is_err() && child.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (share, source) = pressure_of(&output);
    let name = child.file_name().unwrap().to_str().unwrap();
    assert_eq!(source, format!("cgroup v2 /{name} cpu.pressure"));
    assert!((0.0..=100.0).contains(&share), "{share}");
}

/// The shipped config for containers (docs/containers.md).
const CONTAINER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/container.json");

/// A container as Docker makes one on a v1 host: cpu and cpuacct cgroups with a quota of half
/// a CPU.
fn container(suffix: &str) -> Result<Cgroup, String> {
    let quota = [("cpu", "cpu.cfs_quota_us", "50000".to_string())];
    Cgroup::create(suffix, &["cpu", "cpuacct"], &quota)
}

/// The agent's `--explain` from inside `container`, with the shipped container config: its
/// reply line, and the whole breakdown for messages.
fn reply_inside(container: &Cgroup, dir: &TempDir) -> (String, String) {
    let mut agent = common::agent(dir);
    agent
        .arg("--explain")
        .env("LB_FEEDBACK_CONFIG", CONTAINER)
        .env("LB_FEEDBACK_RECOVERY", "never");
    let text = stdout(&container.inside(&agent).output().unwrap());
    let reply = text.lines().last().unwrap_or_default().to_string();
    (reply, text)
}

fn shell(script: &str) -> std::process::Command {
    let mut command = std::process::Command::new("sh");
    command.args(["-c", script]);
    command
}

/// The starving container: two busy loops in half a CPU on a host whose other load
/// fills its CPUs. Its CPU use can read as half idle; its tasks wait most of the time, and
/// the shipped container config (contrib/container.json: CPU pressure `some`, threshold 60)
/// drains it. A light container (a loop that mostly sleeps, the host quiet) does not.
#[test]
fn a_starving_v1_container_drains_with_cpu_pressure_and_a_light_one_does_not() {
    let mut starving = match container("-starving") {
        Ok(container) => container,
        Err(why) => return skip(&why),
    };
    let dir = TempDir::new("pressure-v1");
    starving.spawn(&shell("while :; do :; done"));
    starving.spawn(&shell("while :; do :; done"));
    let busy = Busy::start();
    std::thread::sleep(Duration::from_millis(300));
    let (reply, text) = reply_inside(&starving, &dir);
    drop(busy);
    eprintln!("starving: {reply}");
    assert!(
        reply.contains("drain #pressure:cpu:some:"),
        "{reply}\n{text}"
    );
    assert!(text.contains("run-queue wait of its tasks"), "{text}");
    drop(starving);

    let mut light = container("-light").unwrap();
    light.spawn(&shell("while :; do sleep 0.05; done"));
    let (reply, text) = reply_inside(&light, &dir);
    eprintln!("light: {reply}");
    assert!(
        reply.ends_with('%') && !reply.contains("drain"),
        "{reply}\n{text}"
    );
}

/// since-last: the second probe answers from the counters the first kept in the state
/// directory, over the time between them, without a window of its own.
#[test]
fn since_last_pressure_answers_from_the_counters_the_previous_probe_kept() {
    if !Path::new("/proc/pressure/cpu").is_file() {
        return skip("this kernel has no /proc/pressure/cpu");
    }
    let dir = TempDir::new("pressure-since-last");
    let probe = || {
        let mut command = agent_without_cpu_ram(&dir);
        command
            .env("LB_FEEDBACK_PRESSURE", "cpu:some")
            .env("LB_FEEDBACK_SCOPE", "host")
            .env("LB_FEEDBACK_CPU_MODE", "since-last")
            .env("LB_FEEDBACK_SAMPLE_MS", "5000")
            .args(["--explain", "--json"]);
        let text = stdout(&command.output().unwrap());
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
        let monitor = json["monitors"][0].clone();
        monitor["figure"].as_str().unwrap().to_string()
    };
    let first = probe();
    assert!(
        first.ends_with("of 5000 ms") || first.contains("of 500"),
        "{first}"
    );
    let kept = dir.path().join("state/pressure-cpu-counters");
    assert!(kept.is_file(), "no {}", kept.display());
    std::thread::sleep(Duration::from_millis(600));
    let second = probe();
    let ms: u64 = second
        .rsplit_once("of ")
        .and_then(|(_, ms)| ms.strip_suffix(" ms"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{second}"));
    // The time since the first probe's end, not a window of its own.
    assert!((250..5000).contains(&ms), "{second}");
}
