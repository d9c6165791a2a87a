//! The state directory: the runtime mode set by `lb-feedback mode`, the poller table that
//! says who is owed HAProxy's recovery words ([`pollers`]), the steady-steering memory of
//! moving averages and held drains ([`steady`]), and the CPU counters of since-last mode. The mode is written as a temp file and a rename, so a reader sees the old file or the
//! new one, never half of one; the table and the counters, written by every probe, are
//! overwritten in place (the table under a lock) and carry a checksum instead, so a torn one
//! is told apart (see `save_cpu_counters`). All file operations go through `files`, which
//! treats the directory as hostile.

pub mod error;
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
pub use crate::metrics::cpu::CpuRecord;
pub use error::{StateError, StateProblem, Unusable};
use files::Dir;
use history::Event;
use pollers::{Entry, Kind, MAX_TABLE_BYTES, Polled, Rule, Table, TableProblem, Undo};
use record::{Poller, checksum};

const MODE_FILE: &str = "mode.json";
const POLLERS_FILE: &str = "pollers";
const HISTORY_FILE: &str = "history";
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

/// What an unusable state directory costs, said wherever it is reported.
pub const UNUSABLE_COST: &str =
    "recovery and steady steering cannot be remembered, so every normal reply carries `up ready`";

/// A state directory the agent's user cannot keep state in, as it is reported:
/// `state directory unusable: WHY; COST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnusableDir(pub Unusable);

impl std::fmt::Display for UnusableDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "state directory unusable: {}; {UNUSABLE_COST}", self.0)
    }
}

/// [`StateDir::unusable`] for the state directory and state_owner `config` names.
pub fn unusable(config: &crate::config::Config) -> Option<UnusableDir> {
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
    pub fn unusable(&self) -> Option<UnusableDir> {
        files::unusable(&self.path, self.owner.as_deref()).map(UnusableDir)
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
                problem: StateProblem::NotModeFile {
                    line: err.line(),
                    column: err.column(),
                    start: files::preview(&bytes, 16),
                },
            })
    }

    /// Stores a runtime mode, or removes it (`None`) so the config's mode counts again.
    pub fn set_runtime_mode(&self, mode: Option<&RuntimeMode>) -> Result<(), StateError> {
        match mode {
            Some(mode) => {
                let text = serde_json::to_string(mode).map_err(|err| StateError {
                    path: self.path.join(MODE_FILE),
                    problem: StateProblem::Encode {
                        reason: err.to_string(),
                    },
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
                    .map_err(|why| StateError {
                        path: self.path.join(POLLERS_FILE),
                        problem: StateProblem::Table(why),
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
            problem: StateProblem::BadTable(why),
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
    ) -> Result<Option<steady::SteadyProblem>, StateError> {
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
                problem: StateProblem::LockHeld {
                    ms: LOCK_WAIT.as_millis(),
                },
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
        Ok(self
            .read_record("cpu")?
            .as_deref()
            .and_then(CpuRecord::parse))
    }

    /// Saves the CPU counters for the next probe.
    pub fn save_cpu_counters(&self, record: &CpuRecord) -> Result<(), StateError> {
        self.write_record("cpu", &record.line())
    }

    /// A monitor's kept line (`NAME-counters`: `cpu-counters`, `pressure-cpu-counters`),
    /// as it was saved; `None` when there is none or its checksum does not check out
    /// (written half, or by an older version).
    pub fn read_record(&self, name: &str) -> Result<Option<String>, StateError> {
        let Some(file) = record_file(name) else {
            return Ok(None);
        };
        let bytes = self.read(&file)?;
        Ok(bytes.and_then(|bytes| {
            let line = std::str::from_utf8(&bytes).ok()?.lines().next()?;
            let (line, check) = line.rsplit_once(' ')?;
            (u64::from_str_radix(check, 16).ok()? == checksum(line.as_bytes())).then(|| line.into())
        }))
    }

    /// Keeps one line for a monitor's next probe, with the checksum of it in 16 hex digits.
    ///
    /// Unlike the other files these are written by every since-last probe, so they are
    /// overwritten in place, not renamed over: on ext4 a rename over an existing file starts
    /// writing the new one out at once, which cost such a probe 0.3 ms, a quarter of its wall
    /// time (docs/BENCHMARKS.md). Their records have a fixed size, so no old bytes are left
    /// behind, and the checksum, so a record read while another probe writes it, or cut short
    /// by a crash, is rejected rather than misread.
    pub fn write_record(&self, name: &str, line: &str) -> Result<(), StateError> {
        let Some(file) = record_file(name) else {
            return Ok(());
        };
        let text = format!("{line} {:016x}\n", checksum(line.as_bytes()));
        self.dir_to_write()?.overwrite(&file, text.as_bytes())
    }
}

/// What monitors keep between probes (since-last counters), in the state directory; a record
/// that cannot be read is no record (the probe samples), a failed save only means the next
/// one samples.
impl crate::metrics::monitor::Store for StateDir {
    fn record(&self, name: &str) -> Option<String> {
        self.read_record(name).ok().flatten()
    }

    fn save_record(&self, name: &str, line: &str) {
        let _ = self.write_record(name, line);
    }
}

/// The file of a monitor's kept line: `NAME-counters`, for names of lower-case letters and
/// `-` only (no path, no dot file).
fn record_file(name: &str) -> Option<String> {
    let fine = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    fine.then(|| format!("{name}-counters"))
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
    afresh: Option<TableProblem>,
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
mod tests;
