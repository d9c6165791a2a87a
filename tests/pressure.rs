//! Pressure stall information read for real while busy loops oversubscribe the CPUs: the
//! reader's stalled share of a window agrees with the `total=` deltas this test reads itself,
//! for the host's `/proc/pressure/cpu` and for cgroup2 cgroups of their own (a busy one and
//! an idle one, on a hybrid host's `/sys/fs/cgroup/unified`). Needs a kernel with PSI, and
//! root with a writable cgroup2 mount for the cgroups; skipped with a visible line elsewhere,
//! a failure under LB_FEEDBACK_E2E=1.

mod common;
#[path = "common/e2e.rs"]
mod e2e;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lb_feedback::metrics::cgroup::Roots;
use lb_feedback::metrics::pressure::{Counters, Kind, Place, PressureError, Resource};

/// Busy loops, each ending by itself after 60 s should the guard never drop, in the cgroup2
/// directory given (or where the test is); killed when dropped, then the directory removed.
struct Loops {
    dir: Option<PathBuf>,
    children: Vec<Child>,
}

impl Loops {
    fn start(dir: Option<PathBuf>, count: usize, script: &str) -> Loops {
        let join = match &dir {
            Some(dir) => format!("echo $$ > {}/cgroup.procs && ", dir.display()),
            None => String::new(),
        };
        let children = (0..count)
            .map(|_| {
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("{join}exec bash -c '{script}'"))
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        Loops { dir, children }
    }
}

impl Drop for Loops {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.dir {
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

const BURN: &str = "while ((SECONDS < 60)); do :; done";

/// The `some` total of a pressure file, parsed here apart from the reader under test.
fn own_total(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.starts_with("some ")).unwrap();
    let at = line.find("total=").unwrap() + "total=".len();
    line[at..].trim().parse().unwrap()
}

/// Over one second: the reader's `some` share and the test's own, in percent.
fn shares(place: &Place, roots: &Roots) -> (f64, f64) {
    let file = place.file(roots, Resource::Cpu);
    let (start, own_start) = (Instant::now(), own_total(&file));
    let first: Counters = place.read(roots, Resource::Cpu).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let last = place.read(roots, Resource::Cpu).unwrap();
    let (own_end, elapsed) = (own_total(&file), start.elapsed());
    let elapsed_us = elapsed.as_micros() as u64;
    let read = last
        .stalled_percent_since(&first, Kind::Some, elapsed_us)
        .unwrap();
    let own = (own_end - own_start) as f64 / elapsed_us as f64 * 100.0;
    (read, own)
}

#[test]
fn cpu_pressure_from_total_deltas_while_the_cpus_are_oversubscribed() {
    const TEST: &str = "cpu_pressure_from_total_deltas_while_the_cpus_are_oversubscribed";
    let roots = Roots::system();
    match Place::Host.read(&roots, Resource::Cpu) {
        Err(PressureError::Unsupported(why)) => {
            e2e::skip(TEST, &why, "needs a kernel with PSI");
            return;
        }
        other => {
            other.unwrap();
        }
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    // One more loop than CPUs on the host, and two in a cgroup of their own: some task
    // always waits.
    let _host = Loops::start(None, cpus + 1, BURN);
    std::thread::sleep(Duration::from_millis(300));
    let (read, own) = shares(&Place::Host, &roots);
    eprintln!("host cpu some: reader {read:.1} %, test {own:.1} %");
    assert!(
        (read - own).abs() <= 5.0,
        "reader {read:.1} %, test {own:.1} %"
    );
    assert!(
        read > 20.0,
        "{read:.1} % with {} loops on {cpus} CPUs",
        cpus + 1
    );

    let unified = PathBuf::from("/sys/fs/cgroup/unified");
    let top = match unified.join("cgroup.procs").is_file() {
        true => unified,
        false => PathBuf::from("/sys/fs/cgroup"),
    };
    let name = |what: &str| format!("lbf-psi-{}-{what}", std::process::id());
    let (busy_dir, idle_dir) = (top.join(name("busy")), top.join(name("idle")));
    for dir in [&busy_dir, &idle_dir] {
        if let Err(err) = std::fs::create_dir(dir) {
            e2e::skip(
                TEST,
                &format!("cannot create {}: {err}", dir.display()),
                "needs root and a writable cgroup2 mount",
            );
            let _ = std::fs::remove_dir(&busy_dir);
            return;
        }
    }
    let _busy = Loops::start(Some(busy_dir.clone()), 2, BURN);
    let _idle = Loops::start(Some(idle_dir.clone()), 1, "sleep 60");
    std::thread::sleep(Duration::from_millis(300));
    let place = |dir: &Path, path: String| Place::Cgroup {
        path,
        dir: dir.to_path_buf(),
    };
    let busy = place(&busy_dir, format!("/{}", name("busy")));
    let (read, own) = shares(&busy, &roots);
    eprintln!("busy cgroup cpu some: reader {read:.1} %, test {own:.1} %");
    assert!(
        (read - own).abs() <= 5.0,
        "reader {read:.1} %, test {own:.1} %"
    );
    assert!(read > 20.0, "{read:.1} % in the busy cgroup");
    let idle = place(&idle_dir, format!("/{}", name("idle")));
    let (read, own) = shares(&idle, &roots);
    eprintln!("idle cgroup cpu some: reader {read:.1} %, test {own:.1} %");
    assert!(
        (read - own).abs() <= 5.0,
        "reader {read:.1} %, test {own:.1} %"
    );
    assert!(read < 5.0, "{read:.1} % in a cgroup that only sleeps");
}
