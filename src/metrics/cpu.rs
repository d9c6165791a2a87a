//! CPU load: the busy share of all cores between two readings of the kernel's cumulative
//! counters (Linux `/proc/stat`, Windows `GetSystemTimes`; sysinfo on other systems), or, in
//! a cgroup that holds the process in, the cgroup's CPU time over its capacity ([`Source`]).

use super::{Cgroups, MetricError};
use crate::config::Scope;

mod monitor;

pub use monitor::{Begun, Cpu, CpuFigure, CpuRecord, How, SINCE_LAST_MIN_MS};

/// Cumulative CPU time of all cores, in the OS's own ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    pub busy: u64,
    pub total: u64,
}

impl Counters {
    /// The busy share in percent between `earlier` and `self`; `None` when no time passed.
    pub fn busy_percent_since(&self, earlier: &Counters) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        if total == 0 {
            return None;
        }
        Some((busy as f64 / total as f64 * 100.0).clamp(0.0, 100.0))
    }
}

fn error(message: impl Into<String>) -> MetricError {
    MetricError {
        monitor: crate::words::CPU.into(),
        message: message.into(),
    }
}

/// Parses the aggregate `cpu` line of `/proc/stat`: idle and iowait are idle, the rest busy
/// (guest time is already inside user time, so it is not added again).
pub fn parse_proc_stat(text: &str) -> Option<Counters> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    // On the stack: a Vec cost an allocation per read, two per probe.
    let mut fields = [0u64; 8];
    let mut count = 0;
    for (slot, field) in fields.iter_mut().zip(line.split_ascii_whitespace().skip(1)) {
        *slot = field.parse().ok()?;
        count += 1;
    }
    if count < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields[4];
    Some(Counters {
        busy: total - idle,
        total,
    })
}

#[cfg(target_os = "linux")]
pub fn read() -> Result<Counters, MetricError> {
    // The aggregate line comes first, at most 215 bytes (ten counters of up to 20 digits);
    // the rest (a line per CPU and the interrupt counts, tens of KiB on a big host) is not
    // needed, and a 1 KiB read cost 2.5 k instructions more to copy, check and cut.
    let mut buffer = [0; 256];
    let text = super::proc_head("/proc/stat", &mut buffer)
        .map_err(|err| error(format!("/proc/stat: {}", crate::ioerr::io_reason(&err))))?;
    parse_proc_stat(text).ok_or_else(|| error("/proc/stat: no aggregate cpu line"))
}

#[cfg(windows)]
pub fn read() -> Result<Counters, MetricError> {
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::Threading::GetSystemTimes;
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut idle, mut kernel, mut user) = (zero, zero, zero);
    // SAFETY: the three pointers are to live, writable FILETIMEs.
    let ok = unsafe { GetSystemTimes(&mut idle, &mut kernel, &mut user) };
    if ok == 0 {
        return Err(error(format!(
            "GetSystemTimes failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    let ticks = |t: FILETIME| (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
    // Kernel time includes idle time.
    let total = ticks(kernel) + ticks(user);
    Ok(Counters {
        busy: total.saturating_sub(ticks(idle)),
        total,
    })
}

/// The host's counters, in `--explain`'s words.
const LINUX_HOST: &str = "host /proc/stat";

/// Where the counters come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The host's, as `scope: host` asks (or where there are no cgroups).
    Host,
    /// The host's, though the scope looked at the cgroup's: its capacity, which does not hold
    /// the process in, or why it could not be read. Kept for the words, written only if read.
    #[cfg(target_os = "linux")]
    HostInstead(Result<super::cgroup::CpuCapacity, String>),
    /// The cgroup's CPU time (µs) as busy, and the monotonic clock (µs) times its capacity
    /// in CPUs as total: `Δbusy / Δtotal` is then its share of what it may use.
    #[cfg(target_os = "linux")]
    Cgroup(super::cgroup::CpuCapacity),
}

impl Source {
    /// The source `scope` asks for. Auto takes the cgroup's when it holds the process in,
    /// and the host's when it does not or cannot be read; cgroup insists.
    #[cfg(target_os = "linux")]
    pub fn choose(scope: Scope, cgroups: &Cgroups) -> Result<Source, MetricError> {
        if scope == Scope::Host {
            return Ok(Source::Host);
        }
        let capacity = cgroups.placement().and_then(|placement| {
            let capacity = cgroups.cpu()?.clone();
            match scope == Scope::Auto && !capacity.limited {
                true => Ok(capacity),
                false => capacity.with_usage(placement),
            }
        });
        match (scope, capacity) {
            (Scope::Auto, Ok(capacity)) if !capacity.limited => {
                Ok(Source::HostInstead(Ok(capacity)))
            }
            (Scope::Auto, Err(err)) => Ok(Source::HostInstead(Err(err))),
            (_, Ok(capacity)) => Ok(Source::Cgroup(capacity)),
            (_, Err(err)) => Err(error(format!("scope cgroup: {err}"))),
        }
    }

    /// Elsewhere there is no cgroup: the host's, or an error when the cgroup's is insisted on.
    #[cfg(not(target_os = "linux"))]
    pub fn choose(scope: Scope, _cgroups: &Cgroups) -> Result<Source, MetricError> {
        match scope {
            Scope::Cgroup => Err(error("scope cgroup: cgroups exist on Linux only")),
            _ => Ok(Source::Host),
        }
    }

    pub fn read(&self) -> Result<Counters, MetricError> {
        match self {
            Source::Host => read(),
            #[cfg(target_os = "linux")]
            Source::HostInstead(_) => read(),
            #[cfg(target_os = "linux")]
            Source::Cgroup(capacity) => {
                let busy = capacity.usage_us().map_err(error)?;
                let total = monotonic_us().saturating_mul(capacity.millis) / 1000;
                Ok(Counters { busy, total })
            }
        }
    }

    /// 0 for the host's counters, else the cgroup's stamp.
    pub fn id(&self) -> u64 {
        match self {
            Source::Host => 0,
            #[cfg(target_os = "linux")]
            Source::HostInstead(_) => 0,
            #[cfg(target_os = "linux")]
            Source::Cgroup(capacity) => capacity.id(),
        }
    }
}

impl std::fmt::Display for Source {
    /// Where the figure came from, for `--explain`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Host => f.write_str(match cfg!(target_os = "linux") {
                true => LINUX_HOST,
                false => "host",
            }),
            #[cfg(target_os = "linux")]
            Source::HostInstead(Ok(capacity)) => {
                write!(f, "{LINUX_HOST} ({})", capacity.described())
            }
            #[cfg(target_os = "linux")]
            Source::HostInstead(Err(err)) => write!(f, "{LINUX_HOST} (cgroup: {err})"),
            #[cfg(target_os = "linux")]
            Source::Cgroup(capacity) => capacity.described().fmt(f),
        }
    }
}

/// CLOCK_MONOTONIC in microseconds: one clock for every process on the host, so since-last
/// probes (separate processes) can subtract each other's readings.
#[cfg(target_os = "linux")]
fn monotonic_us() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a live, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64).saturating_mul(1_000_000) + now.tv_nsec as u64 / 1000
}

/// A CPU sample in progress: started before the window, finished after it.
#[cfg(any(target_os = "linux", windows))]
pub struct Sampler {
    start: Counters,
}

#[cfg(any(target_os = "linux", windows))]
impl Sampler {
    pub fn start(source: &Source) -> Result<Sampler, MetricError> {
        Ok(Sampler {
            start: source.read()?,
        })
    }

    /// The busy share since `start`, in percent.
    pub fn finish(self, source: &Source) -> Result<f64, MetricError> {
        busy_between(&self.start, &source.read()?)
    }
}

/// The busy share from `start` to `end`, in percent; an error when no time passed.
pub fn busy_between(start: &Counters, end: &Counters) -> Result<f64, MetricError> {
    end.busy_percent_since(start)
        .ok_or_else(|| error("the CPU counters did not advance during the sample"))
}

/// Elsewhere there are no cumulative counters to keep between probes.
#[cfg(not(any(target_os = "linux", windows)))]
pub fn read() -> Result<Counters, MetricError> {
    Err(error("reading CPU counters is not supported on this OS"))
}

/// Elsewhere sysinfo keeps the counters between its two refreshes.
#[cfg(not(any(target_os = "linux", windows)))]
pub struct Sampler {
    system: sysinfo::System,
}

#[cfg(not(any(target_os = "linux", windows)))]
impl Sampler {
    pub fn start(_source: &Source) -> Result<Sampler, MetricError> {
        let mut system = sysinfo::System::new().map_err(|err| error(err.to_string()))?;
        system.refresh_cpu_usage();
        if system.cpus().is_empty() {
            return Err(error("the OS reported no CPUs"));
        }
        Ok(Sampler { system })
    }

    pub fn finish(mut self, _source: &Source) -> Result<f64, MetricError> {
        self.system.refresh_cpu_usage();
        Ok(f64::from(self.system.global_cpu_usage()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_aggregate_line() {
        let text = "cpu  100 5 50 800 20 3 2 1 7 0\ncpu0 50 2 25 400 10 1 1 0 3 0\nintr 1\n";
        let c = parse_proc_stat(text).unwrap();
        assert_eq!(c.total, 100 + 5 + 50 + 800 + 20 + 3 + 2 + 1);
        assert_eq!(c.busy, c.total - 820);
    }

    #[test]
    fn proc_stat_rejects_garbage() {
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 x 3 4\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 2\n"), None);
    }

    #[test]
    fn busy_share_between_readings() {
        let a = Counters {
            busy: 100,
            total: 1000,
        };
        let b = Counters {
            busy: 150,
            total: 1200,
        };
        assert_eq!(b.busy_percent_since(&a), Some(25.0));
        assert_eq!(a.busy_percent_since(&a), None);
        assert_eq!(a.busy_percent_since(&b), None);
    }

    #[cfg(any(target_os = "linux", windows))]
    #[test]
    fn live_counters_move_forward() {
        let a = read().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let b = read().unwrap();
        assert!(b.total >= a.total && b.busy >= a.busy);
    }
}
