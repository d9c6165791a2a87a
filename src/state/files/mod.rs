//! Every file operation in the state directory, and nothing else. The agent's unprivileged user
//! can write there while root runs `lb-feedback mode`, so every name in it is hostile: the
//! directory is opened once without following links and everything is done relative to it;
//! reads open without following links and without blocking, take regular files only, and at
//! most `MAX_READ` bytes; new files are exclusive temp files with unpredictable names, renamed
//! into place. Errors name the path and the problem, never the content.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::{StateError, StateProblem, Unusable, Who};
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
    fd: std::sync::Arc<std::os::fd::OwnedFd>,
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
                problem: StateProblem::NotGiven {
                    user: user.to_string(),
                    reason: err.to_string(),
                },
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
        let meta = file.metadata().map_err(|err| error(&path, &err))?;
        check_regular(&meta, &path)?;
        match lock_within(&file, false, wait) {
            Ok(true) => Ok(Some(Locked {
                path,
                file,
                size: meta.len(),
                read_len: std::cell::Cell::new(None),
            })),
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
    /// Its size when it was opened, checked as a regular file with one link: what to read.
    size: u64,
    /// The length [`Locked::read`] found, while the lock has been held since.
    read_len: std::cell::Cell<Option<u64>>,
}

impl Locked {
    /// The whole content, at most `limit` bytes.
    pub fn read(&self, limit: u64) -> Result<Vec<u8>, StateError> {
        let bytes = read_from_start(&self.file, &self.path, limit, self.size)?;
        self.read_len.set(Some(bytes.len() as u64));
        Ok(bytes)
    }

    /// Writes `parts`, one after the other, over the content in place and cuts off the rest.
    /// Not atomic against a crash: the file's format must tell a torn write (the lock keeps
    /// other probes out).
    ///
    /// One write, and the cut only when the file was read longer than what is written (or
    /// not read): on ext4 a truncate costs as much as the write even when it cuts nothing,
    /// and the poller table is written on every poll (docs/BENCHMARKS.md). Anyone appending
    /// past what was read without the lock leaves a tail the file's checksum rejects.
    pub fn write(&self, parts: &[&[u8]]) -> Result<(), StateError> {
        let joined;
        let bytes = match parts {
            [one] => *one,
            _ => {
                joined = parts.concat();
                &joined
            }
        };
        let len = bytes.len() as u64;
        sys::write_at(&self.file, bytes, 0)
            .and_then(|()| match self.read_len.get() {
                Some(read) if read <= len => Ok(()),
                _ => self.file.set_len(len),
            })
            .map_err(|err: io::Error| error(&self.path, &err))?;
        // The file is now exactly this long.
        self.read_len.set(Some(len));
        Ok(())
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
        let len = meta.len();
        return Err(refused(path, StateProblem::TooBig { len, limit }));
    }
    read_from_start(file, path, limit, meta.len())
}

/// At most `limit` bytes from the start of a regular file about `size` long; an error when
/// there are more. Bounded again: the file may have grown since its size was seen. Read from
/// the start whoever read before (a locked file is read, then written, through one
/// descriptor), and a read shorter than asked is the end, as it is for a regular file: one
/// read for a file that has not grown.
fn read_from_start(
    file: &std::fs::File,
    path: &Path,
    limit: u64,
    size: u64,
) -> Result<Vec<u8>, StateError> {
    let mut bytes = vec![0; size.min(limit) as usize + 1];
    let mut at = 0;
    loop {
        let asked = bytes.len() - at;
        let got =
            sys::read_at(file, &mut bytes[at..], at as u64).map_err(|err| error(path, &err))?;
        at += got;
        if got < asked {
            break;
        }
        if at as u64 > limit {
            return Err(refused(path, StateProblem::Grew { limit }));
        }
        bytes.resize((at * 2).min(limit as usize + 1), 0);
    }
    bytes.truncate(at);
    Ok(bytes)
}

fn check_regular(meta: &std::fs::Metadata, path: &Path) -> Result<(), StateError> {
    if !meta.is_file() {
        let kind = kind(meta);
        return Err(refused(path, StateProblem::NotRegular { kind }));
    }
    #[cfg(unix)]
    if std::os::unix::fs::MetadataExt::nlink(meta) > 1 {
        return Err(refused(path, StateProblem::HardLinks));
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

/// A file lb-feedback never writes: the caller is told to remove it (the problem says so).
fn refused(path: &Path, problem: StateProblem) -> StateError {
    StateError {
        path: path.to_path_buf(),
        problem,
    }
}

fn error(path: &Path, err: &io::Error) -> StateError {
    let problem = match err.raw_os_error() {
        #[cfg(unix)]
        Some(libc::ELOOP) => StateProblem::SymbolicLink,
        // O_NONBLOCK on a FIFO with no reader.
        #[cfg(unix)]
        Some(libc::ENXIO) => StateProblem::FifoOrDevice,
        _ => StateProblem::Io {
            reason: io_reason(err),
        },
    };
    StateError {
        path: path.to_path_buf(),
        problem,
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
pub fn unusable(path: &Path, owner: Option<&str>) -> Option<Unusable> {
    let who = match owner {
        Some(user) => Who::User(user.to_string()),
        None => Who::ThisUser,
    };
    match Dir::open(path) {
        Err(err) => Some(Unusable::Unopenable(err)),
        Ok(Some(_)) => sys::writable_by(path, owner)
            .err()
            .map(|why| Unusable::NotWritable {
                path: path.to_path_buf(),
                who,
                why,
            }),
        Ok(None) => {
            let parent = path.ancestors().skip(1).find(|p| p.exists())?;
            sys::writable_by(parent, owner)
                .err()
                .map(|why| Unusable::CannotCreate {
                    path: path.to_path_buf(),
                    who,
                    parent: parent.to_path_buf(),
                    why,
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
mod unix;
#[cfg(unix)]
use unix as sys;

#[cfg(not(unix))]
mod other;
#[cfg(not(unix))]
use other as sys;

#[cfg(all(test, unix))]
mod tests;
