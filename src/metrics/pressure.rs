//! The pressure monitor: the share of the sample window in which tasks stalled on CPU,
//! memory or I/O (Linux PSI), from the `total` counters (µs) of `some` and `full` read at
//! the window's start and end — `avg10` lags a change by tens of seconds. Saturation rather
//! than utilisation: a container starved by its host, or a box swapping, stalls while its
//! CPU figure still looks idle.
//!
//! Where: the cgroup's own `cpu.pressure`, `memory.pressure`, `io.pressure` (cgroup v2, also
//! the unified hierarchy of a hybrid system) when `scope` says cgroup or auto finds a limit
//! on the resource (io: either limit); else the host's `/proc/pressure/*`. cgroup v1 has no
//! pressure files, which `--explain` says when the limit is a v1 one.

use std::path::PathBuf;
use std::time::Instant;

use super::monitor::{Answered, Figure, Monitor, Started, Window, limits, load};
use super::{Cgroups, MetricError};
use crate::config::{CpuMode, Monitors, Resource, Scope, Stall};

/// Stalled time so far, in µs, from one pressure file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    pub some: u64,
    /// `None` where the kernel writes no `full` line (CPU before Linux 5.13).
    pub full: Option<u64>,
}

/// The `total=` of the `some` and `full` lines of a pressure file.
pub fn parse(text: &str) -> Option<Counters> {
    let total = |line: &str| {
        let (_, total) = line.rsplit_once(" total=")?;
        total.trim().parse::<u64>().ok()
    };
    let (mut some, mut full) = (None, None);
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("some", _)) => some = Some(total(line)?),
            Some(("full", _)) => full = Some(total(line)?),
            _ => {}
        }
    }
    Some(Counters { some: some?, full })
}

/// The stalled share in percent of `elapsed_us` between two readings; `None` for a kind the
/// file does not have, or counters that went back (another cgroup, a forged file).
pub fn share(start: &Counters, end: &Counters, kind: Stall, elapsed_us: u64) -> Option<f64> {
    let (a, b) = match kind {
        Stall::Some => (start.some, end.some),
        Stall::Full => (start.full?, end.full?),
    };
    let stalled = b.checked_sub(a)?;
    Some((stalled as f64 / elapsed_us.max(1) as f64 * 100.0).clamp(0.0, 100.0))
}

/// Where one resource's stalls are read, and that place in words.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub source: Source,
    pub from: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A pressure file.
    File(PathBuf),
    /// A cgroup v1 with a CPU limit, which has no pressure files: the run-queue wait of the
    /// tasks its `tasks` file lists (`/proc/TID/schedstat`), added up. That is the average
    /// number of its tasks waiting for a CPU, whether the host is busy or its quota ran out,
    /// which tells saturation as PSI's `some` does (above it when several wait at once, and
    /// capped at 100 %); a task that ends within the window takes its wait with it.
    Wait { tasks: PathBuf, procfs: PathBuf },
}

/// The file `scope` asks for. Auto takes the cgroup's when the cgroup limits the resource,
/// the host's otherwise (saying why); cgroup insists.
#[cfg(target_os = "linux")]
pub fn place(resource: Resource, scope: Scope, cgroups: &Cgroups) -> Result<Place, String> {
    let name = resource.name();
    let host = |why: Option<String>| {
        let path = cgroups.roots().procfs.join("pressure").join(name);
        let from = match why {
            Some(why) => format!("host /proc/pressure/{name} ({why})"),
            None => format!("host /proc/pressure/{name}"),
        };
        Place {
            source: Source::File(path),
            from,
        }
    };
    if scope == Scope::Host {
        return Ok(host(None));
    }
    let auto = scope == Scope::Auto;
    let placement = match cgroups.placement() {
        Ok(placement) => placement,
        Err(err) if auto => return Ok(host(Some(format!("cgroup: {err}")))),
        Err(err) => return Err(format!("scope cgroup: {err}")),
    };
    if auto {
        let cpu = || cgroups.cpu().map(|c| c.limited);
        let memory = || cgroups.memory().map(|m| m.limit.is_some());
        let limited = match resource {
            Resource::Cpu => cpu(),
            Resource::Memory => memory(),
            Resource::Io => cpu().and_then(|c| Ok(c || memory()?)),
        };
        match limited {
            Ok(true) => {}
            Ok(false) => return Ok(host(Some("no limit in its cgroup".into()))),
            Err(err) => return Ok(host(Some(format!("cgroup: {err}")))),
        }
    }
    match placement.unified() {
        // On a hybrid system a v1 limit leaves the process at the top of the unified tree,
        // whose pressure is the host's: the v1 cgroup's run-queue wait says more for CPU.
        Ok((group, _)) if auto && group.path == "/" => match resource {
            Resource::Cpu => run_queue_wait(placement, cgroups),
            _ => Ok(host(Some(
                "its limit is a cgroup v1 one, and cgroup v1 has no pressure files".into(),
            ))),
        },
        Ok((group, _)) => Ok(Place {
            source: Source::File(group.file(&format!("{name}.pressure"))),
            from: format!("cgroup v2 {} {name}.pressure", group.path),
        }),
        Err(err) if auto => Ok(host(Some(format!("cgroup v2: {err}")))),
        Err(err) => Err(format!("scope cgroup: {err}")),
    }
}

/// The run-queue wait of the tasks of this process's v1 cpu cgroup.
#[cfg(target_os = "linux")]
fn run_queue_wait(
    placement: &super::cgroup::Placement,
    cgroups: &Cgroups,
) -> Result<Place, String> {
    let group = placement.group("cpu")?;
    Ok(Place {
        source: Source::Wait {
            tasks: group.file("tasks"),
            procfs: cgroups.roots().procfs,
        },
        from: format!(
            "{} {}: run-queue wait of its tasks (schedstat; cgroup v1 has no pressure files)",
            group.version.name(),
            group.path
        ),
    })
}

#[cfg(not(target_os = "linux"))]
pub fn place(_: Resource, _: Scope, _: &Cgroups) -> Result<Place, String> {
    Err("pressure stall information exists on Linux only".into())
}

/// A pressure file's counters now. Absent, or refused with EOPNOTSUPP (`psi=0`): the
/// kernel keeps no pressure figures.
#[cfg(target_os = "linux")]
pub fn read(path: &std::path::Path) -> Result<Counters, String> {
    let mut buffer = [0; 256];
    let shown = path.display();
    let text = path
        .to_str()
        .ok_or_else(|| format!("{shown}: not a UTF-8 path"))
        .and_then(|p| {
            super::proc_head(p, &mut buffer).map_err(|err| match err.raw_os_error() {
                Some(libc::ENOENT | libc::EOPNOTSUPP) => format!(
                    "{shown}: this kernel keeps no pressure stall information (built without \
                     CONFIG_PSI, or booted with psi=0)"
                ),
                _ => format!("{shown}: {}", crate::ioerr::io_reason(&err)),
            })
        })?;
    parse(text).ok_or_else(|| format!("{shown}: not a pressure file"))
}

#[cfg(not(target_os = "linux"))]
pub fn read(_: &std::path::Path) -> Result<Counters, String> {
    Err("pressure stall information exists on Linux only".into())
}

/// Memory pressure follows RAM's scope, CPU and I/O pressure CPU's.
fn scope_of(resource: Resource, window: &Window) -> Scope {
    match resource {
        Resource::Memory => window.scope.ram,
        Resource::Cpu | Resource::Io => window.scope.cpu,
    }
}

/// What a source showed at the window's start.
pub enum Mark {
    Counters(Counters),
    /// Each task's run-queue wait so far, in ns, by thread id.
    Waits(Vec<(u32, u64)>),
}

/// What `source` shows now.
pub fn mark(source: &Source) -> Result<Mark, String> {
    match source {
        Source::File(path) => read(path).map(Mark::Counters),
        Source::Wait { tasks, procfs } => waits(tasks, procfs).map(Mark::Waits),
    }
}

/// The counters from `start` to now: a pressure file's as read, the run-queue wait as the
/// µs its tasks waited since (a task that started within the window with all of its wait).
pub fn since(source: &Source, start: &Mark) -> Result<(Counters, Counters), String> {
    match (source, start) {
        (Source::File(path), Mark::Counters(start)) => Ok((*start, read(path)?)),
        (Source::Wait { tasks, procfs }, Mark::Waits(before)) => {
            let waited: u64 = waits(tasks, procfs)?
                .iter()
                .map(|(tid, now)| {
                    let then = before.iter().find(|(t, _)| t == tid).map_or(0, |(_, w)| *w);
                    now.saturating_sub(then)
                })
                .sum();
            let none = Counters {
                some: 0,
                full: None,
            };
            Ok((
                none,
                Counters {
                    some: waited / 1000,
                    full: None,
                },
            ))
        }
        _ => Err("the source changed within the window".into()),
    }
}

/// The run-queue wait so far of every task `tasks` lists; a task gone before its
/// `schedstat` is read has nothing to add.
#[cfg(target_os = "linux")]
fn waits(tasks: &std::path::Path, procfs: &std::path::Path) -> Result<Vec<(u32, u64)>, String> {
    use std::io::Read;
    let failed =
        |err: std::io::Error| format!("{}: {}", tasks.display(), crate::ioerr::io_reason(&err));
    let mut text = String::new();
    std::fs::File::open(tasks)
        .map_err(failed)?
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(failed)?;
    let mut found = Vec::new();
    for tid in text
        .lines()
        .filter_map(|line| line.trim().parse::<u32>().ok())
    {
        let mut buffer = [0; 96];
        let path = procfs.join(tid.to_string()).join("schedstat");
        let Some(path) = path.to_str() else { continue };
        let Ok(line) = super::proc_head(path, &mut buffer) else {
            continue;
        };
        if let Some(wait) = line
            .split_ascii_whitespace()
            .nth(1)
            .and_then(|w| w.parse().ok())
        {
            found.push((tid, wait));
        }
    }
    Ok(found)
}

#[cfg(not(target_os = "linux"))]
fn waits(_: &std::path::Path, _: &std::path::Path) -> Result<Vec<(u32, u64)>, String> {
    Err("pressure stall information exists on Linux only".into())
}

/// A resource's stalls over one sample: the counters at both ends and the time between, or
/// why they could not be read (the monitor's `on_error` decides what that means).
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub resource: Resource,
    pub figures: Result<(Counters, Counters, u64), String>,
    pub from: String,
}

/// How a resource's reading began.
pub enum Start {
    /// Read again when the window has passed.
    Window {
        place: Place,
        mark: Mark,
        at: Instant,
    },
    /// since-last: the counters the previous probe kept answered; no window needed.
    Kept {
        figures: (Counters, Counters, u64),
        from: String,
    },
}

/// What was found at the window's start, per resource.
pub struct Begun(Vec<(Resource, Result<Start, String>)>);

/// since-last: the record a probe keeps of a pressure file's counters, `pressure-cpu` for
/// `cpu`: `AT SOME FULL STAMP` (ms; µs; µs or u64::MAX for none; the source's stamp, so a
/// record of another cgroup is never compared).
fn record_name(resource: Resource) -> &'static str {
    match resource {
        Resource::Cpu => "pressure-cpu",
        Resource::Memory => "pressure-memory",
        Resource::Io => "pressure-io",
    }
}

fn keep(window: &Window, resource: Resource, place: &Place, at_ms: u64, counters: Counters) {
    let full = counters.full.unwrap_or(u64::MAX);
    let stamp = crate::hash::checksum(place.from.as_bytes());
    let line = format!("{at_ms:020} {:020} {full:020} {stamp:020}", counters.some);
    window.store.save_record(record_name(resource), &line);
}

/// since-last: the share since the counters the previous probe kept, when they are of this
/// source, not older than `since_last_max_seconds` and at least the since-last minimum ago
/// (closer, the window is measured as in sample mode); the counters now are kept for the next.
fn since_kept(window: &Window, resource: Resource, place: &Place, now: Counters) -> Option<Start> {
    let now_ms = crate::clock::now_ms();
    let line = window.store.record(record_name(resource));
    let numbers: Option<Vec<u64>> =
        line.and_then(|l| l.split(' ').map(|n| n.parse().ok()).collect());
    let stamp = crate::hash::checksum(place.from.as_bytes());
    let kept = match numbers.as_deref() {
        Some(&[at, some, full, kept_stamp]) if kept_stamp == stamp && at <= now_ms => {
            let full = (full != u64::MAX).then_some(full);
            Some((now_ms - at, Counters { some, full }))
        }
        _ => None,
    };
    let fresh =
        kept.filter(|(age, _)| (super::cpu::SINCE_LAST_MIN_MS..=window.max_age_ms).contains(age));
    let (age, then) = fresh?;
    keep(window, resource, place, now_ms, now);
    Some(Start::Kept {
        figures: (then, now, age * 1000),
        from: place.from.clone(),
    })
}

pub struct Pressure;

impl Monitor for Pressure {
    /// The resources watched, each once.
    type Needs = Vec<Resource>;
    type Begun = Begun;
    type Reading = Vec<Reading>;
    const LABELS: &'static [&'static str] = &["resource", "kind"];

    fn need(monitors: &Monitors, needs: &mut Vec<Resource>) {
        let enabled = monitors.pressure.iter().filter(|p| p.enabled());
        needs.extend(enabled.map(|p| p.resource));
    }

    fn settle(needs: &mut Vec<Resource>) {
        needs.sort_unstable();
        needs.dedup();
    }

    /// The counters at the start; the window is the CPU's (a window of its own without it).
    fn begin(needs: &Vec<Resource>, window: &Window) -> Result<Started<Begun>, MetricError> {
        if needs.is_empty() {
            return Ok(None);
        }
        let begun = needs
            .iter()
            .map(|&resource| {
                let start =
                    place(resource, scope_of(resource, window), window.cgroups).and_then(|place| {
                        let mark = mark(&place.source)?;
                        if let (CpuMode::SinceLast, Mark::Counters(now)) = (window.cpu_mode, &mark)
                            && let Some(kept) = since_kept(window, resource, &place, *now)
                        {
                            return Ok(kept);
                        }
                        let at = Instant::now();
                        Ok(Start::Window { place, mark, at })
                    });
                (resource, start)
            })
            .collect::<Vec<_>>();
        let waits = begun
            .iter()
            .any(|(_, start)| matches!(start, Ok(Start::Window { .. })));
        let deadline = waits.then(|| Instant::now() + window.length);
        Ok(Some((Begun(begun), deadline)))
    }

    fn end(_: &Vec<Resource>, begun: Begun, window: &Window) -> Result<Vec<Reading>, MetricError> {
        let readings = begun.0.into_iter().map(|(resource, start)| match start {
            Ok(Start::Window { place, mark, at }) => {
                let figures = since(&place.source, &mark).map(|(start_at, end)| {
                    if window.cpu_mode == CpuMode::SinceLast && matches!(mark, Mark::Counters(_)) {
                        keep(window, resource, &place, crate::clock::now_ms(), end);
                    }
                    (start_at, end, at.elapsed().as_micros() as u64)
                });
                Reading {
                    resource,
                    figures,
                    from: place.from,
                }
            }
            Ok(Start::Kept { figures, from }) => Reading {
                resource,
                figures: Ok(figures),
                from,
            },
            Err(why) => Reading {
                resource,
                figures: Err(why),
                from: String::new(),
            },
        });
        Ok(readings.collect())
    }

    fn warnings(needs: &Vec<Resource>, window: &Window) -> Vec<String> {
        let unreadable = needs.iter().filter_map(|&resource| {
            let place = place(resource, scope_of(resource, window), window.cgroups);
            let why = place
                .and_then(|place| mark(&place.source).map(drop))
                .err()?;
            Some(format!(
                "pressure ({}): {why}; its monitors answer error:pressure (or are left out \
                 with on_error ignore)",
                resource.name()
            ))
        });
        unreadable.collect()
    }

    fn answer(
        monitors: &Monitors,
        readings: &Vec<Reading>,
        hysteresis: f64,
        answered: &mut Answered,
    ) -> Result<(), MetricError> {
        for monitor in monitors.pressure.iter().filter(|p| p.enabled()) {
            let reading = readings.iter().find(|r| r.resource == monitor.resource);
            let name = monitor.name();
            let outcome = match reading {
                None => Err("not read in this sample".to_string()),
                Some(reading) => match &reading.figures {
                    Err(why) => Err(why.clone()),
                    Ok((start, end, elapsed)) => share(start, end, monitor.kind, *elapsed)
                        .map(|stalled| (stalled, reading, *elapsed))
                        .ok_or_else(|| match end.full {
                            None if monitor.kind == Stall::Full => {
                                "no `full` figure for this resource here".to_string()
                            }
                            _ => "the stall counters went back".to_string(),
                        }),
                },
            };
            let (stalled, reading, elapsed) = match outcome {
                Ok(found) => found,
                Err(why) => {
                    answered.failed(monitor.on_error, &name, why, |why| MetricError {
                        monitor: crate::words::PRESSURE.into(),
                        message: format!("{name}: {why}"),
                    })?;
                    continue;
                }
            };
            let text = || {
                format!(
                    "stalled ({}) {stalled:.1}% of {} ms",
                    monitor.kind.name(),
                    elapsed / 1000
                )
            };
            answered.push(
                load(
                    &name,
                    stalled,
                    monitor.importance.get(),
                    limits(monitor.threshold, monitor.release, hysteresis),
                ),
                || Figure::new(text(), Some(reading.from.clone())),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnError;

    const FILE: &str = "some avg10=72.57 avg60=74.67 avg300=47.04 total=2122602632\n\
                        full avg10=0.00 avg60=0.00 avg300=0.00 total=17\n";

    #[test]
    fn the_totals_of_both_lines_are_read() {
        let counters = parse(FILE).unwrap();
        assert_eq!(counters.some, 2_122_602_632);
        assert_eq!(counters.full, Some(17));
        let some_only = parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n").unwrap();
        assert_eq!(some_only.full, None);
        assert_eq!(parse("full avg10=0.00 total=5\n"), None);
        assert_eq!(parse("some avg10=0.00 total=x\n"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn the_share_is_the_stalled_time_over_the_window() {
        let start = Counters {
            some: 1_000,
            full: Some(0),
        };
        let end = Counters {
            some: 751_000,
            full: Some(250_000),
        };
        assert_eq!(share(&start, &end, Stall::Some, 1_000_000), Some(75.0));
        assert_eq!(share(&start, &end, Stall::Full, 1_000_000), Some(25.0));
        // Clamped: a window measured a little short of the kernel's.
        assert_eq!(share(&start, &end, Stall::Some, 500_000), Some(100.0));
        assert_eq!(share(&end, &start, Stall::Some, 1_000_000), None);
        let no_full = Counters {
            some: 2_000,
            full: None,
        };
        assert_eq!(share(&no_full, &no_full, Stall::Full, 1_000_000), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_from_a_fixture_tree_and_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("lbf-psi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cpu.pressure");
        std::fs::write(&path, FILE).unwrap();
        assert_eq!(read(&path).unwrap().some, 2_122_602_632);
        let missing = read(&dir.join("io.pressure")).unwrap_err();
        assert!(
            missing.contains("keeps no pressure stall information"),
            "{missing}"
        );
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(read(&path).unwrap_err().ends_with("not a pressure file"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_host_scope_reads_proc_pressure_under_the_procfs_root() {
        let place = place(Resource::Memory, Scope::Host, &Cgroups::default()).unwrap();
        assert_eq!(place.source, Source::File("/proc/pressure/memory".into()));
        assert_eq!(place.from, "host /proc/pressure/memory");
    }

    #[test]
    fn a_kernel_without_psi_is_error_pressure_unless_ignored() {
        let mut config = crate::config::Config::default();
        let json = r#"{"pressure": [{"resource": "memory", "threshold": 50}]}"#;
        config
            .apply_json(json, std::path::Path::new("t.json"))
            .unwrap();
        let gone = vec![Reading {
            resource: Resource::Memory,
            figures: Err("no PSI here".into()),
            from: String::new(),
        }];
        let mut answered = Answered::new(true);
        let err = Pressure::answer(&config.monitors(None), &gone, 10.0, &mut answered).unwrap_err();
        assert_eq!(err.monitor, "pressure");
        assert_eq!(err.message, "pressure:memory:some: no PSI here");
        config.pressure[0].on_error = OnError::Ignore;
        Pressure::answer(&config.monitors(None), &gone, 10.0, &mut answered).unwrap();
        assert!(answered.loads.is_empty());
        assert_eq!(
            answered.ignored,
            [("pressure:memory:some".into(), "no PSI here".into())]
        );
        let start = Counters {
            some: 0,
            full: Some(0),
        };
        let end = Counters {
            some: 600_000,
            full: Some(0),
        };
        let read = vec![Reading {
            resource: Resource::Memory,
            figures: Ok((start, end, 1_000_000)),
            from: "host /proc/pressure/memory".into(),
        }];
        Pressure::answer(&config.monitors(None), &read, 10.0, &mut answered).unwrap();
        let (load, figure) = &answered.loads[0];
        assert_eq!(
            (load.name.as_str(), load.raw, load.threshold),
            ("pressure:memory:some", 60.0, 50.0)
        );
        assert!(load.tripped());
        let figure = figure.as_ref().unwrap();
        assert_eq!(figure.text, "stalled (some) 60.0% of 1000 ms");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn check_config_warns_of_a_kernel_without_psi() {
        struct NoStore;
        impl crate::metrics::monitor::Store for NoStore {
            fn record(&self, _: &str) -> Option<String> {
                None
            }
            fn save_record(&self, _: &str, _: &str) {}
        }
        let empty = std::env::temp_dir().join(format!("lbf-no-psi-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let cgroups = Cgroups::at(crate::metrics::cgroup::Roots {
            procfs: empty.clone(),
            root: empty.clone(),
        });
        let window = Window {
            length: std::time::Duration::from_millis(100),
            cpu_mode: crate::config::CpuMode::Sample,
            scope: crate::config::Scopes {
                cpu: Scope::Host,
                ram: Scope::Host,
            },
            max_age_ms: 0,
            cgroups: &cgroups,
            store: &NoStore,
        };
        let warnings = Pressure::warnings(&vec![Resource::Io], &window);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("pressure (io): "),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[0].contains("keeps no pressure stall information"),
            "{}",
            warnings[0]
        );
        let _ = std::fs::remove_dir_all(&empty);
    }
}
