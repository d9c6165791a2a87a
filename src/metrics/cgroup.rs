//! The cgroup this process runs in, v1 or v2 ([`placement`]: from `/proc/self/cgroup`, with
//! `/proc/self/mountinfo` when the hierarchies are not where they usually are, so it works
//! with and without a cgroup namespace), and what it allows and uses: CPU capacity and usage,
//! memory limit and usage. Every path is read under [`Roots`], so fixture trees stand in for
//! a real system in the tests.

mod file;
mod placement;

use std::io::Read;
use std::path::{Path, PathBuf};

use file::Joined;
pub(super) use file::in_dir;
use placement::V1_CPU_MARKER;
pub use placement::{Group, Placement, Roots, Version, locate};
#[cfg(test)]
use placement::{is_number, unescape};

/// A cgroup or procfs file's text, as owned text (`/proc/self/cgroup`, mountinfo).
fn read(path: &Path) -> Result<String, String> {
    read_small(&Joined::new(path), |text| Ok(text.to_string()))
}

/// What `parse` makes of a file's text. The text is read with one call into a buffer on the
/// stack (cgroupfs and procfs write what fits in the first read), small enough that glibc
/// clears it with vector stores rather than `rep stosb`, which valgrind counts byte by byte;
/// a file that fills it is read whole onto the heap, up to 64 KiB.
fn read_small<T>(
    path: &Joined,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    present(read_small_if_present(path, parse)?, path)
}

/// What a reading of a file that must be there found: an absent one is an error.
fn present<T>(found: Option<T>, path: &Path) -> Result<T, String> {
    found.ok_or_else(|| format!("{}: No such file or directory", path.display()))
}

/// [`read_small`] of a file that may be absent at a level (the controller is not enabled
/// there): `None` then.
fn read_small_if_present<T>(
    path: &Joined,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    read_into::<2000, T>(path, parse)
}

/// [`read_small`] of a file of one short line (a CPU list, `max 100000`) that may be absent
/// at a level (`None` then): its buffer is cleared in a few stores, where a 2000-byte one cost
/// a probe 110 instructions a file; a longer line is read whole all the same.
fn read_line_if_present<T>(
    path: &Joined,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    read_into::<64, T>(path, parse)
}

/// A file of one decimal number (`cpu.cfs_period_us`, `memory.usage_in_bytes`), read as
/// bytes: the UTF-8 check of its line cost 70 instructions a file.
fn read_number(path: &Joined) -> Result<u64, String> {
    present(read_number_if_present(path)?, path)
}

/// [`read_number`] of a file that may be absent at a level: `None` then.
fn read_number_if_present(path: &Joined) -> Result<Option<u64>, String> {
    read_bytes_into::<64, _>(path, |bytes| value(bytes, path))
}

/// The reading itself, into a buffer of `SMALL` bytes on the stack.
fn read_into<const SMALL: usize, T>(
    path: &Joined,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    read_bytes_into::<SMALL, T>(path, |bytes| {
        parse(std::str::from_utf8(bytes).map_err(|_| format!("{}: not text", path.display()))?)
    })
}

/// [`read_into`] of a file parsed as bytes, not checked to be text first: `memory.stat`'s
/// 800 bytes took 450 instructions to check, and only its numbers are read.
fn read_bytes_into<const SMALL: usize, T>(
    path: &Joined,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let failed =
        |err: std::io::Error| format!("{}: {}", path.display(), crate::ioerr::io_reason(&err));
    let mut file = match path.open() {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        opened => opened.map_err(failed)?,
    };
    let mut buffer = [0; SMALL];
    let len = file.read(&mut buffer).map_err(failed)?;
    let head = buffer.get(..len).unwrap_or_default();
    if len < SMALL {
        return parse(head).map(Some);
    }
    let mut whole = head.to_vec();
    file.take(64 * 1024)
        .read_to_end(&mut whole)
        .map_err(failed)?;
    parse(&whole).map(Some)
}

/// `text`, trimmed, as a decimal number: by bytes ([`decimal`]), which reads what
/// `str::parse::<u64>` does at half its cost.
fn number(text: &str, path: &Path) -> Result<u64, String> {
    value(text.as_bytes(), path)
}

/// [`number`] of bytes that need not be text.
fn value(bytes: &[u8], path: &Path) -> Result<u64, String> {
    let bytes = bytes.trim_ascii();
    decimal(bytes).ok_or_else(|| {
        let text = String::from_utf8_lossy(bytes);
        format!("{}: {:?} is not a number", path.display(), text.trim())
    })
}

/// The value of `key` in a `key value` file (`cpu.stat`, `memory.stat`), as text or bytes.
fn keyed(text: impl AsRef<[u8]>, key: &str, path: &Path) -> Result<u64, String> {
    let [found] = values(text.as_ref(), [key]);
    value(
        found.ok_or_else(|| format!("{}: no {key} line", path.display()))?,
        path,
    )
}

/// The values of `keys` in a `key value` file, each from the first line that begins with it,
/// in one pass. Only a line whose byte at its key's length (up to 7) is the key's is looked
/// at: 16 bytes at a time, newlines and that byte one further on are found by vector
/// compares. To v1's `memory.stat`'s 40th line this costs 1.1 k instructions, where
/// `str::match_indices` (a two-way searcher) took 3.2 k, `memchr::memmem` 2 k, and finding
/// every newline a word at a time 3.8 k.
fn values<'a, const N: usize>(bytes: &'a [u8], keys: [&str; N]) -> [Option<&'a [u8]>; N] {
    // Each key's byte at `reach`, in "key " so a short key has its space there.
    let anchors = keys.map(|key| {
        let reach = key.len().min(7);
        (
            reach,
            needle(key.as_bytes().get(reach).copied().unwrap_or(b' ')),
        )
    });
    let newline = needle(b'\n');
    let mut found = [None; N];
    let mut missing = N;
    // Whether every key is found once the line at `start` is looked at.
    let mut line = |start: usize| {
        let rest = bytes.get(start..).unwrap_or_default();
        for (key, value) in keys.iter().zip(&mut found) {
            let Some(after) = rest.strip_prefix(key.as_bytes()) else {
                continue;
            };
            let Some(after) = after.strip_prefix(b" ").filter(|_| value.is_none()) else {
                continue;
            };
            let end = after
                .iter()
                .position(|b| *b == b'\n')
                .unwrap_or(after.len());
            *value = after.get(..end);
            missing -= 1;
        }
        missing == 0
    };
    if line(0) {
        return found;
    }
    let mut block = 0;
    // Every anchor of a line starting in the block is within its 16 + 8 bytes.
    while let Some(window) = bytes
        .get(block..)
        .and_then(|rest| rest.first_chunk::<{ BLOCK + 8 }>())
    {
        let mut anchored = 0;
        for (reach, byte) in &anchors {
            anchored |= matches(window, 1 + reach, byte);
        }
        let mut ends = matches(window, 0, &newline) & anchored;
        while ends != 0 {
            if line(block + ends.trailing_zeros() as usize + 1) {
                return found;
            }
            ends &= ends - 1;
        }
        block += BLOCK;
    }
    for end in block..bytes.len() {
        let anchored = keys.iter().any(|key| {
            let reach = key.len().min(7);
            let byte = key.as_bytes().get(reach).copied().unwrap_or(b' ');
            bytes.get(end + 1 + reach) == Some(&byte)
        });
        if bytes.get(end) == Some(&b'\n') && anchored && line(end + 1) {
            return found;
        }
    }
    found
}

/// The bytes [`matches`] compares at once.
const BLOCK: usize = 16;

/// A byte as [`matches`] compares it: in every lane of a vector.
#[cfg(target_arch = "x86_64")]
type Needle = std::arch::x86_64::__m128i;

#[cfg(target_arch = "x86_64")]
fn needle(byte: u8) -> Needle {
    // SAFETY: SSE2 is part of x86-64 itself, so every CPU the program runs on has it.
    unsafe { std::arch::x86_64::_mm_set1_epi8(byte as i8) }
}

/// Which of the [`BLOCK`] bytes from `at` are the needle's, bit `i` for `bytes[at + i]`; none
/// past the end. SSE2, which every x86-64 CPU has, compares them in one instruction.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn matches(bytes: &[u8], at: usize, needle: &Needle) -> u32 {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8};
    let Some(block) = bytes.get(at..).and_then(|rest| rest.first_chunk::<BLOCK>()) else {
        return 0;
    };
    // SAFETY: `block` is 16 readable bytes, which is what an unaligned 128-bit load reads;
    // SSE2 is part of x86-64 itself, so every CPU the program runs on has these instructions.
    let equal = unsafe {
        let loaded = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        _mm_movemask_epi8(_mm_cmpeq_epi8(loaded, *needle))
    };
    equal as u32
}

/// The [`BLOCK`] bytes of `bytes` from `at`: in place, or, for the last ones, fewer than a
/// block, copied into `tail` after its zeros are set, so a search of them for another byte
/// finds nothing past the end.
#[inline(always)]
fn block<'a>(bytes: &'a [u8], at: usize, tail: &'a mut [u8; BLOCK]) -> &'a [u8; BLOCK] {
    match bytes.get(at..).and_then(|rest| rest.first_chunk()) {
        Some(block) => block,
        None => {
            let rest = bytes.get(at..).unwrap_or_default();
            *tail = [0; BLOCK];
            if let Some(head) = tail.get_mut(..rest.len()) {
                head.copy_from_slice(rest);
            }
            tail
        }
    }
}

/// A byte in every byte of a word, for [`matches_by_words`].
#[cfg(any(not(target_arch = "x86_64"), test))]
fn word_needle(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

#[cfg(not(target_arch = "x86_64"))]
use word_needle as needle;

/// [`matches`] a word at a time elsewhere: the high bit of each byte that is the needle's,
/// gathered into the low bits.
#[cfg(any(not(target_arch = "x86_64"), test))]
fn matches_by_words(bytes: &[u8], at: usize, needle: &u64) -> u32 {
    const LOW: u64 = u64::from_ne_bytes([0x7f; 8]);
    let Some(block) = bytes.get(at..).and_then(|rest| rest.first_chunk::<BLOCK>()) else {
        return 0;
    };
    let (low, high) = block.split_at(BLOCK / 2);
    [low, high].into_iter().rev().fold(0, |bits, half| {
        let word = u64::from_le_bytes(half.try_into().unwrap_or_default());
        let other = word ^ needle;
        let equal = !(((other & LOW) + LOW) | other | LOW) >> 7;
        bits << 8 | (equal.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    })
}

#[cfg(not(target_arch = "x86_64"))]
use matches_by_words as matches;

/// `base` with `parts` appended, each trimmed of slashes; by concatenation of bytes, which
/// costs a tenth of `Path::join` (a probe builds a dozen of these) and a third of trimming
/// them as `str`s.
pub(super) fn under(base: &Path, parts: &[&str]) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let trimmed = |bytes: &[u8]| -> std::ops::Range<usize> {
        let start = bytes.iter().position(|b| *b != b'/').unwrap_or(bytes.len());
        let end = bytes
            .iter()
            .rposition(|b| *b != b'/')
            .map_or(start, |last| last + 1);
        start..end
    };
    let base = base.as_os_str().as_bytes();
    let base = base.strip_suffix(b"/").unwrap_or(base);
    let mut bytes =
        Vec::with_capacity(base.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    bytes.extend_from_slice(base);
    for part in parts {
        let part = part.as_bytes();
        let part = part.get(trimmed(part)).unwrap_or_default();
        if !part.is_empty() {
            bytes.push(b'/');
            bytes.extend_from_slice(part);
        }
    }
    if bytes.is_empty() {
        bytes.push(b'/');
    }
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// CPUs in a list such as `0-3,8,10-11`. By bytes: `split`, `split_once` and `parse` cost
/// 300 instructions for a two-CPU host's `0-1`, and a probe reads two lists.
pub fn count_cpus(list: impl AsRef<[u8]>) -> Option<u64> {
    let mut count: u64 = 0;
    for part in list.as_ref().trim_ascii().split(|byte| *byte == b',') {
        if part.is_empty() {
            continue;
        }
        count += match part.iter().position(|byte| *byte == b'-') {
            Some(dash) => {
                let low = decimal(part.get(..dash)?)?;
                decimal(part.get(dash + 1..)?)?.checked_sub(low)? + 1
            }
            None => decimal(part).map(|_| 1)?,
        };
    }
    Some(count)
}

/// `digits` as a number, as `str::parse::<u64>` reads it (an optional `+`, then digits).
/// Up to 19 digits cannot overflow, so only longer ones pay for checked arithmetic.
pub(super) fn decimal(digits: &[u8]) -> Option<u64> {
    let digits = digits.strip_prefix(b"+").unwrap_or(digits);
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for digit in digits {
        let digit = u64::from(digit.wrapping_sub(b'0'));
        if digit > 9 {
            return None;
        }
        value = match digits.len() < 20 {
            true => value * 10 + digit,
            false => value.checked_mul(10)?.checked_add(digit)?,
        };
    }
    Some(value)
}

/// Whether `cpu` is in a list such as `0-3,8,10-11` (checked by [`count_cpus`] before).
fn lists_cpu(list: &str, cpu: u64) -> bool {
    list.trim()
        .split(',')
        .any(|part| match part.split_once('-') {
            Some((low, high)) => {
                low.parse().is_ok_and(|low: u64| low <= cpu)
                    && high.parse().is_ok_and(|high: u64| cpu <= high)
            }
            None => part.parse() == Ok(cpu),
        })
}

/// How many CPUs the cgroup may use, in thousandths, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuCapacity {
    pub group: Group,
    /// The cgroup path the figure is measured at: the level whose quota binds, or whose
    /// cpuset does (in v1 a path of the cpuset hierarchy).
    pub at: String,
    pub millis: u64,
    /// Below the online CPUs: a quota or a cpuset holds the cgroup in.
    pub limited: bool,
    /// The CPU list of the cpuset, when it is what binds (limited without it: a quota).
    cpuset: Option<String>,
    /// Set by [`CpuCapacity::with_usage`].
    usage: Option<Usage>,
}

/// Where the cgroup's CPU time is read.
#[derive(Clone, Debug, PartialEq)]
enum Usage {
    /// v2 `cpu.stat` `usage_usec`, v1 `cpuacct.usage`, of the cgroup `at`.
    Total { path: PathBuf, at: String },
    /// v1 `cpuacct.usage_percpu` of the cpuacct cgroup `at`, summed over the cpuset's CPUs:
    /// the cpuset and cpuacct hierarchies are apart, so the cpuacct cgroup may hold tasks
    /// that run elsewhere (at the root: all of them).
    PerCpu { path: PathBuf, at: String },
}

impl CpuCapacity {
    /// What the figure is, in words: "cgroup v2 /system.slice/x: 0.50 CPU quota", and where
    /// the usage is read when that is another cgroup; written only where it is read.
    pub fn described(&self) -> impl std::fmt::Display + '_ {
        struct Described<'a>(&'a CpuCapacity);
        impl std::fmt::Display for Described<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let capacity = self.0;
                let version = capacity.group.version.name();
                write!(f, "{version} {}: ", capacity.at)?;
                let cpus = capacity.millis / 1000;
                match (&capacity.cpuset, capacity.limited) {
                    (Some(list), _) => write!(f, "cpuset {list}: {cpus} CPUs")?,
                    (None, true) => write!(f, "{:.2} CPU quota", capacity.millis as f64 / 1000.0)?,
                    (None, false) => write!(f, "no CPU quota, {cpus} online CPUs")?,
                }
                match (&capacity.usage, &capacity.cpuset) {
                    (Some(Usage::PerCpu { at, .. }), Some(list)) if *at != capacity.at => {
                        write!(f, ", usage of CPUs {list} at cpuacct {at}")
                    }
                    (Some(Usage::Total { at, .. }), _) if *at != capacity.at => {
                        write!(f, ", usage at cpuacct {at}")
                    }
                    _ => Ok(()),
                }
            }
        }
        Described(self)
    }

    /// The cgroup's CPU time so far, in microseconds.
    pub fn usage_us(&self) -> Result<u64, String> {
        let unknown = || format!("cgroup {}: its usage file was not looked up", self.at);
        match self.usage.as_ref().ok_or_else(unknown)? {
            Usage::Total { path, .. } => match self.group.version {
                Version::V2 => {
                    read_small(&Joined::new(path), |text| keyed(text, "usage_usec", path))
                }
                // One number: a line's buffer, cleared in a few stores.
                Version::V1 => read_number(&Joined::new(path)).map(|ns| ns / 1000),
            },
            Usage::PerCpu { path, .. } => {
                let list = self.cpuset.as_deref().ok_or_else(unknown)?;
                read_small(&Joined::new(path), |text| {
                    let mut ns: u64 = 0;
                    for (cpu, field) in (0..).zip(text.split_ascii_whitespace()) {
                        if lists_cpu(list, cpu) {
                            ns = ns.saturating_add(number(field, path)?);
                        }
                    }
                    Ok(ns / 1000)
                })
            }
        }
    }

    /// A stamp that changes when the capacity, the cgroup or where its usage is read does, so
    /// counters from before are not compared with counters after.
    pub fn id(&self) -> u64 {
        let text = format!(
            "{:?} {} {} {:?}",
            self.group.version, self.at, self.millis, self.usage
        );
        crate::hash::checksum(text.as_bytes()) | 1
    }
}

/// The smallest quota over the cgroup and its ancestors, capped by its cpuset and the online
/// CPUs; usage is read where the smallest quota is, or the cpuset that binds. `allowed` is
/// how many CPUs this process may run on ([`cpus_allowed`]) when the placement is the real
/// system's: as many as are online, and no cpuset binds, so its files are not read.
pub fn cpu(placement: &Placement, allowed: Option<u64>) -> Result<CpuCapacity, String> {
    // v1's top quota file proves the hierarchy, read once for both.
    let (group, top_quota) = placement.group_proved("cpu", |top| v1_quota(top).ok().flatten())?;
    let online_file = placement.under_root("/sys/devices/system/cpu/online");
    let online = read_bytes_into::<64, _>(&online_file, |list| {
        count_cpus(list)
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{}: not a CPU list", online_file.display()))
    })?;
    let online = present(online, &online_file)?;
    let mut quota: Option<(u64, String)> = None;
    for (index, (path, dir)) in group.levels().enumerate() {
        let millis = match top_quota {
            Some(quota) if index == group.depth => v1_millis(dir, quota)?,
            _ => level_quota(&group, dir)?,
        };
        let Some(millis) = millis else {
            continue;
        };
        if quota.as_ref().is_none_or(|(least, _)| millis < *least) {
            quota = Some((millis, path.to_string()));
        }
    }
    let mut millis = online * 1000;
    let mut at = group.path.clone();
    let mut bound = None;
    let set = match allowed {
        Some(allowed) if allowed >= online => None,
        _ => cpuset(placement)?,
    };
    if let Some(set) = set.filter(|set| set.count < online) {
        millis = set.count * 1000;
        at = set.at;
        bound = Some(set.list);
    }
    if let Some((quota, path)) = quota.filter(|(quota, _)| *quota < millis) {
        millis = quota;
        at = path;
        bound = None;
    }
    Ok(CpuCapacity {
        limited: millis < online * 1000,
        group,
        at,
        millis,
        cpuset: bound,
        usage: None,
    })
}

impl CpuCapacity {
    /// Finds the file the usage is read from: asked only when the cgroup's figure is used,
    /// so a host that falls back to its own pays nothing for it.
    pub fn with_usage(mut self, placement: &Placement) -> Result<CpuCapacity, String> {
        let at = self.at.clone();
        let usage = match self.group.version {
            Version::V2 => {
                let dir = self
                    .group
                    .level_dir(&at)
                    .ok_or_else(|| format!("cgroup {at} is not visible for its usage"))?;
                let path = under(dir, &["cpu.stat"]);
                Usage::Total { path, at }
            }
            // v1 keeps usage in the cpuacct hierarchy, mounted with cpu or on its own.
            Version::V1 => {
                let acct = placement.group("cpuacct")?;
                let level = acct.level_dir(&at);
                match (&self.cpuset, level) {
                    (Some(_), Some(dir)) => Usage::PerCpu {
                        path: under(dir, &["cpuacct.usage_percpu"]),
                        at,
                    },
                    // The cpuset's cgroup has no cpuacct cgroup of its own above this
                    // process: the topmost one visible holds every task on its CPUs.
                    (Some(_), None) => {
                        let (top, dir) = acct.levels().last().unwrap_or((&acct.path, &acct.dir));
                        Usage::PerCpu {
                            path: under(dir, &["cpuacct.usage_percpu"]),
                            at: top.to_string(),
                        }
                    }
                    (None, Some(dir)) => Usage::Total {
                        path: under(dir, &["cpuacct.usage"]),
                        at,
                    },
                    (None, None) if !self.limited => Usage::Total {
                        path: acct.file("cpuacct.usage"),
                        at: acct.path.clone(),
                    },
                    // Another cgroup's time over the quota would be no figure of it.
                    (None, None) => {
                        return Err(format!(
                            "the quota is at cpu {at}, but this process is in cpuacct {}, \
                             which has no cgroup {at} above it",
                            acct.path
                        ));
                    }
                }
            }
        };
        self.usage = Some(usage);
        Ok(self)
    }
}

/// One level's quota in thousandths of a CPU; `None` without one.
fn level_quota(group: &Group, dir: &Path) -> Result<Option<u64>, String> {
    match group.version {
        Version::V2 => {
            let path = in_dir(dir, "cpu.max");
            let quota = read_line_if_present(&path, |text| {
                let mut fields = text.split_ascii_whitespace();
                match (fields.next(), fields.next()) {
                    (Some("max"), _) => Ok(None),
                    (Some(quota), Some(period)) => {
                        Ok(per_cpu(number(quota, &path)?, number(period, &path)?))
                    }
                    _ => Err(format!(
                        "{}: {:?} is not QUOTA PERIOD",
                        path.display(),
                        text.trim()
                    )),
                }
            })?;
            Ok(quota.flatten())
        }
        Version::V1 => v1_quota(dir)?.map_or(Ok(None), |quota| v1_millis(dir, quota)),
    }
}

/// A v1 level's `cpu.cfs_quota_us` (`None` for -1, no quota); `None` when it is absent.
fn v1_quota(dir: &Path) -> Result<Option<Option<u64>>, String> {
    let path = in_dir(dir, V1_CPU_MARKER);
    read_bytes_into::<64, _>(&path, |bytes| match bytes.trim_ascii().starts_with(b"-") {
        true => Ok(None),
        false => value(bytes, &path).map(Some),
    })
}

/// A v1 level's `quota` (µs, [`v1_quota`]) in thousandths of a CPU, over its period.
fn v1_millis(dir: &Path, quota: Option<u64>) -> Result<Option<u64>, String> {
    let Some(quota) = quota else {
        return Ok(None);
    };
    let period_path = in_dir(dir, "cpu.cfs_period_us");
    let period = read_number(&period_path)?;
    Ok(per_cpu(quota, period))
}

/// A quota over a period in thousandths of a CPU; `None` for a period of 0.
fn per_cpu(quota: u64, period: u64) -> Option<u64> {
    (period > 0).then(|| quota * 1000 / period)
}

/// How many CPUs process `pid` may run on, from `sched_getaffinity(2)` of its main thread,
/// whose cgroups `/proc/self/cgroup` shows; `None` when that fails (more CPUs than a
/// `cpu_set_t` holds). A task's CPUs are within its cpuset's:
/// "Calls to sched_setaffinity are filtered to just those CPUs allowed in that task's cpuset"
/// (the kernel's Documentation/admin-guide/cgroup-v1/cpusets.rst; `__sched_setaffinity` ANDs
/// the mask with `cpuset_cpus_allowed`), and the call answers `cpus_mask` AND the active
/// CPUs (kernel/sched/syscalls.c). So a count of every online CPU proves the cpuset holds
/// them all: one syscall on no path instead of a file a level.
pub fn cpus_allowed(pid: u32) -> Option<u64> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // A `cpu_set_t`'s bits, as words: its fields are private, and `CPU_COUNT` counts the bits
    // of all 16 words, most of them 0 (300 instructions without a popcnt instruction).
    let mut words = [0u64; std::mem::size_of::<libc::cpu_set_t>() / 8];
    // The system call itself, through `syscall`, which std imports anyway: glibc's wrapper
    // would be one more symbol for the plain build's dynamic loader to look up, and one more
    // name in its table moves the others' alignment, which cost its `strcmp` 4 k instructions
    // a probe (docs/BENCHMARKS.md). The call returns the bytes it wrote, the rest stays 0.
    // SAFETY: `words` is as large as a `cpu_set_t` and at least as aligned; the kernel writes
    // at most the size it is given.
    let wrote = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            pid,
            std::mem::size_of_val(&words),
            words.as_mut_ptr(),
        )
    };
    let ones = |word: &u64| u64::from(word.count_ones());
    (wrote > 0).then(|| words.iter().filter(|word| **word != 0).map(ones).sum())
}

/// A cpuset: its CPUs, their list, and the cgroup where it applies.
struct Cpuset {
    count: u64,
    list: String,
    /// The topmost of the cgroup and its ancestors with the same CPUs: every task below it
    /// runs on them, so that is where the limit applies.
    at: String,
}

/// The cgroup's cpuset; `None` when there is no cpuset controller (then only the online
/// CPUs cap it).
fn cpuset(placement: &Placement) -> Result<Option<Cpuset>, String> {
    let Ok(group) = placement.group("cpuset") else {
        return Ok(None);
    };
    let name = match group.version {
        Version::V2 => "cpuset.cpus.effective",
        Version::V1 => "cpuset.cpus",
    };
    let mut found: Option<Cpuset> = None;
    for (at, dir) in group.levels() {
        let path = in_dir(dir, name);
        let level = read_line_if_present(&path, |text| {
            let list = text.trim();
            if found.as_ref().is_some_and(|set| set.list == list) {
                return Ok(None);
            }
            count_cpus(list)
                .map(|count| Some((count, list.to_string())))
                .ok_or_else(|| format!("{}: {list:?} is not a CPU list", path.display()))
        })?;
        match (&mut found, level) {
            // The same CPUs as below: the limit applies here too.
            (Some(set), Some(None)) => set.at = at.to_string(),
            (Some(_), _) => break,
            (None, Some(Some((count, list)))) if count > 0 => {
                found = Some(Cpuset {
                    count,
                    list,
                    at: at.to_string(),
                });
            }
            // Absent, or an empty v2 list (the parent's CPUs): look further up.
            (None, _) => {}
        }
    }
    Ok(found)
}

/// The memory a cgroup may use and uses.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryUse {
    pub group: Group,
    /// The smallest limit up the tree; `None` for `max` (v1: a huge number).
    pub limit: Option<u64>,
    /// Where the figure is measured, the level whose limit binds: the length of its path and
    /// directory, which begin the cgroup's own (a level is its ancestor or itself), so
    /// neither is copied.
    level: (usize, usize),
}

impl MemoryUse {
    /// The cgroup path the figure is measured at: the level whose limit binds.
    pub fn at(&self) -> &str {
        self.group.path.get(..self.level.0).unwrap_or_default()
    }

    /// The directory of [`MemoryUse::at`], where [`MemoryUse::used`] reads.
    fn dir(&self) -> &Path {
        use std::os::unix::ffi::OsStrExt;
        let dir = self.group.dir.as_os_str().as_bytes();
        Path::new(std::ffi::OsStr::from_bytes(
            dir.get(..self.level.1).unwrap_or_default(),
        ))
    }

    /// What the figure is against the host's memory `total`: "cgroup v2 /x: 1.0 GiB limit",
    /// "cgroup v1 /: no memory limit". Its own, so that a reading keeps it and the words are
    /// written only where they are read.
    pub fn described(&self, total: u64) -> MemoryLimit {
        MemoryLimit {
            version: self.group.version,
            at: self.at().to_string(),
            limit: self.limit.filter(|limit| *limit < total),
        }
    }

    /// In use, without the inactive file cache the kernel reclaims first: read only when
    /// the cgroup's figure is used, so a host that falls back to its own pays nothing for it.
    pub fn used(&self) -> Result<u64, String> {
        let (usage, stat, inactive) = match self.group.version {
            Version::V2 => ("memory.current", "memory.stat", "inactive_file"),
            Version::V1 => (
                "memory.usage_in_bytes",
                "memory.stat",
                "total_inactive_file",
            ),
        };
        let file = in_dir(self.dir(), usage);
        let usage = read_number(&file)?;
        let stat = in_dir(self.dir(), stat);
        let inactive = read_bytes_into::<2000, _>(&stat, |text| keyed(text, inactive, &stat))?;
        let inactive = present(inactive, &stat)?;
        Ok(usage.saturating_sub(inactive))
    }
}

/// A cgroup's memory limit below the host's memory, if any, and where it is
/// ([`MemoryUse::described`]).
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryLimit {
    version: Version,
    at: String,
    limit: Option<u64>,
}

impl std::fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: ", self.version.name(), self.at)?;
        match self.limit {
            Some(limit) => write!(f, "{} limit", super::memory::bytes(limit)),
            None => f.write_str("no memory limit"),
        }
    }
}

/// `memory.current − inactive_file` over the smallest `memory.max` (v2), or
/// `memory.usage_in_bytes − total_inactive_file` over `hierarchical_memory_limit` (v1), each
/// read at the level whose limit binds.
pub fn memory(placement: &Placement) -> Result<MemoryUse, String> {
    let group = placement.group("memory")?;
    match group.version {
        Version::V2 => {
            let mut least: Option<(u64, &str, &Path)> = None;
            for (path, dir) in group.levels() {
                let file = in_dir(dir, "memory.max");
                let limit = read_bytes_into::<64, _>(&file, |bytes| match bytes.trim_ascii() {
                    b"max" => Ok(None),
                    _ => value(bytes, &file).map(Some),
                })?;
                let Some(limit) = limit.flatten() else {
                    continue;
                };
                if least
                    .as_ref()
                    .is_none_or(|(smallest, ..)| limit < *smallest)
                {
                    least = Some((limit, path, dir));
                }
            }
            let (limit, at, dir) = match least {
                Some((limit, path, dir)) => (Some(limit), path, dir),
                None => (None, group.path.as_str(), group.dir.as_path()),
            };
            Ok(MemoryUse {
                // Before `group` moves: `at` and `dir` borrow it.
                level: (at.len(), dir.as_os_str().len()),
                limit,
                group,
            })
        }
        Version::V1 => {
            // "No limit" is the largest page-aligned i64: anything from 2^62 up is none.
            // The levels below the top and the top's directory, in one walk up (each level
            // up searches the path and the directory for a slash).
            let (levels, top) = group
                .levels()
                .fold((0, group.dir.as_path()), |(seen, _), (_, dir)| {
                    (seen + 1, dir)
                });
            let below_root = levels - 1;
            // Only the hierarchy's own root has `release_agent`. With it in sight, so is
            // every ancestor, and the limit is the smallest `memory.limit_in_bytes` below it
            // (the root cannot have one): a small file a level instead of `memory.stat`'s
            // 40 lines, and no file at all in the root cgroup (docs/BENCHMARKS.md).
            // Reading `memory.stat` first instead (the limit and the inactive file in one
            // read, the ancestors' files only under a limit) opens one file fewer in a child
            // and limited, but cost 0.2 k instructions more in a child and 1.4 k limited:
            // not taken (docs/BENCHMARKS.md).
            if in_dir(top, "release_agent").exists() {
                let mut least: Option<(u64, &str, &Path)> = None;
                for (path, level) in group.levels().take(below_root) {
                    let file = in_dir(level, "memory.limit_in_bytes");
                    let limit = read_number_if_present(&file)?;
                    // Nearest first: on a tie the level above binds first.
                    if let Some(limit) = limit.filter(|l| *l < 1 << 62)
                        && least.is_none_or(|(smallest, ..)| limit <= smallest)
                    {
                        least = Some((limit, path, level));
                    }
                }
                let (limit, at, dir) = match least {
                    Some((limit, path, dir)) => (Some(limit), path, dir),
                    None => (None, group.path.as_str(), group.dir.as_path()),
                };
                return Ok(MemoryUse {
                    level: (at.len(), dir.as_os_str().len()),
                    limit,
                    group,
                });
            }
            let stat = in_dir(&group.dir, "memory.stat");
            let limit = read_small(&stat, |text| {
                keyed(text, "hierarchical_memory_limit", &stat)
            })?;
            let limit = Some(limit).filter(|l| *l < 1 << 62);
            // The limit may be an ancestor's: the use is read there, where it bites, at the
            // topmost level that sets it (usage_in_bytes and the total_ lines of memory.stat
            // count the whole sub-tree). An ancestor out of sight leaves the cgroup itself.
            let (mut at, mut dir) = (group.path.as_str(), group.dir.as_path());
            if let Some(limit) = limit {
                for (path, level) in group.levels() {
                    let file = in_dir(level, "memory.limit_in_bytes");
                    if read_number_if_present(&file)? == Some(limit) {
                        (at, dir) = (path, level);
                    }
                }
            }
            Ok(MemoryUse {
                level: (at.len(), dir.as_os_str().len()),
                limit,
                group,
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
