//! Where `lb-feedback-service` says what went wrong: stderr in the foreground, a file under
//! `%ProgramData%\lb-feedback` when the Windows Service Control Manager runs it (a service has
//! no console). One line per problem; `--verbose` adds the listening addresses, one line per
//! sample (its number, how long it took, how many probes shared it) and the stop.

use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::lock;

/// A log file is moved aside to `<name>.old` when it would pass this size, so a problem that
/// repeats every poll for weeks cannot fill the disk; the previous `.old` is replaced.
pub const FILE_LIMIT: u64 = 1 << 20;

pub struct Log {
    sink: Sink,
    verbose: bool,
}

enum Sink {
    Stderr,
    File(Mutex<FileLog>),
}

struct FileLog {
    path: PathBuf,
    file: Option<File>,
    size: u64,
}

impl Log {
    pub fn stderr(verbose: bool) -> Log {
        Log {
            sink: Sink::Stderr,
            verbose,
        }
    }

    /// Appends to `path`, creating it and its directory on the first line. Lines are prefixed
    /// with the UTC time, which stderr does not need (journald and consoles add their own).
    pub fn file(path: PathBuf, verbose: bool) -> Log {
        Log {
            sink: Sink::File(Mutex::new(FileLog {
                path,
                file: None,
                size: 0,
            })),
            verbose,
        }
    }

    /// Something went wrong: always written.
    pub fn problem(&self, message: impl Display) {
        self.write(message);
    }

    /// What `--verbose` asks for; nothing otherwise.
    pub fn note(&self, message: impl Display) {
        if self.verbose {
            self.write(message);
        }
    }

    fn write(&self, message: impl Display) {
        match &self.sink {
            Sink::Stderr => {
                // A closed stderr leaves nowhere to report that; the service carries on.
                let _ = writeln!(std::io::stderr().lock(), "lb-feedback-service: {message}");
            }
            Sink::File(file) => {
                let line = format!("{} {message}\n", utc_timestamp(SystemTime::now()));
                lock(file).append(&line);
            }
        }
    }
}

impl FileLog {
    fn append(&mut self, line: &str) {
        if self.file.is_none() {
            self.open();
        }
        if self.size > 0 && self.size + line.len() as u64 > FILE_LIMIT {
            self.rotate();
        }
        // An unwritable log file (permissions, full disk) cannot be reported anywhere: the
        // service has no console. The line is lost and the next one tries again.
        if let Some(file) = &mut self.file {
            match file.write_all(line.as_bytes()) {
                Ok(()) => self.size += line.len() as u64,
                Err(_) => self.file = None,
            }
        }
    }

    fn open(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .ok();
        self.size = self
            .file
            .as_ref()
            .and_then(|file| file.metadata().ok())
            .map_or(0, |meta| meta.len());
    }

    fn rotate(&mut self) {
        // Closed first: Windows cannot rename a file that is open.
        self.file = None;
        let _ = fs::rename(&self.path, old_path(&self.path));
        self.open();
    }
}

fn old_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".old");
    PathBuf::from(name)
}

/// `2026-11-25T14:58:33Z`.
pub fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days after the epoch only).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> String {
        utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn timestamps() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn file_log_appends_stamped_lines_and_rotates() {
        let dir = std::env::temp_dir().join(format!("lbf-log-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("service.log");
        let log = Log::file(path.clone(), false);
        log.note("not verbose: dropped");
        log.problem("first problem");
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with("Z first problem\n"), "{text:?}");
        let big = "x".repeat(1000);
        for _ in 0..(FILE_LIMIT / 1000 + 5) {
            log.problem(&big);
        }
        let current = fs::metadata(&path).unwrap().len();
        let old = fs::metadata(old_path(&path)).unwrap().len();
        assert!(current < 100_000, "{current}");
        assert!(old <= FILE_LIMIT && old > FILE_LIMIT - 2000, "{old}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
