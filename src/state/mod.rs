//! The state directory: the runtime mode set by `lb-feedback mode`, the time of the last
//! non-normal reply that opens the recovery window, and the CPU counters of since-last mode.
//! Every write but the counters' is a temp file and a rename, so a reader sees the old file or
//! the new one, never half of one; the counters, written by every since-last probe, are
//! overwritten in place and carry a checksum instead (see `save_cpu_counters`). All file
//! operations go through `files`, which treats the directory as hostile.

pub mod files;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{Mode, Recovery};
use crate::metrics::cpu::Counters;
use files::Dir;

const MODE_FILE: &str = "mode.json";
const LAST_FILE: &str = "last-non-normal";
const CPU_FILE: &str = "cpu-counters";

/// Milliseconds since the Unix epoch, the clock all state is written in.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A mode set with `lb-feedback mode`, winning over the config until changed or expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeMode {
    pub mode: Mode,
    pub set_at_ms: u64,
    /// When set (`--for`), the mode stops counting at this time.
    pub until_ms: Option<u64>,
}

impl RuntimeMode {
    pub fn expired(&self, now_ms: u64) -> bool {
        self.until_ms.is_some_and(|until| now_ms >= until)
    }
}

#[derive(Clone, Debug)]
pub struct StateError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for StateError {}

pub struct StateDir {
    path: PathBuf,
    /// Opened on first use, once.
    dir: OnceLock<Dir>,
    /// Whether this process created the directory (`lb-feedback mode` then says who owns it).
    created: AtomicBool,
    /// Who gets the directory when root creates it (config `state_owner`).
    owner: Option<String>,
}

impl StateDir {
    pub fn new(dir: &Path) -> StateDir {
        StateDir {
            path: dir.to_path_buf(),
            dir: OnceLock::new(),
            created: AtomicBool::new(false),
            owner: None,
        }
    }

    /// The same, giving the directory to `owner` if root has to create it.
    pub fn owned_by(self, owner: Option<&str>) -> StateDir {
        StateDir {
            owner: owner.map(str::to_string),
            ..self
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this process had to create the directory.
    pub fn created(&self) -> bool {
        self.created.load(Ordering::Relaxed)
    }

    /// The directory, if it exists.
    fn dir(&self) -> Result<Option<&Dir>, StateError> {
        if let Some(dir) = self.dir.get() {
            return Ok(Some(dir));
        }
        Ok(Dir::open(&self.path)?.map(|dir| self.dir.get_or_init(|| dir)))
    }

    /// The directory, created if missing.
    fn dir_to_write(&self) -> Result<&Dir, StateError> {
        match self.dir()? {
            Some(dir) => Ok(dir),
            None => {
                let dir = Dir::create(&self.path, self.owner.as_deref())?;
                self.created.store(true, Ordering::Relaxed);
                Ok(self.dir.get_or_init(|| dir))
            }
        }
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        match self.dir()? {
            Some(dir) => dir.read(name),
            None => Ok(None),
        }
    }

    /// Whether this process can record state here; a directory it cannot use (missing and
    /// not creatable, another owner, read-only) is not.
    pub fn writable(&self) -> bool {
        match self.dir() {
            Ok(Some(dir)) => dir.writable(),
            Ok(None) => self.dir_to_write().is_ok_and(Dir::writable),
            Err(_) => false,
        }
    }

    /// The stored runtime mode, whether or not it has expired; `None` when none is set.
    pub fn runtime_mode(&self) -> Result<Option<RuntimeMode>, StateError> {
        // A directory that cannot be opened holds no mode; the recovery state reports it as
        // unusable, and the probe answers (availability first).
        let Ok(Some(dir)) = self.dir() else {
            return Ok(None);
        };
        let Some(bytes) = dir.read(MODE_FILE)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| StateError {
                path: self.path.join(MODE_FILE),
                message: format!(
                    "not a mode file written by lb-feedback (line {}, column {}; it starts {})",
                    err.line(),
                    err.column(),
                    files::preview(&bytes, 16)
                ),
            })
    }

    /// Stores a runtime mode, or removes it (`None`) so the config's mode counts again.
    pub fn set_runtime_mode(&self, mode: Option<&RuntimeMode>) -> Result<(), StateError> {
        match mode {
            Some(mode) => {
                let text = serde_json::to_string(mode).map_err(|err| StateError {
                    path: self.path.join(MODE_FILE),
                    message: err.to_string(),
                })?;
                self.dir_to_write()?
                    .replace(MODE_FILE, text.as_bytes(), true)
            }
            None => match self.dir()? {
                Some(dir) => dir.remove(MODE_FILE),
                None => Ok(()),
            },
        }
    }

    /// When the last non-normal reply was given; `None` when no probe has recorded one.
    /// Each `agent-send` profile (`scope`) serves its own HAProxy server, so has its own.
    pub fn last_non_normal(&self, scope: Option<&str>) -> Result<Option<u64>, StateError> {
        let name = last_file(scope);
        let Some(bytes) = self.read(&name)? else {
            return Ok(None);
        };
        let parsed = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.trim().parse().ok());
        match parsed {
            Some(ms) => Ok(Some(ms)),
            None => Err(StateError {
                path: self.path.join(name),
                message: format!(
                    "expected milliseconds since the epoch, found {}",
                    files::preview(&bytes, 16)
                ),
            }),
        }
    }

    pub fn mark_non_normal(&self, scope: Option<&str>, now_ms: u64) -> Result<(), StateError> {
        // The stamp is rewritten every poll while non-normal; losing one on a crash only
        // shortens a window by one poll, so it is not worth an fsync on the hot path.
        self.dir_to_write()?
            .replace(&last_file(scope), now_ms.to_string().as_bytes(), false)
    }

    /// Removes the stamp: one that could not be brought up to date must not be trusted.
    /// (Unlinking works on a full disk, where writing the new stamp did not.)
    pub fn forget_non_normal(&self, scope: Option<&str>) -> Result<(), StateError> {
        match self.dir()? {
            Some(dir) => dir.remove(&last_file(scope)),
            None => Ok(()),
        }
    }

    /// The CPU counters the previous probe saved, and when; `None` when there are none or the
    /// record does not check out (written half, or by an older version): since-last mode then
    /// samples.
    pub fn cpu_counters(&self) -> Result<Option<CpuRecord>, StateError> {
        let bytes = self.read(CPU_FILE)?;
        Ok(bytes.and_then(|bytes| parse_counters_record(std::str::from_utf8(&bytes).ok()?)))
    }

    /// Saves the CPU counters for the next probe.
    ///
    /// Unlike the other files this one is written by every since-last probe, so it is
    /// overwritten in place, not renamed over: on ext4 a rename over an existing file starts
    /// writing the new one out at once, which cost such a probe 0.3 ms, a quarter of its wall
    /// time (docs/BENCHMARKS.md). The record has a fixed size, so no old bytes are left behind,
    /// and a checksum, so a record read while another probe writes it, or cut short by a crash,
    /// is rejected rather than misread.
    pub fn save_cpu_counters(&self, record: &CpuRecord) -> Result<(), StateError> {
        self.dir_to_write()?
            .overwrite(CPU_FILE, counters_record(record).as_bytes())
    }
}

/// What since-last mode keeps between probes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuRecord {
    pub at_ms: u64,
    pub counters: Counters,
    /// Whose counters they are: 0 for the host's, else a stamp of the cgroup and its
    /// capacity (`cgroup::CpuCapacity::id`), so they are only compared with their own kind.
    pub source: u64,
    /// The busy share of the window that ended at `at_ms`, and its length in ms: the answer
    /// for a probe that comes too soon after to measure a window of its own.
    pub last: Option<(f64, u64)>,
}

/// `AT BUSY TOTAL SOURCE LAST SPAN CHECK`: six 20-digit numbers (every u64 fits; LAST in
/// thousandths of a percent, SPAN 0 for none) and the FNV-1a hash of the text before it in 16
/// hex digits, 143 bytes with the newline whatever the values.
fn counters_record(record: &CpuRecord) -> String {
    let (last, span) = record.last.map_or((0, 0), |(busy, span)| {
        ((busy * 1000.0).round() as u64, span)
    });
    let fields = format!(
        "{:020} {:020} {:020} {:020} {last:020} {span:020}",
        record.at_ms, record.counters.busy, record.counters.total, record.source
    );
    format!("{fields} {:016x}\n", fnv1a(fields.as_bytes()))
}

fn parse_counters_record(text: &str) -> Option<CpuRecord> {
    let (fields, check) = text.lines().next()?.rsplit_once(' ')?;
    if u64::from_str_radix(check, 16).ok()? != fnv1a(fields.as_bytes()) {
        return None;
    }
    let numbers: Vec<u64> = fields
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match numbers[..] {
        [at_ms, busy, total, source, last, span] => Some(CpuRecord {
            at_ms,
            counters: Counters { busy, total },
            source,
            last: (span > 0).then(|| (last as f64 / 1000.0, span)),
        }),
        _ => None,
    }
}

/// FNV-1a, 64 bits: plenty to tell a whole record from a torn one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn last_file(scope: Option<&str>) -> String {
    match scope {
        Some(profile) => format!("{LAST_FILE}.{profile}"),
        None => LAST_FILE.to_string(),
    }
}

/// Whether this reply carries `up ready`, and why, for `--explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryDecision {
    pub recover: bool,
    pub why: String,
}

/// Decides the recovery words and records what the next probe needs to know.
///
/// `first_run_opens`: whether a missing stamp opens a window (a probe HAProxy made) or not
/// (a person at a shell, who must not use up the window HAProxy's first poll needs).
pub fn recovery(
    policy: Recovery,
    seconds: u64,
    normal: bool,
    state: &StateDir,
    scope: Option<&str>,
    now_ms: u64,
    first_run_opens: bool,
) -> RecoveryDecision {
    let decision = |recover, why: String| RecoveryDecision { recover, why };
    let unusable = |err: &dyn std::fmt::Display| {
        decision(
            true,
            format!(
                "state directory unusable ({err}); sending `up ready` always, availability first"
            ),
        )
    };
    if !normal {
        return match state.mark_non_normal(scope, now_ms) {
            Ok(()) => decision(
                false,
                "non-normal reply recorded; the window opens when it ends".into(),
            ),
            Err(err) => {
                // An older stamp left in place would close the window too early and strand
                // the server in DRAIN: without it the next probe finds the directory unusable.
                let forgot = match state.forget_non_normal(scope) {
                    Ok(()) => "the old stamp is removed",
                    Err(_) => "the old stamp could not be removed either",
                };
                decision(
                    false,
                    format!(
                        "could not record this non-normal reply ({err}); {forgot}, so later replies carry `up ready` until it can be recorded"
                    ),
                )
            }
        };
    }
    match policy {
        Recovery::Always => return decision(true, "recovery = always".into()),
        Recovery::Never => return decision(false, "recovery = never".into()),
        Recovery::Window => {}
    }
    let window_ms = seconds * 1000;
    match state.last_non_normal(scope) {
        Err(err) => unusable(&err),
        Ok(None) if first_run_opens => match state.mark_non_normal(scope, now_ms) {
            Ok(()) => decision(
                true,
                format!("first run (no state yet): window of {seconds} s opened"),
            ),
            Err(err) => unusable(&err),
        },
        Ok(None) => decision(false, "no non-normal reply recorded yet".into()),
        // The clock went back past the stamp: restart the window from now, once, so it
        // neither stays open for good (undoing operators' drains every poll) nor closes early.
        Ok(Some(last)) if last > now_ms => match state.mark_non_normal(scope, now_ms) {
            Ok(()) => decision(
                true,
                format!(
                    "last non-normal reply was {:.1} s in the future (clock stepped back); window of {seconds} s restarted now",
                    (last - now_ms) as f64 / 1000.0
                ),
            ),
            Err(err) => unusable(&err),
        },
        Ok(Some(last)) => {
            let ago = (now_ms - last) as f64 / 1000.0;
            if now_ms - last < window_ms {
                decision(
                    true,
                    format!("in window: last non-normal reply {ago:.1} s ago, window {seconds} s"),
                )
            } else if !state.writable() {
                // The stamp may be old only because later ones could not be written.
                unusable(&"cannot write to it, so its last non-normal stamp may be stale")
            } else {
                decision(
                    false,
                    format!(
                        "window closed: last non-normal reply {ago:.1} s ago, window {seconds} s"
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn temp_state(name: &str) -> StateDir {
        let dir = std::env::temp_dir().join(format!("lbf-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        StateDir::new(&dir)
    }

    #[test]
    fn runtime_mode_round_trip_and_clear() {
        let state = temp_state("mode");
        assert_eq!(state.runtime_mode().unwrap(), None);
        let mode = RuntimeMode {
            mode: Mode::Drain,
            set_at_ms: 1000,
            until_ms: Some(5000),
        };
        state.set_runtime_mode(Some(&mode)).unwrap();
        let read = state.runtime_mode().unwrap().unwrap();
        assert_eq!(read, mode);
        assert!(!read.expired(4999));
        assert!(read.expired(5000));
        state.set_runtime_mode(None).unwrap();
        assert_eq!(state.runtime_mode().unwrap(), None);
        state.set_runtime_mode(None).unwrap();
        let leftovers: Vec<_> = fs::read_dir(state.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
        fs::remove_dir_all(state.path()).unwrap();
    }

    #[test]
    fn corrupt_mode_file_is_an_error_not_a_guess() {
        let state = temp_state("corrupt");
        fs::create_dir_all(state.path()).unwrap();
        fs::write(state.path().join(MODE_FILE), "{\"mode\":").unwrap();
        let err = state.runtime_mode().unwrap_err();
        assert!(err.message.contains("not a mode file"), "{err}");
        fs::remove_dir_all(state.path()).unwrap();
    }

    #[test]
    fn window_follows_a_non_normal_reply() {
        let state = temp_state("window");
        let d = recovery(Recovery::Window, 10, false, &state, None, 1_000, true);
        assert!(!d.recover);
        assert_eq!(state.last_non_normal(None).unwrap(), Some(1_000));
        assert!(recovery(Recovery::Window, 10, true, &state, None, 10_999, true).recover);
        assert!(!recovery(Recovery::Window, 10, true, &state, None, 11_000, true).recover);
        // A clock that went back recovers, and the window restarts from then.
        assert!(recovery(Recovery::Window, 10, true, &state, None, 500, true).recover);
        assert_eq!(state.last_non_normal(None).unwrap(), Some(500));
        assert!(!recovery(Recovery::Window, 10, true, &state, None, 10_500, true).recover);
        fs::remove_dir_all(state.path()).unwrap();
    }

    #[test]
    fn first_run_opens_a_window_only_for_probes_from_haproxy() {
        let state = temp_state("first");
        let by_hand = recovery(Recovery::Window, 10, true, &state, None, 1_000, false);
        assert!(!by_hand.recover);
        assert_eq!(state.last_non_normal(None).unwrap(), None);
        let probe = recovery(Recovery::Window, 10, true, &state, None, 1_000, true);
        assert!(probe.recover, "{probe:?}");
        assert!(recovery(Recovery::Window, 10, true, &state, None, 5_000, true).recover);
        assert!(!recovery(Recovery::Window, 10, true, &state, None, 12_000, true).recover);
        fs::remove_dir_all(state.path()).unwrap();
    }

    #[test]
    fn profiles_keep_their_own_window() {
        let state = temp_state("scopes");
        recovery(
            Recovery::Window,
            10,
            false,
            &state,
            Some("rdp"),
            1_000,
            true,
        );
        assert!(
            recovery(
                Recovery::Window,
                10,
                true,
                &state,
                Some("rdp"),
                2_000,
                false
            )
            .recover
        );
        assert!(
            !recovery(
                Recovery::Window,
                10,
                true,
                &state,
                Some("web"),
                2_000,
                false
            )
            .recover
        );
        assert!(!recovery(Recovery::Window, 10, true, &state, None, 2_000, false).recover);
        fs::remove_dir_all(state.path()).unwrap();
    }

    #[test]
    fn cpu_counters_round_trip() {
        let state = temp_state("cpu");
        assert_eq!(state.cpu_counters().unwrap(), None);
        let counters = Counters { busy: 5, total: 50 };
        let record = |at_ms, last| CpuRecord {
            at_ms,
            counters,
            source: 7,
            last,
        };
        state.save_cpu_counters(&record(1234, None)).unwrap();
        assert_eq!(state.cpu_counters().unwrap(), Some(record(1234, None)));
        state
            .save_cpu_counters(&record(1234, Some((42.125, 250))))
            .unwrap();
        assert_eq!(
            state.cpu_counters().unwrap(),
            Some(record(1234, Some((42.125, 250))))
        );
        fs::write(state.path().join(CPU_FILE), "garbage").unwrap();
        assert_eq!(state.cpu_counters().unwrap(), None);
        // The formats before (no checksum; no source and last figure), and a record with one
        // digit changed.
        fs::write(state.path().join(CPU_FILE), "1234 5 50\n").unwrap();
        assert_eq!(state.cpu_counters().unwrap(), None);
        let fields = "00000000000000001234 00000000000000000005 00000000000000000050";
        let older = format!("{fields} {:016x}\n", fnv1a(fields.as_bytes()));
        fs::write(state.path().join(CPU_FILE), older).unwrap();
        assert_eq!(state.cpu_counters().unwrap(), None);
        let text = counters_record(&record(1234, None));
        assert_eq!(text.len(), 143);
        fs::write(state.path().join(CPU_FILE), text.replace("50 ", "51 ")).unwrap();
        assert_eq!(state.cpu_counters().unwrap(), None);
        // Overwriting a longer file in place keeps only the first line.
        fs::write(state.path().join(CPU_FILE), "x".repeat(200)).unwrap();
        state.save_cpu_counters(&record(99, None)).unwrap();
        assert_eq!(state.cpu_counters().unwrap(), Some(record(99, None)));
        fs::remove_dir_all(state.path()).unwrap();
    }

    /// Readers racing writers see a whole record or none (a torn one is simulated above, with
    /// one digit changed: it may be too rare to catch here).
    #[test]
    fn cpu_counters_read_while_written_are_whole_or_none() {
        let state = temp_state("cpu-race");
        let state = &state;
        std::thread::scope(|scope| {
            for writer in 0..2u64 {
                scope.spawn(move || {
                    for i in 0..5_000u64 {
                        let at = writer * 1_000_000_000 + i * 99_991;
                        let counters = Counters {
                            busy: at * 3,
                            total: at * 7 + 1,
                        };
                        let record = CpuRecord {
                            at_ms: at,
                            counters,
                            source: 0,
                            last: None,
                        };
                        state.save_cpu_counters(&record).unwrap();
                    }
                });
            }
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..5_000 {
                        if let Some(record) = state.cpu_counters().unwrap() {
                            let (at, counters) = (record.at_ms, record.counters);
                            assert_eq!((counters.busy, counters.total), (at * 3, at * 7 + 1));
                        }
                    }
                });
            }
        });
        fs::remove_dir_all(state.path()).unwrap();
    }

    #[test]
    fn always_and_never() {
        let state = temp_state("policy");
        assert!(recovery(Recovery::Always, 10, true, &state, None, 1, true).recover);
        assert!(!recovery(Recovery::Never, 10, true, &state, None, 1, true).recover);
        assert!(!recovery(Recovery::Always, 10, false, &state, None, 1, true).recover);
        let _ = fs::remove_dir_all(state.path());
    }

    #[test]
    fn unusable_state_dir_behaves_as_always() {
        let file = std::env::temp_dir().join(format!("lbf-state-file-{}", std::process::id()));
        fs::write(&file, "not a dir").unwrap();
        let state = StateDir::new(&file.join("sub"));
        let d = recovery(Recovery::Window, 10, true, &state, None, 1, true);
        assert!(d.recover);
        assert!(d.why.contains("unusable"), "{}", d.why);
        let d = recovery(Recovery::Window, 10, false, &state, None, 1, true);
        assert!(d.why.contains("could not record"), "{}", d.why);
        fs::remove_file(&file).unwrap();
    }
}
