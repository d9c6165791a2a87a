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

use super::monitor::{Answered, Monitor, Started, Window, limits, load};
use super::{Cgroups, MetricError};
use crate::config::{Monitors, OnError, Resource, Scope, Stall};

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

/// One resource's pressure file and where it is, in words.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub path: PathBuf,
    pub from: String,
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
        Place { path, from }
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
        let cpu = || super::cgroup::cpu(placement, &cgroups.roots()).map(|c| c.limited);
        let memory = || super::cgroup::memory(placement).map(|m| m.limit.is_some());
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
        // whose pressure is the host's.
        Ok((group, _)) if auto && group.path == "/" => Ok(host(Some(
            "its limit is a cgroup v1 one, and cgroup v1 has no pressure files".into(),
        ))),
        Ok((group, _)) => Ok(Place {
            path: group.file(&format!("{name}.pressure")),
            from: format!("cgroup v2 {} {name}.pressure", group.path),
        }),
        Err(err) if auto => Ok(host(Some(format!("cgroup v2: {err}")))),
        Err(err) => Err(format!("scope cgroup: {err}")),
    }
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

/// A resource's stalls over one sample: the counters at both ends and the time between, or
/// why they could not be read (the monitor's `on_error` decides what that means).
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub resource: Resource,
    pub figures: Result<(Counters, Counters, u64), String>,
    pub from: String,
}

/// A resource's file and counters at the window's start.
pub struct Start {
    place: Place,
    counters: Counters,
    at: Instant,
}

/// What was found at the window's start, per resource.
pub struct Begun(Vec<(Resource, Result<Start, String>)>);

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
                        let counters = read(&place.path)?;
                        let at = Instant::now();
                        Ok(Start {
                            place,
                            counters,
                            at,
                        })
                    });
                (resource, start)
            })
            .collect();
        Ok(Some((Begun(begun), Some(Instant::now() + window.length))))
    }

    fn end(_: &Vec<Resource>, begun: Begun, _: &Window) -> Result<Vec<Reading>, MetricError> {
        let readings = begun.0.into_iter().map(|(resource, start)| match start {
            Ok(start) => Reading {
                resource,
                figures: read(&start.place.path).map(|end| {
                    let elapsed = start.at.elapsed().as_micros() as u64;
                    (start.counters, end, elapsed)
                }),
                from: start.place.from,
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
            let why = place.and_then(|place| read(&place.path)).err()?;
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
                                "the kernel writes no `full` line for this resource".to_string()
                            }
                            _ => "the stall counters went back".to_string(),
                        }),
                },
            };
            let (stalled, reading, elapsed) = match outcome {
                Ok(found) => found,
                Err(why) => {
                    match monitor.on_error {
                        OnError::Ignore => answered.ignored.push((name, why)),
                        OnError::Error => {
                            return Err(MetricError {
                                monitor: crate::words::PRESSURE.into(),
                                message: format!("{name}: {why}"),
                            });
                        }
                    }
                    continue;
                }
            };
            answered.loads.push(load(
                &name,
                stalled,
                monitor.importance.get(),
                limits(monitor.threshold, monitor.release, hysteresis),
                format!(
                    "stalled ({}) {stalled:.1}% of {} ms",
                    monitor.kind.name(),
                    elapsed / 1000
                ),
                Some(reading.from.clone()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(place.path, PathBuf::from("/proc/pressure/memory"));
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
        let mut answered = Answered::default();
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
        assert_eq!(figure.text, "stalled (some) 60.0% of 1000 ms");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn check_config_warns_of_a_kernel_without_psi() {
        struct NoStore;
        impl crate::metrics::monitor::Store for NoStore {
            fn cpu_counters(&self) -> Option<crate::metrics::cpu::CpuRecord> {
                None
            }
            fn save_cpu_counters(&self, _: &crate::metrics::cpu::CpuRecord) {}
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
