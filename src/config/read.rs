//! Reading the config file, bounded and never blocking: the path is followed (an admin's
//! config may well be a symlink), but what it names must be a regular file of at most
//! [`MAX_BYTES`], opened without blocking (a FIFO would hold `open` until a writer comes) and
//! read in chunks with a deadline between them. A single read stuck in the kernel (a hung
//! network file system) is not bounded by it; lb-feedback-service therefore reloads on a
//! thread of its own, which a stop does not wait for.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::ioerr::io_reason;

/// The largest config file read: a real one is a few KiB, a thousand profiles of ten
/// monitors each well under 1 MiB, and the cap keeps a runaway or hostile file from costing
/// each poll its time and memory.
pub const MAX_BYTES: u64 = 1024 * 1024;
/// The longest the reading of one config file may take.
pub const READ_TIME: Duration = Duration::from_secs(2);
/// Read between two looks at the deadline.
const CHUNK: u64 = 64 * 1024;

/// Why the file was not read; its `Display` is the reason, for "PATH: REASON".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unread {
    Missing,
    /// Opening or reading failed: the I/O error's reason.
    CannotRead {
        reason: String,
    },
    CannotStat {
        reason: String,
    },
    NotRegular {
        kind: &'static str,
    },
    /// Its size when it was opened.
    TooBig {
        len: u64,
    },
    /// Not read within [`READ_TIME`].
    Stalled,
    /// Past [`MAX_BYTES`] while it was read.
    Grew,
    /// Not UTF-8 from this byte on.
    NotUtf8 {
        at: usize,
    },
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Missing => f.write_str("cannot read: No such file or directory"),
            Unread::CannotRead { reason } => write!(f, "cannot read: {reason}"),
            Unread::CannotStat { reason } => write!(f, "cannot stat: {reason}"),
            Unread::NotRegular { kind } => write!(f, "not a regular file (a {kind})"),
            Unread::TooBig { len } => f.write_str(&over(*len)),
            Unread::Stalled => write!(
                f,
                "not read within {} s; is it on a stalled file system?",
                READ_TIME.as_secs()
            ),
            Unread::Grew => write!(f, "it grew past {}", limit()),
            Unread::NotUtf8 { at } => write!(f, "not UTF-8 text (at byte {at})"),
        }
    }
}

/// The file's text.
pub fn read(path: &Path) -> Result<String, Unread> {
    let file = open_nonblocking(path).map_err(|err| match err.kind() {
        ErrorKind::NotFound => Unread::Missing,
        _ => Unread::CannotRead {
            reason: io_reason(&err),
        },
    })?;
    let meta = file.metadata().map_err(|err| Unread::CannotStat {
        reason: io_reason(&err),
    })?;
    if !meta.is_file() {
        return Err(Unread::NotRegular {
            kind: kind(&meta.file_type()),
        });
    }
    if meta.len() > MAX_BYTES {
        return Err(Unread::TooBig { len: meta.len() });
    }
    let bytes = read_bounded(file, meta.len(), Instant::now() + READ_TIME)?;
    String::from_utf8(bytes).map_err(|err| Unread::NotUtf8 {
        at: err.utf8_error().valid_up_to(),
    })
}

/// `path` opened for reading, links followed, without blocking: a FIFO put where a file
/// should be would hold `open` until a writer comes; this way it opens, for the caller's
/// regular-file check to refuse.
pub fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NONBLOCK | libc::O_NOCTTY,
    );
    options.open(path)
}

/// At most [`MAX_BYTES`] (the file may have grown since its size, `expected`, was looked
/// at), by `deadline`.
fn read_bounded(file: File, expected: u64, deadline: Instant) -> Result<Vec<u8>, Unread> {
    // Room for the size the file had, and the byte that tells it grew: the chunks are read
    // straight into it. A zeroed 64 KiB chunk buffer cost every probe 65 k instructions
    // (glibc clears it with `rep stosb`, which valgrind counts byte by byte).
    let mut bytes = Vec::with_capacity(expected.min(MAX_BYTES) as usize + 1);
    let mut limited = file.take(MAX_BYTES + 1);
    loop {
        if Instant::now() > deadline {
            return Err(Unread::Stalled);
        }
        match (&mut limited).take(CHUNK).read_to_end(&mut bytes) {
            // Short of a whole chunk: the end of the file (or of the limit) came first.
            Ok(read) if (read as u64) < CHUNK => break,
            Ok(_) => {}
            Err(err) => {
                return Err(Unread::CannotRead {
                    reason: io_reason(&err),
                });
            }
        }
    }
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Unread::Grew);
    }
    Ok(bytes)
}

fn limit() -> String {
    format!("the {} MiB limit", MAX_BYTES / (1024 * 1024))
}

/// "75 MB is over the 1 MiB limit": exact bytes near the limit, where rounding would hide
/// how far over it is.
fn over(len: u64) -> String {
    let size = match len {
        0..10_000_000 => format!("{len} bytes"),
        10_000_000..10_000_000_000 => format!("{} MB", (len + 500_000) / 1_000_000),
        _ => format!("{} GB", (len + 500_000_000) / 1_000_000_000),
    };
    format!("{size} is over {}", limit())
}

fn kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "device";
        }
        if kind.is_socket() {
            return "socket";
        }
    }
    if kind.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_over_the_limit_are_said_plainly() {
        assert_eq!(over(1_048_577), "1048577 bytes is over the 1 MiB limit");
        assert_eq!(over(75_300_000), "75 MB is over the 1 MiB limit");
        assert_eq!(over(1_610_612_736), "1611 MB is over the 1 MiB limit");
        assert_eq!(over(12_400_000_000), "12 GB is over the 1 MiB limit");
    }

    #[test]
    fn a_file_at_the_limit_is_read_and_one_past_it_refused() {
        let dir = std::env::temp_dir().join(format!("lbf-config-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.json");
        let at_limit = " ".repeat(MAX_BYTES as usize);
        std::fs::write(&path, &at_limit).unwrap();
        assert_eq!(read(&path).unwrap().len(), at_limit.len());
        std::fs::write(&path, at_limit + " ").unwrap();
        assert_eq!(
            read(&path).unwrap_err().to_string(),
            "1048577 bytes is over the 1 MiB limit"
        );
        std::fs::write(&path, b"{\xff}").unwrap();
        assert_eq!(
            read(&path).unwrap_err().to_string(),
            "not UTF-8 text (at byte 1)"
        );
        assert_eq!(read(&dir.join("none")), Err(Unread::Missing));
        assert_eq!(
            read(&dir).unwrap_err().to_string(),
            "not a regular file (a directory)"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
