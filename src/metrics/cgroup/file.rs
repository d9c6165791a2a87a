//! A cgroup or procfs file's path, built once on the stack with the NUL the kernel wants, and
//! the calls on it: open and exists. `std::fs` copies every path into a C string of its own
//! and scans it for a NUL again, and `Path::exists` fills a whole `statx`: about 150
//! instructions a file over the cgroup check's 8 to 18 files (docs/BENCHMARKS.md); here the
//! path is checked once when it is built and handed to `open(2)` and `access(2)` as it is.

use std::path::{Path, PathBuf};

/// Long enough for any usual cgroup file: `/sys/fs/cgroup/cpu,cpuacct/system.slice/`, a
/// unit's name and a file name. Longer paths go through `std::fs`.
const STACK: usize = 256;

/// A file's path, NUL-terminated on the stack; on the heap when it is longer than the
/// buffer or has a NUL of its own (then `std::fs` reports it as not a file name).
#[expect(
    clippy::large_enum_variant,
    reason = "on the stack for one file's open, which is the point"
)]
pub(in crate::metrics) enum Joined {
    /// The path's bytes, then a NUL at `len`.
    Stack([u8; STACK], usize),
    Heap(PathBuf),
}

impl std::ops::Deref for Joined {
    type Target = Path;

    fn deref(&self) -> &Path {
        use std::os::unix::ffi::OsStrExt;
        match self {
            Joined::Stack(bytes, len) => Path::new(std::ffi::OsStr::from_bytes(
                bytes.get(..*len).unwrap_or_default(),
            )),
            Joined::Heap(path) => path,
        }
    }
}

/// `dir` with the plain file name `name` appended, as [`super::under`] would make it.
#[inline(always)]
pub(in crate::metrics) fn in_dir(dir: &Path, name: &str) -> Joined {
    use std::os::unix::ffi::OsStrExt;
    let base = dir.as_os_str().as_bytes();
    let base = base.strip_suffix(b"/").unwrap_or(base);
    // Byte by byte, not `contains`: over a constant name (every caller's) the compiler
    // decides it, where `contains` called `memchr` for a name of 16 bytes or more.
    match !name.is_empty() && !name.bytes().any(|byte| byte == b'/') {
        true => Joined::of(&[base, b"/", name.as_bytes()]),
        false => Joined::Heap(super::under(dir, &[name])),
    }
}

/// The system file `absolute` (`/sys/...`) under `root`, as [`super::under`] would make it:
/// on the stack, without the `PathBuf` it builds first.
pub(in crate::metrics) fn in_root(root: &Path, absolute: &str) -> Joined {
    use std::os::unix::ffi::OsStrExt;
    let base = root.as_os_str().as_bytes();
    let base = base.strip_suffix(b"/").unwrap_or(base);
    let plain = absolute.starts_with('/') && !absolute.starts_with("//");
    match plain && !absolute.ends_with('/') {
        true => Joined::of(&[base, absolute.as_bytes()]),
        false => Joined::Heap(super::under(root, &[absolute])),
    }
}

impl Joined {
    /// `path` as it is.
    #[inline(always)]
    pub(in crate::metrics) fn new(path: &Path) -> Joined {
        use std::os::unix::ffi::OsStrExt;
        Joined::of(&[path.as_os_str().as_bytes()])
    }

    /// The concatenation of `parts`, checked for a NUL once as a whole (a check per part
    /// cost as much as the copies). Inlined, so the buffer is filled where it stays.
    #[inline(always)]
    fn of(parts: &[&[u8]]) -> Joined {
        use std::os::unix::ffi::OsStrExt;
        let mut bytes = [0; STACK];
        let mut len = 0;
        for part in parts {
            // One byte is kept for the NUL.
            match bytes
                .get_mut(len..len + part.len())
                .filter(|_| len + part.len() < STACK)
            {
                Some(out) => out.copy_from_slice(part),
                None => {
                    return Joined::Heap(PathBuf::from(std::ffi::OsStr::from_bytes(
                        &parts.concat(),
                    )));
                }
            }
            len += part.len();
        }
        match has_nul(&bytes, len) {
            true => Joined::Heap(PathBuf::from(std::ffi::OsStr::from_bytes(&parts.concat()))),
            false => Joined::Stack(bytes, len),
        }
    }

    /// Opened for reading.
    pub(in crate::metrics) fn open(&self) -> std::io::Result<std::fs::File> {
        use std::os::fd::{FromRawFd, OwnedFd};
        let bytes = match self {
            Joined::Stack(bytes, _) => bytes,
            Joined::Heap(path) => return std::fs::File::open(path),
        };
        // SAFETY: `bytes` holds the path and a NUL after it ([`Joined::of`] left the rest of
        // the buffer zero and put no NUL inside the path).
        let fd = unsafe { libc::open64(bytes.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `open` just returned this descriptor, owned by nothing else.
        Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Whether the file exists (following symbolic links, as [`Path::exists`] does).
    pub(in crate::metrics) fn exists(&self) -> bool {
        match self {
            // SAFETY: as in `open`, a NUL-terminated path.
            Joined::Stack(bytes, _) => unsafe {
                libc::access(bytes.as_ptr().cast(), libc::F_OK) == 0
            },
            Joined::Heap(path) => path.exists(),
        }
    }
}

/// Whether the first `len` bytes of `bytes`, which has a NUL at `len`, hold one: the first
/// NUL is found by `strlen(3)`, whose vector code takes 20 instructions over a cgroup file's
/// path, where `contains` (core's `memchr`) took 100, twice the open's own, a dozen times a
/// probe. `strlen` is one of the symbols std imports anyway.
fn has_nul(bytes: &[u8; STACK], len: usize) -> bool {
    if bytes.get(len) != Some(&0) {
        return true;
    }
    // SAFETY: `bytes[len]` is a NUL, so `strlen` reads within the buffer.
    unsafe { libc::strlen(bytes.as_ptr().cast()) < len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_a_name_to_a_directory_on_the_stack() {
        let joined = in_dir(Path::new("/sys/fs/cgroup/memory/"), "memory.stat");
        assert!(matches!(joined, Joined::Stack(..)));
        assert_eq!(&*joined, Path::new("/sys/fs/cgroup/memory/memory.stat"));
        let joined = in_dir(Path::new("/"), "x");
        assert_eq!(&*joined, Path::new("/x"));
    }

    #[test]
    fn a_system_file_is_under_the_root_as_under_puts_it() {
        let online = "/sys/devices/system/cpu/online";
        for root in ["/", "/tmp/tree", "/tmp/tree/", ""] {
            for absolute in [online, "//sys/x", "/sys/x/", "sys/x"] {
                let joined = in_root(Path::new(root), absolute);
                assert_eq!(*joined, *super::super::under(Path::new(root), &[absolute]));
            }
        }
        assert!(matches!(in_root(Path::new("/"), online), Joined::Stack(..)));
    }

    #[test]
    fn long_or_odd_paths_go_to_the_heap() {
        let long = format!("/{}", "d".repeat(STACK));
        let joined = in_dir(Path::new(&long), "f");
        assert!(matches!(joined, Joined::Heap(_)));
        assert_eq!(*joined, *Path::new(&long).join("f"));
        // Exactly one byte too long for the NUL.
        let fits = "e".repeat(STACK - 1);
        assert!(matches!(Joined::new(Path::new(&fits)), Joined::Stack(..)));
        let over = "e".repeat(STACK);
        assert!(matches!(Joined::new(Path::new(&over)), Joined::Heap(_)));
        // A NUL anywhere in a path: its first byte, about the word and vector widths `strlen`
        // reads by, and the buffer's last bytes.
        for at in [0, 1, 15, 16, 17, 31, 40, STACK - 17, STACK - 16, STACK - 2] {
            let mut path = "p".repeat(STACK - 1).into_bytes();
            path[at] = 0;
            for len in [at + 1, (at + 2).min(STACK - 1), STACK - 1] {
                let mut bytes = [0; STACK];
                bytes[..len].copy_from_slice(&path[..len]);
                assert!(has_nul(&bytes, len), "NUL at {at} of {len}");
                assert!(!has_nul(&bytes, at), "none before {at}");
            }
        }
        // A NUL inside is no file name: std::fs refuses it rather than opening a prefix.
        let nul = in_dir(Path::new("/proc/self"), "cgroup\0x");
        assert!(matches!(nul, Joined::Heap(_)));
        assert!(nul.open().is_err());
        assert!(!nul.exists());
    }

    #[test]
    fn opens_and_tests_real_files() {
        let dir = std::env::temp_dir().join(format!("lbf-joined-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("one"), "1\n").unwrap();
        let one = in_dir(&dir, "one");
        assert!(one.exists());
        let mut text = String::new();
        std::io::Read::read_to_string(&mut one.open().unwrap(), &mut text).unwrap();
        assert_eq!(text, "1\n");
        let none = in_dir(&dir, "none");
        assert!(!none.exists());
        assert_eq!(
            none.open().unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
