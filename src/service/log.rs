//! Where `lb-feedback-service` says what went wrong: stderr in the foreground; when the Windows
//! Service Control Manager runs it (a service has no console), the Application event log
//! (source `lb-feedback`, the default) or a file under `%ProgramData%\lb-feedback`
//! (`--service-log file`). One line per problem; `--verbose` adds the listening addresses, one
//! line per sample (its number, how long it took, how many probes shared it) and the stop.
//! Each line has a [`Level`], which only the event log shows (as the event's type).
//!
//! Writing never blocks the caller: a line goes into a queue of [`QUEUE_LINES`] and a thread
//! of its own (`lbf-log`) writes it. A stderr that nobody reads (a full pipe, a stopped
//! terminal, a stalled journald) blocks only that thread; while the queue is full, lines are
//! dropped and counted, and the count is written as soon as the writer moves again
//! ("1234 log lines dropped: the log could not keep up"). [`Log::flush`] waits, for a bounded
//! time, until what was queued is written: the stop uses it for its last lines.

use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Instant, SystemTime};

use super::lock;
pub use crate::eventlog::Level;

/// A log file is moved aside to `<name>.old` when it would pass this size, so a problem that
/// repeats every poll for weeks cannot fill the disk; the previous `.old` is replaced.
pub const FILE_LIMIT: u64 = 1 << 20;
/// Lines waiting for the writer; beyond, they are dropped and counted.
pub const QUEUE_LINES: usize = 256;

pub struct Log {
    /// `None` only if the writer thread could not be started: lines are then written by the
    /// caller, as before there was a queue.
    queue: Option<SyncSender<(Level, String)>>,
    inline: Option<Mutex<Sink>>,
    progress: Arc<Progress>,
    style: Style,
    verbose: bool,
}

/// How a line starts: stderr's name the program, a file's the UTC time, an event nothing
/// (Event Viewer shows the source and the time beside it).
#[derive(Clone, Copy)]
enum Style {
    Named,
    Stamped,
    #[cfg(windows)]
    Bare,
}

/// What the writer has done, for [`Log::flush`] and the dropped count.
#[derive(Default)]
struct Progress {
    queued: AtomicU64,
    dropped: AtomicU64,
    written: Mutex<u64>,
    moved: Condvar,
}

enum Sink {
    Stderr,
    File(FileLog),
    #[cfg(windows)]
    EventLog(crate::eventlog::EventLog),
    #[cfg(test)]
    Test(Box<dyn Write + Send>),
}

struct FileLog {
    path: PathBuf,
    file: Option<File>,
    size: u64,
}

impl Log {
    pub fn stderr(verbose: bool) -> Log {
        Log::start(Sink::Stderr, Style::Named, verbose)
    }

    /// Appends to `path`, creating it and its directory on the first line. Lines are prefixed
    /// with the UTC time, which stderr does not need (journald and consoles add their own).
    pub fn file(path: PathBuf, verbose: bool) -> Log {
        let file = FileLog {
            path,
            file: None,
            size: 0,
        };
        Log::start(Sink::File(file), Style::Stamped, verbose)
    }

    /// Reports to the Application event log as the source `lb-feedback`; lines are not
    /// stamped (each event has its time). Fails when the source cannot be opened.
    #[cfg(windows)]
    pub fn event_log(verbose: bool) -> std::io::Result<Log> {
        let events = crate::eventlog::EventLog::open()?;
        Ok(Log::start(Sink::EventLog(events), Style::Bare, verbose))
    }

    fn start(sink: Sink, style: Style, verbose: bool) -> Log {
        let progress = Arc::new(Progress::default());
        let (sender, receiver) = mpsc::sync_channel::<(Level, String)>(QUEUE_LINES);
        let sink = Arc::new(Mutex::new(Some(sink)));
        let for_writer = (sink.clone(), progress.clone());
        let spawned = std::thread::Builder::new()
            .name("lbf-log".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let (sink, progress) = for_writer;
                let Some(mut sink) = lock(&sink).take() else {
                    return;
                };
                // Ends when the Log, and with it the sender, is dropped.
                for (level, line) in receiver {
                    sink.write(level, &line);
                    let dropped = progress.dropped.swap(0, Ordering::Relaxed);
                    if dropped > 0 {
                        sink.write(Level::Warning, &dropped_line(dropped, style));
                    }
                    *lock(&progress.written) += 1;
                    progress.moved.notify_all();
                }
            });
        let (queue, inline) = match spawned {
            Ok(_) => (Some(sender), None),
            Err(_) => (None, lock(&sink).take().map(Mutex::new)),
        };
        Log {
            queue,
            inline,
            progress,
            style,
            verbose,
        }
    }

    #[cfg(test)]
    fn test(writer: Box<dyn Write + Send>) -> Log {
        Log::start(Sink::Test(writer), Style::Named, false)
    }

    /// Something went wrong: always written.
    pub fn problem(&self, message: impl Display) {
        self.write(Level::Warning, message);
    }

    /// The service cannot go on (it did not start, or stops on an error): always written.
    pub fn failure(&self, message: impl Display) {
        self.write(Level::Error, message);
    }

    /// Worth a line without `--verbose` (the service started or stopped): always written.
    pub fn info(&self, message: impl Display) {
        self.write(Level::Information, message);
    }

    /// Whether lines go to the Windows event log.
    pub fn is_event_log(&self) -> bool {
        #[cfg(windows)]
        return matches!(self.style, Style::Bare);
        #[cfg(not(windows))]
        false
    }

    /// What `--verbose` asks for; nothing otherwise.
    pub fn note(&self, message: impl Display) {
        if self.verbose {
            self.write(Level::Information, message);
        }
    }

    fn write(&self, level: Level, message: impl Display) {
        let line = line(message, self.style);
        if let Some(queue) = &self.queue {
            match queue.try_send((level, line)) {
                Ok(()) => {
                    self.progress.queued.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.progress.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else if let Some(sink) = &self.inline {
            lock(sink).write(level, &line);
        }
    }

    /// Waits until every line queued so far is written, or `until`; whether they all were.
    pub fn flush(&self, until: Instant) -> bool {
        let target = self.progress.queued.load(Ordering::Relaxed);
        let mut written = lock(&self.progress.written);
        while *written < target {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            written = match self.progress.moved.wait_timeout(written, left) {
                Ok((written, _)) => written,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}

/// One whole line, written with one call so that lines from threads never interleave.
fn line(message: impl Display, style: Style) -> String {
    match style {
        Style::Stamped => format!(
            "{} {message}\n",
            crate::clock::utc_timestamp(SystemTime::now())
        ),
        Style::Named => format!("lb-feedback-service: {message}\n"),
        #[cfg(windows)]
        Style::Bare => format!("{message}\n"),
    }
}

fn dropped_line(dropped: u64, style: Style) -> String {
    line(
        format!(
            "{dropped} log line{} dropped: the log could not keep up",
            if dropped == 1 { "" } else { "s" }
        ),
        style,
    )
}

impl Sink {
    // Only the event log has a use for the level.
    #[cfg_attr(not(windows), expect(unused_variables))]
    fn write(&mut self, level: Level, line: &str) {
        match self {
            // A closed stderr leaves nowhere to report that; the service carries on.
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::File(file) => file.append(line),
            // A failed report has nowhere else to go either; the next line tries again.
            #[cfg(windows)]
            Sink::EventLog(events) => {
                let _ = events.report(level, line.trim_end());
            }
            #[cfg(test)]
            Sink::Test(writer) => {
                let _ = writer.write_all(line.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn file_log_appends_stamped_lines_and_rotates() {
        let dir = std::env::temp_dir().join(format!("lbf-log-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("service.log");
        let log = Log::file(path.clone(), false);
        log.note("not verbose: dropped");
        log.problem("first problem");
        assert!(log.flush(Instant::now() + Duration::from_secs(5)));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with("Z first problem\n"), "{text:?}");
        let big = "x".repeat(1000);
        for _ in 0..(FILE_LIMIT / 1000 + 5) {
            log.problem(&big);
            // Written, not dropped: this test is about the file's size.
            assert!(log.flush(Instant::now() + Duration::from_secs(5)));
        }
        let current = fs::metadata(&path).unwrap().len();
        let old = fs::metadata(old_path(&path)).unwrap().len();
        assert!(current < 100_000, "{current}");
        assert!(old <= FILE_LIMIT && old > FILE_LIMIT - 2000, "{old}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A writer that blocks until the test lets it go, as a stderr nobody reads does.
    struct Stalled {
        gate: Arc<(Mutex<bool>, Condvar)>,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (open, changed) = &*self.gate;
            let mut open = lock(open);
            while !*open {
                open = changed.wait(open).unwrap();
            }
            lock(&self.out).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_never_blocks_the_caller_and_drops_are_counted() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let out = Arc::new(Mutex::new(Vec::new()));
        let log = Log::test(Box::new(Stalled {
            gate: gate.clone(),
            out: out.clone(),
        }));
        let began = Instant::now();
        for n in 0..10_000 {
            log.problem(format!("line {n}"));
        }
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{:?}",
            began.elapsed()
        );
        assert!(!log.flush(Instant::now() + Duration::from_millis(20)));
        *lock(&gate.0) = true;
        gate.1.notify_all();
        assert!(log.flush(Instant::now() + Duration::from_secs(5)));
        let text = String::from_utf8(lock(&out).clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // The writer held one line, the queue the next QUEUE_LINES; the rest were counted,
        // and the count follows the first line written after the stall.
        let kept = lines.iter().filter(|l| l.contains(": line ")).count();
        let dropped: u64 = lines
            .iter()
            .find_map(|l| l.strip_suffix(" log lines dropped: the log could not keep up"))
            .and_then(|l| l.strip_prefix("lb-feedback-service: "))
            .expect("a dropped count")
            .parse()
            .unwrap();
        assert!(kept <= QUEUE_LINES + 1, "{kept}");
        assert_eq!(kept as u64 + dropped, 10_000);
        assert_eq!(lines[0], "lb-feedback-service: line 0");
        assert!(lines[1].ends_with("log lines dropped: the log could not keep up"));
    }
}
