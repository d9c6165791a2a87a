//! Every file operation in the state directory, and nothing else. The agent's unprivileged user
//! can write there while root runs `lb-feedback mode`, so every name in it is hostile: the
//! directory is opened once without following links and everything is done relative to it;
//! reads open without following links and without blocking, take regular files only, and at
//! most `MAX_READ` bytes; new files are exclusive temp files with unpredictable names, renamed
//! into place. Errors name the path and the problem, never the content.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::StateError;
use crate::ioerr::io_reason;

/// The most a state file may hold: ours are under 200 bytes.
pub const MAX_READ: u64 = 4096;

/// How many unpredictable temp names are tried before giving up (each collision is someone
/// planting names, or a 1 in 2^64 chance).
const TEMP_TRIES: usize = 8;

/// The state directory, opened.
pub struct Dir {
    path: PathBuf,
    #[cfg(unix)]
    fd: std::os::fd::OwnedFd,
    /// The directory's owner and group: files root creates are handed to them.
    #[cfg(unix)]
    owner: (libc::uid_t, libc::gid_t),
}

impl Dir {
    /// Opens the directory; `None` when it does not exist.
    pub fn open(path: &Path) -> Result<Option<Dir>, StateError> {
        match sys::open_dir(path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(error(path, &err)),
            Ok(dir) => Ok(Some(dir)),
        }
    }

    /// Creates the directory (and its parents) and opens it. Root gives the new directory to
    /// `owner` when one is named, so the agent running as that user can write there.
    pub fn create(path: &Path, owner: Option<&str>) -> Result<Dir, StateError> {
        std::fs::create_dir_all(path).map_err(|err| error(path, &err))?;
        let dir = sys::open_dir(path).map_err(|err| error(path, &err))?;
        match owner {
            Some(user) => sys::give_to(dir, user).map_err(|err| StateError {
                path: path.to_path_buf(),
                message: format!("created, but cannot give it to state_owner {user:?}: {err}"),
            }),
            None => Ok(dir),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The content of `name`; `None` when there is no such file.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.path.join(name);
        match sys::open_read(self, name) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            other => {
                let file = other.map_err(|err| error(&path, &err))?;
                read_bounded(&file, &path, MAX_READ).map(Some)
            }
        }
    }

    /// Opens `name` for reading and writing, creating it if needed, and takes an exclusive
    /// lock on it (`flock`; `LockFileEx` on Windows), waiting at most `wait`: for a
    /// read-modify-write that concurrent probes must not interleave. `Ok(None)` when the lock
    /// was not had in time. The lock ends when the `Locked` is dropped.
    pub fn lock(&self, name: &str, wait: Duration) -> Result<Option<Locked>, StateError> {
        let path = self.path.join(name);
        let file = sys::open_rw(self, name).map_err(|err| error(&path, &err))?;
        check_regular(&file.metadata().map_err(|err| error(&path, &err))?, &path)?;
        match lock_within(&file, false, wait) {
            Ok(true) => Ok(Some(Locked { path, file })),
            Ok(false) => Ok(None),
            Err(err) => Err(error(&path, &err)),
        }
    }

    /// The content of a file others update under [`Dir::lock`], read under a shared lock, at
    /// most `limit` bytes; `None` when there is no such file. When the lock is not had within
    /// `wait` the file is read anyway: its format must tell a torn read.
    pub fn read_shared(
        &self,
        name: &str,
        limit: u64,
        wait: Duration,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.path.join(name);
        let file = match sys::open_read(self, name) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            other => other.map_err(|err| error(&path, &err))?,
        };
        check_regular(&file.metadata().map_err(|err| error(&path, &err))?, &path)?;
        let _ = lock_within(&file, true, wait);
        read_bounded(&file, &path, limit).map(Some)
    }

    /// Replaces `name` with `bytes` at once: a reader sees the old file or the new one. With
    /// `durable`, the file and the rename are on disk before this returns.
    pub fn replace(&self, name: &str, bytes: &[u8], durable: bool) -> Result<(), StateError> {
        let path = self.path.join(name);
        let (temp, mut file) = self.temp_file(name).map_err(|err| error(&path, &err))?;
        let written = (|| {
            io::Write::write_all(&mut file, bytes)?;
            if durable {
                file.sync_all()?;
            }
            drop(file);
            sys::rename(self, &temp, name)?;
            if durable {
                sys::sync_dir(self)?;
            }
            Ok(())
        })();
        written.map_err(|err: io::Error| {
            let _ = sys::remove(self, &temp);
            error(&path, &err)
        })
    }

    /// Removes `name`; a file that is not there is fine.
    pub fn remove(&self, name: &str) -> Result<(), StateError> {
        match sys::remove(self, name) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(error(&self.path.join(name), &err))
            }
            _ => Ok(()),
        }
    }

    /// Writes `bytes` over the start of `name` in place, creating it if needed, and cuts off
    /// anything longer: for a fixed-size record written so often that a rename costs too much.
    pub fn overwrite(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let path = self.path.join(name);
        let file = sys::open_write(self, name).map_err(|err| error(&path, &err))?;
        let meta = file.metadata().map_err(|err| error(&path, &err))?;
        check_regular(&meta, &path)?;
        sys::write_at_start(&file, bytes)
            .and_then(|()| match meta.len() > bytes.len() as u64 {
                true => file.set_len(bytes.len() as u64),
                false => Ok(()),
            })
            .map_err(|err| error(&path, &err))
    }

    /// Whether this process may create and remove files here (a read-only mount, another
    /// owner: no).
    pub fn writable(&self) -> bool {
        sys::writable(self)
    }

    /// A new, empty file with an unpredictable name nobody else can have opened.
    fn temp_file(&self, name: &str) -> io::Result<(String, std::fs::File)> {
        let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
        for _ in 0..TEMP_TRIES {
            let temp = format!(".{name}.{:016x}.tmp", unpredictable());
            match sys::create_new(self, &temp) {
                Ok(file) => return Ok((temp, file)),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last = err,
                Err(err) => return Err(err),
            }
        }
        Err(last)
    }
}

/// 64 bits nobody else can guess: std's per-process random SipHash keys over a counter.
fn unpredictable() -> u64 {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A file held under an exclusive lock ([`Dir::lock`]).
pub struct Locked {
    path: PathBuf,
    file: std::fs::File,
}

impl Locked {
    /// The whole content, at most `limit` bytes.
    pub fn read(&self, limit: u64) -> Result<Vec<u8>, StateError> {
        read_bounded(&self.file, &self.path, limit)
    }

    /// Writes `parts`, one after the other, over the content in place and cuts off the rest.
    /// Not atomic against a crash: the file's format must tell a torn write (the lock keeps
    /// other probes out).
    pub fn write(&self, parts: &[&[u8]]) -> Result<(), StateError> {
        let mut at = 0;
        let written = parts.iter().try_for_each(|part| {
            sys::write_at(&self.file, part, at)?;
            at += part.len() as u64;
            Ok(())
        });
        written
            .and_then(|()| self.file.set_len(at))
            .map_err(|err: io::Error| error(&self.path, &err))
    }
}

/// Takes the lock, retrying until `wait` has passed; `Ok(false)` when it was not had. std
/// offers no lock with a timeout, and a blocking one would let anyone holding the lock (the
/// agent's user can open the file) hang every probe.
fn lock_within(file: &std::fs::File, shared: bool, wait: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_micros(50);
    loop {
        let tried = match shared {
            true => file.try_lock_shared(),
            false => file.try_lock(),
        };
        match tried {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(err)) => return Err(err),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// At most `limit` bytes of a regular file with one link, from its start.
fn read_bounded(file: &std::fs::File, path: &Path, limit: u64) -> Result<Vec<u8>, StateError> {
    let meta = file.metadata().map_err(|err| error(path, &err))?;
    check_regular(&meta, path)?;
    if meta.len() > limit {
        return Err(refused(
            path,
            format!("{} bytes, more than the {limit} it may hold", meta.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Bounded again: the file may grow between fstat and read; read from the start whoever
    // read before (a locked file is read, then written, through one descriptor).
    let mut reader = file;
    io::Seek::seek(&mut reader, io::SeekFrom::Start(0)).map_err(|err| error(path, &err))?;
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| error(path, &err))?;
    if bytes.len() as u64 > limit {
        return Err(refused(path, format!("more than {limit} bytes")));
    }
    Ok(bytes)
}

fn check_regular(meta: &std::fs::Metadata, path: &Path) -> Result<(), StateError> {
    if !meta.is_file() {
        return Err(refused(
            path,
            format!(
                "not a regular file but {}; lb-feedback writes only regular files there",
                kind(meta)
            ),
        ));
    }
    #[cfg(unix)]
    if std::os::unix::fs::MetadataExt::nlink(meta) > 1 {
        return Err(refused(
            path,
            "has other hard links; lb-feedback never makes any".into(),
        ));
    }
    Ok(())
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "special"
    }
}

fn refused(path: &Path, why: String) -> StateError {
    StateError {
        path: path.to_path_buf(),
        message: format!("{why}; remove it"),
    }
}

fn error(path: &Path, err: &io::Error) -> StateError {
    let message = match err.raw_os_error() {
        #[cfg(unix)]
        Some(libc::ELOOP) => "a symbolic link, which is never followed here; remove it".into(),
        // O_NONBLOCK on a FIFO with no reader.
        #[cfg(unix)]
        Some(libc::ENXIO) => "not a regular file (a FIFO or device); remove it".into(),
        _ => io_reason(err),
    };
    StateError {
        path: path.to_path_buf(),
        message,
    }
}

/// At most `limit` bytes of a hostile file, escaped, for an error message.
pub fn preview(bytes: &[u8], limit: usize) -> String {
    let shown: String = bytes
        .iter()
        .take(limit)
        .flat_map(|byte| std::ascii::escape_default(*byte))
        .map(char::from)
        .collect();
    match bytes.len() > limit {
        true => format!("\"{shown}\"…"),
        false => format!("\"{shown}\""),
    }
}

/// Why the agent's user (`owner`, the state_owner setting, when named; else this process's
/// user) could not keep state at `path`, or `None` when it can: the directory is a link or no
/// directory, is missing and its nearest existing parent does not let that user create it, or
/// it does not let that user create files (its owner, group and mode; a read-only mount).
/// ACLs are not read: a directory writable only through one is reported unusable.
pub fn unusable(path: &Path, owner: Option<&str>) -> Option<String> {
    let who = match owner {
        Some(user) => format!("user {user}"),
        None => "this user".to_string(),
    };
    match Dir::open(path) {
        Err(err) => Some(err.to_string()),
        Ok(Some(_)) => sys::writable_by(path, owner)
            .err()
            .map(|why| format!("{} is not writable by {who} ({why})", path.display())),
        Ok(None) => {
            let parent = path.ancestors().skip(1).find(|p| p.exists())?;
            sys::writable_by(parent, owner).err().map(|why| {
                format!(
                    "{} is missing and {who} cannot create it ({}: {why})",
                    path.display(),
                    parent.display()
                )
            })
        }
    }
}

/// The uid and gid of `user` in the text of an /etc/passwd (`name:x:uid:gid:...`).
#[cfg(unix)]
fn passwd_ids(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// Whether `user` is listed in the group `gid` of an /etc/group text (`name:x:gid:a,b`).
#[cfg(unix)]
fn in_group(group: &str, user: &str, gid: u32) -> bool {
    group.lines().any(|line| {
        let mut fields = line.split(':');
        let listed = fields.nth(2).and_then(|g| g.parse::<u32>().ok()) == Some(gid);
        listed
            && fields
                .next()
                .is_some_and(|members| members.split(',').any(|m| m == user))
    })
}

#[cfg(unix)]
mod sys {
    use std::ffi::CString;
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use super::Dir;

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

    pub fn open_dir(path: &Path) -> io::Result<Dir> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid C string and plain flags.
        let fd = match check(unsafe { libc::open(c_path.as_ptr(), flags) }) {
            // O_DIRECTORY wins over O_NOFOLLOW in the error Linux gives for a link.
            Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) && is_link(path) => {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            other => owned(other?),
        };
        let meta = File::from(fd.try_clone()?).metadata()?;
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

    pub fn open_read(dir: &Dir, name: &str) -> io::Result<File> {
        open_at(dir, name, READ)
    }

    pub fn open_write(dir: &Dir, name: &str) -> io::Result<File> {
        let file = open_at(dir, name, WRITE)?;
        hand_over(dir, &file)?;
        Ok(file)
    }

    pub fn open_rw(dir: &Dir, name: &str) -> io::Result<File> {
        let file = open_at(dir, name, READ_WRITE)?;
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
    pub fn writable_by(path: &Path, owner: Option<&str>) -> Result<(), String> {
        let meta = std::fs::metadata(path).map_err(|err| err.to_string())?;
        let mode = meta.mode() & 0o7777;
        let described = format!("owned by {}:{}, mode {mode:o}", meta.uid(), meta.gid());
        let ids = match owner {
            Some(user) => Some(
                user_ids(user)
                    .map_err(|err| format!("cannot read /etc/passwd: {err}"))?
                    .ok_or_else(|| format!("no user {user} in /etc/passwd"))?,
            ),
            None => None,
        };
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        let (uid, gid) = match ids {
            Some((uid, gid)) if uid != me => (uid, gid),
            // This process is the agent's user: the kernel answers, read-only mounts included.
            _ => return writable_path(path).map_err(|err| format!("{err}; {described}")),
        };
        if read_only(path) {
            return Err("read-only file system".into());
        }
        let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let bits = if uid == 0 {
            0o7
        } else if meta.uid() == uid {
            mode >> 6
        } else if gid == meta.gid()
            || super::in_group(&groups, owner.unwrap_or_default(), meta.gid())
        {
            mode >> 3
        } else {
            mode
        };
        match bits & 0o3 == 0o3 {
            true => Ok(()),
            false => Err(described),
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
}

/// Windows (and anything else): the same checks with std, on paths. No other user shares a
/// Windows service's state directory by default (it is under ProgramData, writable by
/// administrators), so there is no owner to hand files to.
#[cfg(not(unix))]
mod sys {
    use std::fs::{self, File, OpenOptions};
    use std::io;
    use std::path::Path;

    use super::Dir;

    fn plain(dir: &Dir, name: &str) -> io::Result<std::path::PathBuf> {
        if name.is_empty() || name.contains(['/', '\\', ':']) || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a plain file name",
            ));
        }
        Ok(dir.path.join(name))
    }

    /// Links are not followed: one where a file should be is an error.
    fn no_link(path: &Path) -> io::Result<()> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a symbolic link, which is never followed here; remove it",
            )),
            Ok(_) => Ok(()),
            Err(err) => Err(err),
        }
    }

    pub fn open_dir(path: &Path) -> io::Result<Dir> {
        let meta = fs::symlink_metadata(path)?;
        if meta.file_type().is_symlink() {
            no_link(path)?;
        }
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Dir {
            path: path.to_path_buf(),
        })
    }

    pub fn open_read(dir: &Dir, name: &str) -> io::Result<File> {
        let path = plain(dir, name)?;
        no_link(&path)?;
        File::open(path)
    }

    pub fn open_write(dir: &Dir, name: &str) -> io::Result<File> {
        let path = plain(dir, name)?;
        match no_link(&path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    }

    pub fn open_rw(dir: &Dir, name: &str) -> io::Result<File> {
        let path = plain(dir, name)?;
        match no_link(&path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    }

    pub fn create_new(dir: &Dir, name: &str) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(plain(dir, name)?)
    }

    /// No owner to hand a directory to on Windows: administrators own ProgramData's.
    pub fn give_to(dir: Dir, _user: &str) -> io::Result<Dir> {
        Ok(dir)
    }

    pub fn rename(dir: &Dir, from: &str, to: &str) -> io::Result<()> {
        fs::rename(plain(dir, from)?, plain(dir, to)?)
    }

    pub fn remove(dir: &Dir, name: &str) -> io::Result<()> {
        fs::remove_file(plain(dir, name)?)
    }

    /// Windows cannot open a directory to flush it; the file's own flush is what it offers.
    pub fn sync_dir(_dir: &Dir) -> io::Result<()> {
        Ok(())
    }

    pub fn write_at_start(file: &File, bytes: &[u8]) -> io::Result<()> {
        write_at(file, bytes, 0)
    }

    pub fn write_at(mut file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(bytes)
    }

    pub fn writable(dir: &Dir) -> bool {
        fs::metadata(&dir.path).is_ok_and(|meta| !meta.permissions().readonly())
    }

    /// No other user shares it here (see above): the read-only flag is all there is to ask.
    pub fn writable_by(path: &Path, _owner: Option<&str>) -> Result<(), String> {
        match fs::metadata(path)
            .map_err(|err| err.to_string())?
            .permissions()
            .readonly()
        {
            true => Err("read-only".into()),
            false => Ok(()),
        }
    }
}

#[cfg(all(test, unix))]
mod tests;
