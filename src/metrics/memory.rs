//! RAM load: (total − available) ÷ total, in percent. Linux reads `MemTotal` and
//! `MemAvailable` from `/proc/meminfo` itself: sysinfo's `System::new` also reads the boot
//! time by reading all of `/proc/stat` (11 k instructions), and its RAM refresh reads and
//! parses every line of `/proc/meminfo` (52 k); the lines needed here cost about 5 k, in a
//! probe of about 100 k (docs/BENCHMARKS.md). Other systems use sysinfo's RAM refresh.
//! In a cgroup with a memory limit, [`read_scoped`] gives the cgroup's use over its limit.

use super::{Cgroups, MetricError};
use crate::config::Scope;

mod monitor;

pub use monitor::{Ram, RamFigure};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
}

impl Memory {
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }

    pub fn load(&self) -> f64 {
        self.used() as f64 / self.total as f64 * 100.0
    }
}

fn error(message: impl Into<String>) -> MetricError {
    MetricError {
        monitor: crate::words::RAM.into(),
        message: message.into(),
    }
}

/// Total and available RAM from the text of `/proc/meminfo` (kB there, bytes here).
/// Kernels before 3.14 have no `MemAvailable`; for them it is estimated the way sysinfo and
/// procps did: MemFree + Buffers + Cached + SReclaimable − Shmem.
#[cfg(target_os = "linux")]
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let (mut total, mut available) = (None, None);
    let mut estimate = [0u64; 5];
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(kib) = rest
            .split_ascii_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = kib.saturating_mul(1024);
        match key {
            "MemTotal" => total = Some(bytes),
            "MemAvailable" => available = Some(bytes),
            "MemFree" => estimate[0] = bytes,
            "Buffers" => estimate[1] = bytes,
            "Cached" => estimate[2] = bytes,
            "SReclaimable" => estimate[3] = bytes,
            "Shmem" => estimate[4] = bytes,
            _ => {}
        }
        // MemTotal and MemAvailable are the first and third lines: stop there.
        if total.is_some() && available.is_some() {
            break;
        }
    }
    let [free, buffers, cached, reclaimable, shmem] = estimate;
    let available = available.unwrap_or_else(|| {
        free.saturating_add(buffers)
            .saturating_add(cached)
            .saturating_add(reclaimable)
            .saturating_sub(shmem)
    });
    Some(Memory {
        total: total?,
        available,
    })
}

#[cfg(target_os = "linux")]
pub fn read() -> Result<Memory, MetricError> {
    // The whole file is about 1.5 KiB; every line used is in its first 1 KiB. Below 2 KiB
    // glibc clears the buffer with vector stores: 4 KiB took `rep stosb`, which valgrind
    // counts byte by byte (4 k instructions a probe).
    let mut buffer = [0; 2000];
    let text = super::proc_head("/proc/meminfo", &mut buffer)
        .map_err(|err| error(format!("/proc/meminfo: {}", crate::ioerr::io_reason(&err))))?;
    checked(parse_meminfo(text).ok_or_else(|| error("/proc/meminfo: no MemTotal line"))?)
}

#[cfg(not(target_os = "linux"))]
pub fn read() -> Result<Memory, MetricError> {
    use sysinfo::{MemoryRefreshKind, System};
    let mut system = System::new().map_err(|err| error(err.to_string()))?;
    system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
    checked(Memory {
        total: system.total_memory(),
        available: system.available_memory(),
    })
}

/// Whose memory the figure is: kept for the words, which are written only when read.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The host's, as `scope: host` asks (or where there are no cgroups).
    Host,
    /// The host's, though the scope looked at the cgroup's: its limit, which is none below
    /// the host's memory, or why it could not be read.
    #[cfg(target_os = "linux")]
    HostInstead(Result<super::cgroup::MemoryLimit, String>),
    /// The cgroup's use over its limit.
    #[cfg(target_os = "linux")]
    Cgroup(super::cgroup::MemoryLimit),
}

/// The host's figures, in `--explain`'s words.
const LINUX_HOST: &str = "host /proc/meminfo";

impl std::fmt::Display for Source {
    /// Where the figure came from, for `--explain`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Host => f.write_str(match cfg!(target_os = "linux") {
                true => LINUX_HOST,
                false => "host",
            }),
            #[cfg(target_os = "linux")]
            Source::HostInstead(Ok(limit)) => write!(f, "{LINUX_HOST} ({limit})"),
            #[cfg(target_os = "linux")]
            Source::HostInstead(Err(err)) => write!(f, "{LINUX_HOST} (cgroup: {err})"),
            #[cfg(target_os = "linux")]
            Source::Cgroup(limit) => limit.fmt(f),
        }
    }
}

/// The RAM figure `scope` asks for, and where it came from. The total is the cgroup's limit
/// when it has one below the host's memory; a cgroup without one (scope cgroup) is measured
/// against the host's memory. Auto falls back to the host's figures when the cgroup has no
/// limit or cannot be read, and says so. Under a limit only the host's `MemTotal` is read,
/// the first line of `/proc/meminfo` (a limit at or above it reads the rest after all).
#[cfg(target_os = "linux")]
pub fn read_scoped(scope: Scope, cgroups: &Cgroups) -> Result<(Memory, Source), MetricError> {
    if scope == Scope::Host {
        return Ok((read()?, Source::Host));
    }
    let used = match (scope, cgroups.memory()) {
        (_, Ok(used)) => used,
        (Scope::Auto, Err(err)) => return Ok((read()?, Source::HostInstead(Err(err)))),
        (_, Err(err)) => return Err(error(format!("scope cgroup: {err}"))),
    };
    let (total, host) = match used.limit {
        Some(limit) => {
            let host = read_total()?;
            match limit < host {
                true => (limit, host),
                false => return host_against(scope, used, read()?),
            }
        }
        None => return host_against(scope, used, read()?),
    };
    // The use is read only now, when the cgroup's figure is the answer.
    let in_use = match (scope, used.used()) {
        (_, Ok(in_use)) => in_use,
        (Scope::Auto, Err(err)) => return Ok((read()?, Source::HostInstead(Err(err)))),
        (_, Err(err)) => return Err(error(format!("scope cgroup: {err}"))),
    };
    cgroup_figure(used, in_use, total, host)
}

/// The cgroup's figure: `in_use` of `total`, described against the host's memory `host`.
#[cfg(target_os = "linux")]
fn cgroup_figure(
    used: &super::cgroup::MemoryUse,
    in_use: u64,
    total: u64,
    host: u64,
) -> Result<(Memory, Source), MetricError> {
    let memory = Memory {
        total,
        available: total.saturating_sub(in_use),
    };
    Ok((checked(memory)?, Source::Cgroup(used.described(host))))
}

/// A cgroup without a limit below the host's memory `host`: auto takes the host's figures,
/// scope cgroup the cgroup's use against the host's memory.
#[cfg(target_os = "linux")]
fn host_against(
    scope: Scope,
    used: &super::cgroup::MemoryUse,
    host: Memory,
) -> Result<(Memory, Source), MetricError> {
    if scope == Scope::Auto {
        return Ok((host, Source::HostInstead(Ok(used.described(host.total)))));
    }
    let in_use = used
        .used()
        .map_err(|err| error(format!("scope cgroup: {err}")))?;
    cgroup_figure(used, in_use, host.total, host.total)
}

/// The host's `MemTotal` alone: the first line of `/proc/meminfo`, read into 64 bytes
/// instead of the 2000 the whole figure needs (to clear, check and parse: 1.2 k instructions).
#[cfg(target_os = "linux")]
fn read_total() -> Result<u64, MetricError> {
    let mut buffer = [0; 64];
    let text = super::proc_head("/proc/meminfo", &mut buffer)
        .map_err(|err| error(format!("/proc/meminfo: {}", crate::ioerr::io_reason(&err))))?;
    let total = match first_total(text) {
        Some(total) => total,
        None => {
            let memory = parse_meminfo(text);
            memory
                .ok_or_else(|| error("/proc/meminfo: no MemTotal line"))?
                .total
        }
    };
    nonzero(total)
}

/// `MemTotal` in bytes when it is the first line, as Linux writes it (`MemTotal:  24578964
/// kB`): by bytes, where [`parse_meminfo`]'s `lines`, `split_once` and `parse` cost 1.3 k
/// instructions over the two lines in the buffer; `None` otherwise, for it to look.
#[cfg(target_os = "linux")]
fn first_total(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("MemTotal:")?.as_bytes();
    let start = rest.iter().position(|byte| *byte != b' ')?;
    let digits = rest.get(start..)?;
    let end = digits
        .iter()
        .position(|byte| !byte.is_ascii_digit())
        .unwrap_or(digits.len());
    // The number ends its field, as `split_ascii_whitespace` would end it.
    match digits.get(end) {
        None | Some(b' ' | b'\n' | b'\t') => {}
        Some(_) => return None,
    }
    let kib = super::cgroup::decimal(digits.get(..end)?)?;
    Some(kib.saturating_mul(1024))
}

#[cfg(not(target_os = "linux"))]
pub fn read_scoped(scope: Scope, _cgroups: &Cgroups) -> Result<(Memory, Source), MetricError> {
    match scope {
        Scope::Cgroup => Err(error("scope cgroup: cgroups exist on Linux only")),
        _ => Ok((read()?, Source::Host)),
    }
}

/// Bytes for people: MiB below a GiB, GiB from there.
pub fn bytes(n: u64) -> String {
    match n < 1 << 30 {
        true => format!("{:.0} MiB", n as f64 / (1u64 << 20) as f64),
        false => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
    }
}

fn checked(memory: Memory) -> Result<Memory, MetricError> {
    nonzero(memory.total).map(|_| memory)
}

/// The host's memory, which no working system reports as none.
fn nonzero(total: u64) -> Result<u64, MetricError> {
    match total {
        0 => Err(error("the OS reported no memory")),
        _ => Ok(total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_used_over_total() {
        let m = Memory {
            total: 16,
            available: 12,
        };
        assert_eq!(m.used(), 4);
        assert_eq!(m.load(), 25.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn meminfo_total_and_available() {
        let text = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\n\
                    MemAvailable:    4000000 kB\nBuffers:          100000 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Some(Memory {
                total: 16_000_000 * 1024,
                available: 4_000_000 * 1024,
            })
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn meminfo_without_available_is_estimated() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n\
                    SwapCached: 7 kB\nShmem: 50 kB\nSReclaimable: 30 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Some(Memory {
                total: 1000 * 1024,
                available: (100 + 20 + 300 + 30 - 50) * 1024,
            })
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn meminfo_without_total_is_none() {
        assert_eq!(
            parse_meminfo("MemAvailable: 5 kB\nnonsense\nX: y kB\n"),
            None
        );
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn live_reading_is_sane() {
        let m = read().unwrap();
        assert!(m.total > 0 && m.available <= m.total);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_total_alone_is_the_whole_readings_total() {
        assert_eq!(read_total().unwrap(), read().unwrap().total);
        // The first line, as parse_meminfo reads it; anything else is left to it.
        for text in [
            "MemTotal:       24578964 kB\nMemFree:  1 kB\n",
            "MemTotal: 7 kB",
            "MemTotal:\t7 kB\n",
            "MemTotal:       7x kB\n",
            "MemTotal:        kB\n",
            "MemFree: 1 kB\nMemTotal: 8 kB\n",
            "MemTotal: 99999999999999999999999 kB\n",
        ] {
            let parsed = parse_meminfo(text).map(|memory| memory.total);
            let first = first_total(text);
            assert!(first.is_none() || first == parsed, "{text:?}");
        }
        assert_eq!(first_total("MemTotal: 7 kB"), Some(7 * 1024));
    }
}
