//! Pressure stall information (PSI, Linux 4.20+): how much of the time tasks waited for CPU,
//! memory or IO, read as the cumulative `total=` stall times of `/proc/pressure/*` (the host)
//! or of a cgroup2 cgroup's `*.pressure` files, and turned into the stalled share of a window.
//! The kernel's `avg10` lags a change by tens of seconds; the share of the window from
//! `total` deltas does not.

use std::path::{Path, PathBuf};

use super::cgroup::{Roots, read_small_with, under};

/// What the tasks waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
    Io,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Io => "io",
        }
    }
}

/// `some`: at least one task stalled; `full`: all non-idle tasks at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Some,
    Full,
}

/// The cumulative stall times of one resource, in microseconds. `full` is absent from the
/// cpu file before Linux 5.13.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    pub some: u64,
    pub full: Option<u64>,
}

impl Counters {
    pub fn total(&self, kind: Kind) -> Option<u64> {
        match kind {
            Kind::Some => Some(self.some),
            Kind::Full => self.full,
        }
    }

    /// The share of `elapsed_us` the tasks stalled between `earlier` and `self`, in percent;
    /// `None` when no time passed, a counter went back (another cgroup, or it was
    /// recreated) or `kind` is not counted.
    pub fn stalled_percent_since(
        &self,
        earlier: &Counters,
        kind: Kind,
        elapsed_us: u64,
    ) -> Option<f64> {
        let stalled = self.total(kind)?.checked_sub(earlier.total(kind)?)?;
        if elapsed_us == 0 {
            return None;
        }
        // The kernel's clock and the caller's are read a moment apart: clamp the overlap.
        Some((stalled as f64 / elapsed_us as f64 * 100.0).clamp(0.0, 100.0))
    }
}

/// The `some` and `full` totals of a pressure file's text:
/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and a `full` line of the same shape.
pub fn parse(text: &str) -> Option<Counters> {
    let (mut some, mut full) = (None, None);
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let slot = match fields.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => return None,
        };
        let averages = ["avg10=", "avg60=", "avg300="];
        for prefix in averages {
            let average = fields.next()?.strip_prefix(prefix)?;
            average.parse::<f64>().ok()?;
        }
        *slot = Some(fields.next()?.strip_prefix("total=")?.parse().ok()?);
    }
    Some(Counters { some: some?, full })
}

/// Why pressure figures could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PressureError {
    /// The kernel keeps none here: built without PSI, booted with `psi=0`, a cgroup with
    /// `cgroup.pressure` 0, or not a cgroup2 cgroup (the file is absent, or refuses to be
    /// read with EOPNOTSUPP).
    Unsupported(String),
    /// The file is there but could not be read, or is not pressure stall information.
    Failed(String),
}

impl std::fmt::Display for PressureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PressureError::Unsupported(why) | PressureError::Failed(why) => f.write_str(why),
        }
    }
}

/// Reads the pressure file at `path`.
pub fn read(path: &Path) -> Result<Counters, PressureError> {
    read_small_with(
        path,
        |text| {
            parse(text).ok_or_else(|| {
                PressureError::Failed(format!(
                    "{}: not pressure stall information: {:?}",
                    path.display(),
                    text.lines().next().unwrap_or("")
                ))
            })
        },
        |err| {
            let why = format!("{}: {}", path.display(), crate::ioerr::io_reason(&err));
            Err(match err.kind() {
                std::io::ErrorKind::NotFound => PressureError::Unsupported(format!(
                    "{why} (no pressure stall information: a kernel without PSI or booted with psi=0)"
                )),
                _ if err.raw_os_error() == Some(libc::EOPNOTSUPP) => PressureError::Unsupported(
                    format!("{why} (pressure stall information is turned off)"),
                ),
                _ => PressureError::Failed(why),
            })
        },
    )
}

/// Where the figures are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `/proc/pressure/<resource>`, under the procfs of the roots.
    Host,
    /// A cgroup2 cgroup: its path as `/proc/self/cgroup` names it and its directory.
    Cgroup { path: String, dir: PathBuf },
}

impl Place {
    /// This process's cgroup2 cgroup. v1 hierarchies have no pressure files: the kernel
    /// counts a task's stalls in its cgroup of the v2 hierarchy (`0::` in
    /// `/proc/self/cgroup`), on a hybrid system too, whatever v1 cgroups it is in.
    pub fn cgroup(placement: &super::cgroup::Placement) -> Result<Place, String> {
        let (path, dir) = super::cgroup::unified(placement)?;
        Ok(Place::Cgroup { path, dir })
    }

    pub fn file(&self, roots: &Roots, resource: Resource) -> PathBuf {
        match self {
            Place::Host => under(&roots.procfs, &["pressure", resource.name()]),
            Place::Cgroup { dir, .. } => {
                let name = match resource {
                    Resource::Cpu => "cpu.pressure",
                    Resource::Memory => "memory.pressure",
                    Resource::Io => "io.pressure",
                };
                under(dir, &[name])
            }
        }
    }

    pub fn read(&self, roots: &Roots, resource: Resource) -> Result<Counters, PressureError> {
        read(&self.file(roots, resource))
    }

    /// Where the figure came from, for `--explain`: "host /proc/pressure/cpu",
    /// "cgroup v2 /system.slice/x.service cpu.pressure".
    pub fn describe(&self, resource: Resource) -> String {
        match self {
            Place::Host => format!("host /proc/pressure/{}", resource.name()),
            Place::Cgroup { path, .. } => {
                format!("cgroup v2 {path} {}.pressure", resource.name())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: &str = "some avg10=4.96 avg60=1.92 avg300=0.85 total=1903133509\n\
                       full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";

    #[test]
    fn parses_some_and_full_totals() {
        assert_eq!(
            parse(CPU),
            Some(Counters {
                some: 1_903_133_509,
                full: Some(0)
            })
        );
        // Linux before 5.13 writes no full line for cpu.
        let old = "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n";
        assert_eq!(
            parse(old),
            Some(Counters {
                some: 42,
                full: None
            })
        );
    }

    #[test]
    fn rejects_what_is_not_pressure() {
        for text in [
            "",
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=3\n",
            "some avg10=0.00 avg60=0.00 total=3\n",
            "some avg10=x avg60=0.00 avg300=0.00 total=3\n",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=-3\n",
            "some avg10=0.00 avg60=0.00 avg300=0.00\n",
            "cpu  1 2 3 4\n",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn stalled_share_of_the_window() {
        let start = Counters {
            some: 1_000_000,
            full: Some(10),
        };
        let end = Counters {
            some: 1_730_000,
            full: Some(260_010),
        };
        assert_eq!(
            end.stalled_percent_since(&start, Kind::Some, 1_000_000),
            Some(73.0)
        );
        assert_eq!(
            end.stalled_percent_since(&start, Kind::Full, 1_000_000),
            Some(26.0)
        );
        // A stall a little longer than the caller's window is all of it.
        assert_eq!(
            end.stalled_percent_since(&start, Kind::Some, 700_000),
            Some(100.0)
        );
        assert_eq!(end.stalled_percent_since(&start, Kind::Some, 0), None);
        assert_eq!(
            start.stalled_percent_since(&end, Kind::Some, 1_000_000),
            None
        );
        let no_full = Counters { full: None, ..end };
        assert_eq!(
            no_full.stalled_percent_since(&start, Kind::Full, 1_000_000),
            None
        );
    }

    /// A fixture tree, removed when dropped.
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str, files: &[(&str, &str)]) -> Tree {
            let dir =
                std::env::temp_dir().join(format!("lbf-pressure-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            for (path, text) in files {
                let path = dir.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            Tree(dir)
        }

        fn roots(&self) -> Roots {
            Roots {
                procfs: self.0.join("proc"),
                root: self.0.join("root"),
            }
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reads_the_host_and_a_cgroup_under_the_roots() {
        let io = "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n\
                  full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n";
        // A hybrid host: v1 hierarchies and a cgroup2 at /sys/fs/cgroup/unified with no
        // controllers, where the process is in /lbf.
        let tree = Tree::new(
            "read",
            &[
                ("proc/pressure/cpu", CPU),
                ("proc/pressure/io", io),
                ("proc/self/cgroup", "4:memory:/x\n1:cpu:/\n0::/lbf\n"),
                (
                    "proc/self/mountinfo",
                    "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                     41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
                ),
                ("root/sys/fs/cgroup/unified/cgroup.controllers", ""),
                ("root/sys/fs/cgroup/unified/lbf/cpu.pressure", CPU),
                (
                    "root/sys/fs/cgroup/unified/lbf/memory.pressure",
                    "some avg10=1.00 avg60=0.00 avg300=0.00 total=99\n\
                     full avg10=0.00 avg60=0.00 avg300=0.00 total=9\n",
                ),
                ("root/sys/fs/cgroup/unified/lbf/io.pressure", "garbage\n"),
            ],
        );
        let roots = tree.roots();
        let host = Place::Host;
        assert_eq!(host.read(&roots, Resource::Io).unwrap().full, Some(5));
        assert_eq!(host.describe(Resource::Io), "host /proc/pressure/io");
        let placement = super::super::cgroup::locate(&roots).unwrap();
        let cgroup = Place::cgroup(&placement).unwrap();
        assert_eq!(
            cgroup.read(&roots, Resource::Memory).unwrap(),
            Counters {
                some: 99,
                full: Some(9)
            }
        );
        assert_eq!(
            cgroup.read(&roots, Resource::Cpu).unwrap().some,
            1_903_133_509
        );
        assert_eq!(
            cgroup.describe(Resource::Memory),
            "cgroup v2 /lbf memory.pressure"
        );
        let err = cgroup.read(&roots, Resource::Io).unwrap_err();
        assert!(
            matches!(&err, PressureError::Failed(why)
                if why.ends_with("io.pressure: not pressure stall information: \"garbage\"")),
            "{err}"
        );
        // No /proc/pressure/memory: a kernel without PSI.
        let err = host.read(&roots, Resource::Memory).unwrap_err();
        assert!(
            matches!(&err, PressureError::Unsupported(why)
                if why.contains("pressure/memory: No such file") && why.contains("psi=0")),
            "{err}"
        );
        // A directory where the file should be: another failure, not "no PSI".
        std::fs::create_dir_all(tree.0.join("proc/pressure/memory")).unwrap();
        let err = host.read(&roots, Resource::Memory).unwrap_err();
        assert!(matches!(err, PressureError::Failed(_)), "{err}");
    }

    #[test]
    fn the_live_host_is_readable_when_it_has_psi() {
        let read = || Place::Host.read(&Roots::system(), Resource::Cpu);
        match read() {
            Ok(first) => assert!(read().unwrap().some >= first.some),
            Err(err) => assert!(matches!(err, PressureError::Unsupported(_)), "{err}"),
        }
    }
}
