//! Unix: the state directory's file operations as openat, renameat and unlinkat on one
//! directory fd (no links followed, no blocking opens), files handed to the agent's user
//! when root writes, and whether that user may write the directory.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::Dir;
use crate::state::error::{Denied, Ownership};
// glibc's open64, the name std's own files call: one imported symbol for both in the plain
// build, whose dynamic loader pays 0.7 k instructions a probe for each.
#[cfg(not(target_os = "linux"))]
use libc::open;
#[cfg(target_os = "linux")]
use libc::open64 as open;

const READ: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
const WRITE: libc::c_int = libc::O_WRONLY
    | libc::O_CREAT
    | libc::O_NOFOLLOW
    | libc::O_NONBLOCK
    | libc::O_NOCTTY
    | libc::O_CLOEXEC;
const READ_WRITE: libc::c_int = libc::O_RDWR
    | libc::O_CREAT
    | libc::O_NOFOLLOW
    | libc::O_NONBLOCK
    | libc::O_NOCTTY
    | libc::O_CLOEXEC;
const CREATE_NEW: libc::c_int = libc::O_WRONLY
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_NOFOLLOW
    | libc::O_NOCTTY
    | libc::O_CLOEXEC;
const MODE: libc::c_uint = 0o644;

fn c_name(name: &str) -> io::Result<CString> {
    // One name in the directory, never a path: a '/' would leave it.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a plain file name",
        ));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    match result {
        -1 => Err(io::Error::last_os_error()),
        ok => Ok(ok),
    }
}

fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The directory opened last, kept open with its device and inode: lb-feedback-service opens
/// the same state directory for every poll, and the open, the fstat and the close cost
/// more than one lstat, which is all a reuse takes (docs/BENCHMARKS.md). It is reused only
/// while its path still names that very directory (the kept descriptor holds the inode, so
/// its number cannot go to another); the owner is read afresh each time.
static LAST: Mutex<Option<Kept>> = Mutex::new(None);

/// The path, the descriptor, and the device and inode it was opened at.
type Kept = (PathBuf, Arc<OwnedFd>, (u64, u64));

pub fn open_dir(path: &Path) -> io::Result<Dir> {
    let last = LAST.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if let Some((kept, fd, id)) = last.filter(|(kept, _, _)| kept == path) {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.is_dir() && (meta.dev(), meta.ino()) == id {
            return Ok(Dir {
                path: kept,
                fd,
                owner: (meta.uid(), meta.gid()),
            });
        }
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: a valid C string and plain flags.
    let fd = match check(unsafe { open(c_path.as_ptr(), flags) }) {
        // O_DIRECTORY wins over O_NOFOLLOW in the error Linux gives for a link.
        Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) && is_link(path) => {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        other => Arc::new(owned(other?)),
    };
    // Borrowed for one fstat, not closed: `fd` owns it.
    // SAFETY: a descriptor we own, open for as long as the borrow.
    let meta =
        std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) }).metadata()?;
    *LAST.lock().unwrap_or_else(PoisonError::into_inner) =
        Some((path.to_path_buf(), fd.clone(), (meta.dev(), meta.ino())));
    Ok(Dir {
        path: path.to_path_buf(),
        fd,
        owner: (meta.uid(), meta.gid()),
    })
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink())
}

fn open_at(dir: &Dir, name: &str, flags: libc::c_int) -> io::Result<File> {
    let c_name = c_name(name)?;
    // SAFETY: a directory fd we own, a valid C string, plain flags and mode.
    let fd = check(unsafe { libc::openat(dir.fd.as_raw_fd(), c_name.as_ptr(), flags, MODE) })?;
    Ok(File::from(owned(fd)))
}

/// Opens for reading without updating the access time where the kernel lets this user
/// (the file's owner, or root): the poller table is read after every write, and under
/// relatime each of those reads would write the inode again. Plain otherwise.
#[cfg(target_os = "linux")]
fn open_to_read(dir: &Dir, name: &str, flags: libc::c_int) -> io::Result<File> {
    match open_at(dir, name, flags | libc::O_NOATIME) {
        Err(err) if err.raw_os_error() == Some(libc::EPERM) => open_at(dir, name, flags),
        other => other,
    }
}

#[cfg(not(target_os = "linux"))]
fn open_to_read(dir: &Dir, name: &str, flags: libc::c_int) -> io::Result<File> {
    open_at(dir, name, flags)
}

pub fn open_read(dir: &Dir, name: &str) -> io::Result<File> {
    open_to_read(dir, name, READ)
}

pub fn open_write(dir: &Dir, name: &str) -> io::Result<File> {
    let file = open_at(dir, name, WRITE)?;
    hand_over(dir, &file)?;
    Ok(file)
}

pub fn open_rw(dir: &Dir, name: &str) -> io::Result<File> {
    let file = open_to_read(dir, name, READ_WRITE)?;
    hand_over(dir, &file)?;
    Ok(file)
}

pub fn create_new(dir: &Dir, name: &str) -> io::Result<File> {
    let file = open_at(dir, name, CREATE_NEW)?;
    if let Err(err) = hand_over(dir, &file) {
        let _ = remove(dir, name);
        return Err(err);
    }
    Ok(file)
}

/// Root writing into a directory another user owns gives the file to that user, so the
/// agent running as them can still replace it. Only a file root itself owns is handed over.
fn hand_over(dir: &Dir, file: &File) -> io::Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 || dir.owner.0 == 0 || file.metadata()?.uid() != 0 {
        return Ok(());
    }
    // SAFETY: an fd we own.
    check(unsafe { libc::fchown(file.as_raw_fd(), dir.owner.0, dir.owner.1) }).map(drop)
}

/// Whether `owner` (this process's user when `None`) may create and remove files in the
/// directory at `path`; `Err` says why not.
pub fn writable_by(path: &Path, owner: Option<&str>) -> Result<(), Denied> {
    let meta = std::fs::metadata(path).map_err(|err| Denied::Stat {
        error: err.to_string(),
    })?;
    let mode = meta.mode() & 0o7777;
    let ownership = Ownership {
        uid: meta.uid(),
        gid: meta.gid(),
        mode,
    };
    let ids = match owner {
        Some(user) => Some(
            user_ids(user)
                .map_err(|err| Denied::Passwd {
                    error: err.to_string(),
                })?
                .ok_or_else(|| Denied::NoUser { user: user.into() })?,
        ),
        None => None,
    };
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let (uid, gid) = match ids {
        Some((uid, gid)) if uid != me => (uid, gid),
        // This process is the agent's user: the kernel answers, read-only mounts included.
        _ => {
            return writable_path(path).map_err(|err| Denied::Refused {
                error: err.to_string(),
                ownership,
            });
        }
    };
    if read_only(path) {
        return Err(Denied::ReadOnlyFileSystem);
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let bits = if uid == 0 {
        0o7
    } else if meta.uid() == uid {
        mode >> 6
    } else if gid == meta.gid() || super::in_group(&groups, owner.unwrap_or_default(), meta.gid()) {
        mode >> 3
    } else {
        mode
    };
    match bits & 0o3 == 0o3 {
        true => Ok(()),
        false => Err(Denied::Mode(ownership)),
    }
}

fn writable_path(path: &Path) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
    // SAFETY: a valid C string.
    check(unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) }).map(drop)
}

fn read_only(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string and a zeroed statvfs for the kernel to fill.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let done = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } == 0;
    done && stat.f_flag & libc::ST_RDONLY != 0
}

/// Hands a directory root just made to `user` (and the user's group).
pub fn give_to(mut dir: Dir, user: &str) -> io::Result<Dir> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(dir);
    }
    let (uid, gid) = user_ids(user)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no such user; create it (adduser --system --group --no-create-home {user}) or change state_owner"
            ),
        )
    })?;
    // SAFETY: an fd we own.
    check(unsafe { libc::fchown(dir.fd.as_raw_fd(), uid, gid) })?;
    dir.owner = (uid, gid);
    Ok(dir)
}

/// The user's ids from /etc/passwd, where system users (adduser --system, sysusers.d)
/// always are. Not getpwnam: in the static probe glibc's NSS code it pulls in costs 0.2 MB
/// of binary and of every probe's RSS, for a lookup only `mode` makes.
fn user_ids(user: &str) -> io::Result<Option<(libc::uid_t, libc::gid_t)>> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    Ok(super::passwd_ids(&passwd, user))
}

pub fn rename(dir: &Dir, from: &str, to: &str) -> io::Result<()> {
    let (from, to) = (c_name(from)?, c_name(to)?);
    let fd = dir.fd.as_raw_fd();
    // SAFETY: a directory fd we own and valid C strings.
    check(unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) }).map(drop)
}

pub fn remove(dir: &Dir, name: &str) -> io::Result<()> {
    let name = c_name(name)?;
    // SAFETY: a directory fd we own and a valid C string.
    check(unsafe { libc::unlinkat(dir.fd.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

pub fn sync_dir(dir: &Dir) -> io::Result<()> {
    // SAFETY: a directory fd we own.
    check(unsafe { libc::fsync(dir.fd.as_raw_fd()) }).map(drop)
}

pub fn write_at_start(file: &File, bytes: &[u8]) -> io::Result<()> {
    write_at(file, bytes, 0)
}

pub fn read_at(file: &File, bytes: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match std::os::unix::fs::FileExt::read_at(file, bytes, offset) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

pub fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

pub fn writable(dir: &Dir) -> bool {
    // The plain faccessat (real ids, which are the effective ones for the agent): the
    // kernel answers it, read-only mounts included, without glibc's AT_EACCESS emulation.
    // SAFETY: a directory fd we own and a constant name.
    let result = unsafe {
        libc::faccessat(
            dir.fd.as_raw_fd(),
            c".".as_ptr(),
            libc::W_OK | libc::X_OK,
            0,
        )
    };
    result == 0
}
