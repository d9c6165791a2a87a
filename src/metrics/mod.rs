//! Raw figures from the operating system, as loads in percent: CPU busy share, RAM in use,
//! established TCP connections on a port, user sessions, and custom values from commands,
//! files and local HTTP endpoints, each a monitor behind one interface ([`monitor`]). The
//! OS-specific parts live behind `cfg` here.

#[cfg(target_os = "linux")]
pub mod cgroup;
pub mod cpu;
pub mod custom;
pub mod memory;
pub mod monitor;
pub mod pressure;
pub mod sessions;
pub mod tcp;

/// The cgroup placement of this process and the limits found in it, each read at most once
/// per sample and only when a monitor's scope asks for it (the CPU and pressure monitors both
/// ask whose limits bind; Linux only, elsewhere there is nothing to read).
#[derive(Default)]
pub struct Cgroups {
    #[cfg(target_os = "linux")]
    roots: Option<cgroup::Roots>,
    #[cfg(target_os = "linux")]
    placement: std::cell::OnceCell<Result<cgroup::Placement, String>>,
    #[cfg(target_os = "linux")]
    cpu: std::cell::OnceCell<Result<cgroup::CpuCapacity, String>>,
    #[cfg(target_os = "linux")]
    memory: std::cell::OnceCell<Result<cgroup::MemoryUse, String>>,
}

#[cfg(target_os = "linux")]
impl Cgroups {
    /// The cgroups under `roots` instead of the system's (fixture trees).
    pub fn at(roots: cgroup::Roots) -> Cgroups {
        Cgroups {
            roots: Some(roots),
            ..Cgroups::default()
        }
    }

    pub fn roots(&self) -> cgroup::Roots {
        self.roots.clone().unwrap_or_else(cgroup::Roots::system)
    }

    pub fn placement(&self) -> Result<&cgroup::Placement, String> {
        self.placement
            .get_or_init(|| cgroup::locate(self.roots()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The CPU capacity its cgroups allow ([`cgroup::cpu`]).
    pub fn cpu(&self) -> Result<&cgroup::CpuCapacity, String> {
        self.cpu
            .get_or_init(|| {
                let placement = self.placement()?;
                // This process's affinity speaks for the system's cpusets, not a fixture's.
                let allowed = match self.roots {
                    None => cgroup::cpus_allowed(placement.pid()),
                    Some(_) => None,
                };
                cgroup::cpu(placement, allowed)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The memory limit its cgroups set, and where the use is read ([`cgroup::memory`]).
    pub fn memory(&self) -> Result<&cgroup::MemoryUse, String> {
        self.memory
            .get_or_init(|| cgroup::memory(self.placement()?))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// A figure that could not be read; `monitor` becomes the reply's `error:<monitor>` (`cpu`,
/// `ram`, `tcp`, or a custom monitor's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricError {
    pub monitor: String,
    pub message: String,
}

impl std::fmt::Display for MetricError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.monitor, self.message)
    }
}

impl std::error::Error for MetricError {}

/// The beginning of a small `/proc` file, read with one syscall into `buffer`: procfs files
/// report a size of 0, so `read_to_string` starts at 32 bytes and doubles, a syscall per step
/// (eight for `/proc/stat`). The kernel writes these files whole on the first read, so one
/// read returns everything that fits; a line cut off at the end of a full buffer is dropped.
#[cfg(target_os = "linux")]
pub(crate) fn proc_head<'a>(path: &str, buffer: &'a mut [u8]) -> std::io::Result<&'a str> {
    use std::io::Read;
    let len = std::fs::File::open(path)?.read(buffer)?;
    let full = len == buffer.len();
    let bytes = buffer.get(..len).unwrap_or_default();
    let not_text = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not text");
    // A full buffer may end inside a character of the cut line.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) if full => std::str::from_utf8(bytes.get(..err.valid_up_to()).unwrap_or_default())
            .map_err(|_| not_text())?,
        Err(_) => return Err(not_text()),
    };
    // `rfind` of a char searches a word at a time; the cut line can be most of the buffer
    // (`/proc/stat`'s `intr` line), which a byte loop took 4 k instructions to walk back over.
    match text.rfind('\n').filter(|_| full) {
        Some(end) => Ok(text.get(..=end).unwrap_or_default()),
        None => Ok(text),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod scope_tests;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn proc_head_keeps_whole_lines() {
        let path = std::env::temp_dir().join(format!("lbf-proc-head-{}", std::process::id()));
        std::fs::write(&path, "one 1\ntwo 22\nthree 333\n").unwrap();
        let path_text = path.to_str().unwrap();
        let mut big = [0; 64];
        assert_eq!(
            proc_head(path_text, &mut big).unwrap(),
            "one 1\ntwo 22\nthree 333\n"
        );
        // A full buffer ends inside "three 333": that line is dropped, not cut.
        let mut small = [0; 16];
        assert_eq!(proc_head(path_text, &mut small).unwrap(), "one 1\ntwo 22\n");
        let _ = std::fs::remove_file(&path);
        assert!(proc_head("/proc/no-such-file", &mut big).is_err());
    }

    #[test]
    fn proc_head_reads_the_live_files() {
        let mut buffer = [0; 1024];
        assert!(
            proc_head("/proc/stat", &mut buffer)
                .unwrap()
                .starts_with("cpu ")
        );
    }
}
