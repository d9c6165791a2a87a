//! The state directory: the runtime mode set by `lb-feedback mode`, the poller table that
//! says who is owed HAProxy's recovery words ([`pollers`]), the steady-steering memory of
//! moving averages and held drains ([`steady`]), and the CPU counters of since-last mode. The mode is written as a temp file and a rename, so a reader sees the old file or the
//! new one, never half of one; the table and the counters, written by every probe, are
//! overwritten in place (the table under a lock) and carry a checksum instead, so a torn one
//! is told apart (see `save_cpu_counters`). All file operations go through `files`, which
//! treats the directory as hostile.

pub mod files;
pub mod history;
pub mod pollers;
pub mod record;
pub mod steady;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Mode, Recovery as RecoveryPolicy};
use crate::metrics::cpu::Counters;
use files::Dir;
use history::Event;
use pollers::{Entry, Kind, MAX_TABLE_BYTES, Polled, Rule, Table, Undo};
use record::{Poller, checksum};

const MODE_FILE: &str = "mode.json";
const POLLERS_FILE: &str = "pollers";
const HISTORY_FILE: &str = "history";
const CPU_FILE: &str = "cpu-counters";
const STEADY_FILE: &str = "steady";

/// How long a probe waits for the poller table's lock. Probes hold it for a read and a write
/// of a small file (docs/BENCHMARKS.md); only a stalled disk or someone holding it on purpose
/// makes a probe wait this long, and it then answers without the table.
pub const LOCK_WAIT: Duration = Duration::from_millis(500);

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

/// What an unusable state directory costs, said wherever it is reported.
pub const UNUSABLE_COST: &str =
    "recovery and steady steering cannot be remembered, so every normal reply carries `up ready`";

/// [`StateDir::unusable`] for the state directory and state_owner `config` names.
pub fn unusable(config: &crate::config::Config) -> Option<String> {
    let owner = config.state_owner.as_ref().map(|user| user.as_str());
    StateDir::new(&config.state_dir).owned_by(owner).unusable()
}

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

    /// `state directory unusable: WHY; COST` when the agent's user (state_owner when set)
    /// cannot keep state here, `None` when it can. Looks only: creates nothing.
    pub fn unusable(&self) -> Option<String> {
        files::unusable(&self.path, self.owner.as_deref())
            .map(|why| format!("state directory unusable: {why}; {UNUSABLE_COST}"))
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

    /// Applies the recovery rule to one poll from `poller` and records it in the poller
    /// table, under its lock: the reply line `line(recover)` gives, and whether it carried
    /// `up ready` and why. See [`recovery`] for what happens when the table cannot be used.
    fn poll(
        &self,
        poller: &Poller,
        kind: Kind,
        rule: Rule,
        now_ms: u64,
        line: &dyn Fn(bool) -> String,
    ) -> Result<Option<Recorded>, StateError> {
        let dir = self.dir_to_write()?;
        let Some(locked) = dir.lock(POLLERS_FILE, LOCK_WAIT)? else {
            return Ok(None);
        };
        let bytes = locked.read(MAX_TABLE_BYTES)?;
        let empty = bytes.is_empty();
        let (mut table, mut afresh) = match Table::parse(bytes) {
            Ok(table) => (table, None),
            // A new (empty) file, or one a crash cut short or someone edited.
            Err(_) if empty => (Table::default(), None),
            Err(why) => (Table::default(), Some(why)),
        };
        let polled = match table.poll(poller, kind, rule, now_ms, line) {
            Ok(done) => done,
            // Its poller's line is malformed: the table cannot be trusted, start afresh.
            Err(problem) => {
                table = Table::default();
                afresh = Some(problem);
                table
                    .poll(poller, kind, rule, now_ms, line)
                    .map_err(|message| StateError {
                        path: self.path.join(POLLERS_FILE),
                        message,
                    })?
            }
        };
        let (header, body) = table.render();
        locked.write(&[header.as_bytes(), body])?;
        // Under the table's lock, so concurrent probes lose no event; a history that cannot
        // be written costs the record, not the reply.
        if let Some(event) = &polled.event {
            let _ = self.record(dir, event);
        }
        Ok(Some(Recorded { polled, afresh }))
    }

    /// Takes back the poll of a normal reply that was not delivered (the peer had shut its
    /// side down, or the write failed or fell short): it does not count toward the poller's
    /// recovery. Best effort: a table that cannot be used now costs the poller recovery
    /// words it would have been owed anyway, never a wrong reply.
    pub fn undo(&self, undo: &Undo) {
        let Ok(dir) = self.dir_to_write() else {
            return;
        };
        let Ok(Some(locked)) = dir.lock(POLLERS_FILE, LOCK_WAIT) else {
            return;
        };
        let Ok(Ok(mut table)) = locked.read(MAX_TABLE_BYTES).map(Table::parse) else {
            return;
        };
        if table.undo(undo) == Ok(true) {
            let (header, body) = table.render();
            let _ = locked.write(&[header.as_bytes(), body]);
        }
    }

    /// Appends `event` to the history; the caller holds the poller table's lock.
    fn record(&self, dir: &Dir, event: &Event) -> Result<(), StateError> {
        let Some(locked) = dir.lock(HISTORY_FILE, LOCK_WAIT)? else {
            return Ok(());
        };
        let bytes = locked.read(history::MAX_HISTORY_BYTES)?;
        locked.write(&[&history::append(&bytes, event)])
    }

    /// The history, oldest first; empty when there is none.
    pub fn history(&self) -> Result<Vec<Event>, StateError> {
        let Some(dir) = self.dir()? else {
            return Ok(Vec::new());
        };
        let bytes = dir.read_shared(HISTORY_FILE, history::MAX_HISTORY_BYTES, LOCK_WAIT)?;
        Ok(bytes.map(|b| history::parse(&b)).unwrap_or_default())
    }

    /// A mode change (`lb-feedback mode`): recorded in the history as `event`, and every
    /// known poller is owed recovery from now.
    pub fn owe_all(&self, now_ms: u64, event: Event) -> Result<(), StateError> {
        let Some(dir) = self.dir()? else {
            return Ok(());
        };
        let Some(locked) = dir.lock(POLLERS_FILE, LOCK_WAIT)? else {
            // Held too long: without the table every poller is new, so owed.
            return dir.remove(POLLERS_FILE);
        };
        let _ = self.record(dir, &event);
        let mut table = match Table::parse(locked.read(MAX_TABLE_BYTES)?) {
            Ok(table) => table,
            // Unreadable: every poller is new, so owed, already.
            Err(_) => return Ok(()),
        };
        match table.owe_all(now_ms) {
            Ok(()) => {
                let (header, body) = table.render();
                locked.write(&[header.as_bytes(), body])
            }
            // A malformed line: without the table every poller is new, so owed.
            Err(_) => dir.remove(POLLERS_FILE),
        }
    }

    /// The poller table's entries, for `lb-feedback status`; `None` when there is none yet.
    pub fn pollers(&self) -> Result<Option<Vec<Entry>>, StateError> {
        let Some(dir) = self.dir()? else {
            return Ok(None);
        };
        let Some(bytes) = dir.read_shared(POLLERS_FILE, MAX_TABLE_BYTES, LOCK_WAIT)? else {
            return Ok(None);
        };
        if bytes.is_empty() {
            return Ok(None);
        }
        let entries = Table::parse(bytes).and_then(|table| table.entries());
        entries.map(Some).map_err(|why| StateError {
            path: self.path.join(POLLERS_FILE),
            message: format!("{why}; remove it to start afresh (every poller is then owed)"),
        })
    }

    /// Removes the poller table: after a non-normal reply that could not be recorded, so no
    /// poller is taken for one owed nothing. (Unlinking works on a full disk.)
    fn forget_pollers(&self) -> Result<(), StateError> {
        match self.dir()? {
            Some(dir) => dir.remove(POLLERS_FILE),
            None => Ok(()),
        }
    }

    /// The steady-steering memory ([`steady`]) for one probe: `update` gets the table, and
    /// with `write` what it leaves is written back, all under the file's lock, so concurrent
    /// probes lose no update. Without `write` (a person at a shell) it is only read. Returns
    /// why the file was started afresh, when it was.
    pub fn steady(
        &self,
        write: bool,
        update: &mut dyn FnMut(&mut steady::Table),
    ) -> Result<Option<String>, StateError> {
        let afresh = |bytes: &[u8]| match steady::Table::parse(bytes) {
            Ok(table) => (table, None),
            Err(why) => (steady::Table::default(), Some(why)),
        };
        if !write {
            let bytes = match self.dir()? {
                Some(dir) => dir.read_shared(STEADY_FILE, steady::MAX_STEADY_BYTES, LOCK_WAIT)?,
                None => None,
            };
            let (mut table, why) = afresh(&bytes.unwrap_or_default());
            update(&mut table);
            return Ok(why);
        }
        let dir = self.dir_to_write()?;
        let Some(locked) = dir.lock(STEADY_FILE, LOCK_WAIT)? else {
            return Err(StateError {
                path: self.path.join(STEADY_FILE),
                message: format!("its lock was held for over {} ms", LOCK_WAIT.as_millis()),
            });
        };
        let (mut table, why) = afresh(&locked.read(steady::MAX_STEADY_BYTES)?);
        update(&mut table);
        locked.write(&[&table.render()])?;
        Ok(why)
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
/// thousandths of a percent, SPAN 0 for none) and the checksum of the text before it in 16
/// hex digits, 143 bytes with the newline whatever the values.
fn counters_record(record: &CpuRecord) -> String {
    let (last, span) = record.last.map_or((0, 0), |(busy, span)| {
        ((busy * 1000.0).round() as u64, span)
    });
    let fields = format!(
        "{:020} {:020} {:020} {:020} {last:020} {span:020}",
        record.at_ms, record.counters.busy, record.counters.total, record.source
    );
    format!("{fields} {:016x}\n", checksum(fields.as_bytes()))
}

fn parse_counters_record(text: &str) -> Option<CpuRecord> {
    let (fields, check) = text.lines().next()?.rsplit_once(' ')?;
    if u64::from_str_radix(check, 16).ok()? != checksum(fields.as_bytes()) {
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

/// Whether this reply carries `up ready`, and why, for `--explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryDecision {
    pub recover: bool,
    pub why: String,
    /// The history's event, when this reply changed what the poller is told.
    pub change: Option<Event>,
    /// How to take the poll back when the reply is not delivered ([`StateDir::undo`]).
    pub undo: Option<Undo>,
}

/// What [`StateDir::poll`] recorded.
struct Recorded {
    polled: Polled,
    /// Why the table was started afresh, when it was.
    afresh: Option<String>,
}

/// Decides the recovery words of one reply and records what the next probe needs to know;
/// returns the decision and the reply line (`line(recover)`).
///
/// `poller`: who asked; `None` for a person at a shell, who is not a poller, is owed nothing
/// and records nothing. A poller table that cannot be used (the directory is missing and
/// cannot be made, is read-only or another user's, a link or FIFO planted at the table, its
/// lock held too long) means `up ready` on every normal reply: availability first. A
/// non-normal reply that cannot be recorded removes the table, if it can, so that once it is
/// usable again every poller is new, so owed.
pub fn recovery(
    rule: Rule,
    kind: Kind,
    state: &StateDir,
    poller: Option<&Poller>,
    now_ms: u64,
    line: &dyn Fn(bool) -> String,
) -> (RecoveryDecision, String) {
    let decided = |recover: bool, why: String| {
        (
            RecoveryDecision {
                recover,
                why,
                change: None,
                undo: None,
            },
            line(recover),
        )
    };
    let Some(poller) = poller else {
        return match rule.policy {
            RecoveryPolicy::Always => decided(kind == Kind::Normal, "recovery = always".into()),
            _ => decided(
                false,
                "run by hand: not a poller, so owed nothing (what each load balancer is owed: lb-feedback status)".into(),
            ),
        };
    };
    let failed = |problem: String| {
        if kind == Kind::NonNormal {
            let forgot = match state.forget_pollers() {
                Ok(()) => "the poller table is removed, so every poller will be owed `up ready`",
                Err(_) => "the poller table could not be removed either",
            };
            return decided(
                false,
                format!("could not record this reply ({problem}); {forgot}"),
            );
        }
        decided(
            kind == Kind::Normal,
            format!(
                "poller table unusable ({problem}); sending `up ready` always, availability first"
            ),
        )
    };
    match state.poll(poller, kind, rule, now_ms, line) {
        Ok(Some(Recorded { polled, afresh })) => {
            let Polled {
                recover,
                why,
                line,
                event,
                undo,
            } = polled;
            let why = match afresh {
                Some(problem) => format!(
                    "{why} (the poller table was unreadable, {problem}: started afresh, every poller owed)"
                ),
                None => why,
            };
            (
                RecoveryDecision {
                    recover,
                    why,
                    change: event,
                    undo,
                },
                line,
            )
        }
        Ok(None) => failed(format!(
            "its lock was held for more than {} ms",
            LOCK_WAIT.as_millis()
        )),
        Err(err) => failed(err.to_string()),
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
        let older = format!("{fields} {:016x}\n", checksum(fields.as_bytes()));
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

    const RULE: Rule = Rule {
        policy: RecoveryPolicy::Window,
        replies: 3,
        seconds: 10,
    };

    fn line(recover: bool) -> String {
        match recover {
            true => "up ready 70%\n".into(),
            false => "70%\n".into(),
        }
    }

    fn poll(state: &StateDir, poller: &Poller, kind: Kind, at: u64) -> RecoveryDecision {
        recovery(RULE, kind, state, Some(poller), at, &line).0
    }

    #[test]
    fn the_table_on_disk_carries_what_each_poller_is_owed() {
        let state = temp_state("table");
        let a = Poller::new(Some("127.0.0.1".parse().unwrap()), None);
        let b = Poller::new(Some("127.0.0.2".parse().unwrap()), Some("web"));
        assert!(poll(&state, &a, Kind::Normal, 1_000).recover, "new poller");
        assert!(
            poll(&state, &b, Kind::NonNormal, 1_000)
                .why
                .contains("owed")
        );
        let entries = state.pollers().unwrap().unwrap();
        assert_eq!(entries.len(), 2);
        let find = |p: &Poller| entries.iter().find(|e| e.poller == *p).unwrap().clone();
        assert_eq!(find(&a).last_reply, "up ready 70%");
        assert_eq!(find(&b).last_reply, "70%");
        // A mode change owes everyone again, a poller owed nothing included.
        for at in [2_000, 3_000, 20_000] {
            poll(&state, &a, Kind::Normal, at);
        }
        assert!(!poll(&state, &a, Kind::Normal, 21_000).recover);
        let mode = Event {
            at_ms: 22_000,
            peer: "mode".into(),
            profile: None,
            from: "drain".into(),
            to: "normal".into(),
            why: "lb-feedback mode normal until changed".into(),
        };
        state.owe_all(22_000, mode.clone()).unwrap();
        // The history: each first poll, then the mode change; later polls changed nothing.
        let history = state.history().unwrap();
        let seen: Vec<(&str, &str, &str)> = history
            .iter()
            .map(|e| (e.peer.as_str(), e.from.as_str(), e.to.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("127.0.0.1", "new", "normal"),
                ("127.0.0.2", "new", "normal"),
                ("mode", "drain", "normal")
            ]
        );
        assert_eq!(history[2], mode);
        assert!(poll(&state, &a, Kind::Normal, 23_000).recover);
        // By hand: nothing owed, nothing recorded.
        let (by_hand, sent) = recovery(RULE, Kind::Normal, &state, None, 24_000, &line);
        assert!(
            !by_hand.recover && by_hand.why.contains("by hand"),
            "{by_hand:?}"
        );
        assert_eq!(sent, "70%\n");
        assert_eq!(state.pollers().unwrap().unwrap().len(), 2);
        let leftovers = fs::read_dir(state.path()).unwrap().count();
        assert_eq!(leftovers, 2, "only the table and the history");
        fs::remove_dir_all(state.path()).unwrap();
    }

    #[test]
    fn a_damaged_table_starts_afresh_with_every_poller_owed() {
        let state = temp_state("damaged");
        let a = Poller::new(Some("10.0.0.1".parse().unwrap()), None);
        for at in [1, 2, 3, 20_000, 20_001] {
            poll(&state, &a, Kind::Normal, at);
        }
        assert!(!poll(&state, &a, Kind::Normal, 20_002).recover);
        let file = state.path().join(POLLERS_FILE);
        let bytes = fs::read(&file).unwrap();
        fs::write(&file, &bytes[..bytes.len() - 2]).unwrap();
        assert!(state.pollers().unwrap_err().message.contains("afresh"));
        let d = poll(&state, &a, Kind::Normal, 20_003);
        assert!(d.recover && d.why.contains("started afresh"), "{d:?}");
        fs::remove_dir_all(state.path()).unwrap();
    }

    #[test]
    fn a_held_lock_or_a_planted_file_means_up_ready_not_a_hang() {
        let state = temp_state("held");
        let a = Poller::new(None, None);
        poll(&state, &a, Kind::Normal, 1);
        let holder = fs::File::open(state.path().join(POLLERS_FILE)).unwrap();
        holder.lock().unwrap();
        let start = std::time::Instant::now();
        let d = poll(&state, &a, Kind::Normal, 100_000);
        assert!(d.recover && d.why.contains("lock"), "{d:?}");
        assert!(start.elapsed() < LOCK_WAIT * 4);
        // A drain that cannot be recorded removes the table: everyone is new, so owed.
        let d = poll(&state, &a, Kind::NonNormal, 100_001);
        assert!(d.why.contains("removed"), "{d:?}");
        drop(holder);
        assert!(state.pollers().unwrap().is_none());
        // A link planted at the table is never followed.
        let target = state.path().join("target");
        fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, state.path().join(POLLERS_FILE)).unwrap();
        let d = poll(&state, &a, Kind::Normal, 100_002);
        assert!(d.recover && d.why.contains("symbolic link"), "{d:?}");
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        fs::remove_dir_all(state.path()).unwrap();
    }

    #[test]
    fn concurrent_polls_lose_no_update() {
        let state = temp_state("concurrent");
        let state = &state;
        std::thread::scope(|scope| {
            for t in 0..8u8 {
                scope.spawn(move || {
                    let p = Poller::new(Some(std::net::IpAddr::from([127, 0, 0, t + 1])), None);
                    for i in 0..50 {
                        let d = poll(state, &p, Kind::Normal, 1_000 + i);
                        assert!(!d.why.contains("unusable"), "{d:?}");
                    }
                });
            }
        });
        let entries = state.pollers().unwrap().unwrap();
        assert_eq!(entries.len(), 8);
        // Each was sent `up ready` on all 50 (the 10 s are not over): none lost a count.
        for entry in &entries {
            assert_eq!(entry.owed.unwrap().sent, 50, "{entry:?}");
        }
        fs::remove_dir_all(state.path()).unwrap();
    }

    #[test]
    fn unusable_state_dir_behaves_as_always() {
        let file = std::env::temp_dir().join(format!("lbf-state-file-{}", std::process::id()));
        fs::write(&file, "not a dir").unwrap();
        let state = StateDir::new(&file.join("sub"));
        let a = Poller::new(None, None);
        let d = poll(&state, &a, Kind::Normal, 1);
        assert!(d.recover);
        assert!(d.why.contains("unusable"), "{}", d.why);
        let d = poll(&state, &a, Kind::NonNormal, 1);
        assert!(d.why.contains("could not record"), "{}", d.why);
        fs::remove_file(&file).unwrap();
    }
}
