//! Sessions load: the user sessions on the host, logged-in ones and the disconnected ones that
//! still hold memory and CPU, against `max_sessions`. This is what balances Remote Desktop
//! hosts: a disconnected session has no TCP connection on 3389 but still costs the host.
//!
//! Windows: `WTSEnumerateSessionsW` on the local server. `WTSActive` sessions are logged in;
//! `WTSDisconnected` ones lost their client but keep running. Session 0 (services), listeners
//! (`WTSListen`, the RDP-Tcp winstation) and sessions nobody is logged on to (`WTSConnected`,
//! `WTSIdle`, `WTSInit`, the console at its logon screen) are not counted.
//!
//! Linux: systemd-logind's session records, `/run/systemd/sessions/ID` (the files sd-login(3)
//! reads; `loginctl list-sessions` shows the same). Chosen over utmp because logind tracks
//! every PAM login (console, ssh, xrdp through pam_systemd) with its class and state, while
//! utmp holds what programs chose to write: terminal emulators, screen and tmux add entries of
//! their own, a crashed login leaves its entry behind, there is no state for a user who logged
//! out and left processes running, and distributions are dropping it (its 32-bit times run out
//! in 2038). Counted: `CLASS=user` (and its `user-early`, `user-incomplete`, `user-light`
//! kinds); greeters, lock screens, `background` and `manager` sessions are not people. A
//! session whose `STATE=closing` has logged out while its processes go on
//! (`KillUserProcesses=no`: tmux, screen, nohup): the Linux counterpart of a disconnected
//! session. Without logind there is nothing to count from: the probe answers
//! `error:sessions` and says why. The reader takes a root path, so fixture trees test it.
//!
//! Other systems: not supported, `error:sessions`.

use super::MetricError;

mod monitor;

pub use monitor::Users;

fn error(message: impl Into<String>) -> MetricError {
    MetricError {
        monitor: crate::words::SESSIONS.to_string(),
        message: message.into(),
    }
}

/// User sessions on the host, as one reading found them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sessions {
    /// Logged in (Windows `WTSActive`; logind `active`, `online` or `opening`).
    pub active: u64,
    /// Still running without their user (Windows `WTSDisconnected`; logind `closing`).
    pub disconnected: u64,
    /// Where they were read, for `--explain`.
    pub source: String,
}

impl Sessions {
    /// The count a monitor uses: the active sessions, and the disconnected ones if it asks.
    pub fn count(&self, disconnected: bool) -> u64 {
        match disconnected {
            true => self.active + self.disconnected,
            false => self.active,
        }
    }
}

/// The load: sessions against the maximum, in percent; like a TCP load it may pass 100.
pub fn load(count: u64, max_sessions: u64) -> f64 {
    count as f64 * 100.0 / max_sessions as f64
}

/// The variable that points the Linux reader at a fixture tree instead of `/` (tests only; a
/// host has no reason to set it).
#[cfg(target_os = "linux")]
const TEST_ROOT_VAR: &str = "LB_FEEDBACK_TEST_SESSIONS_ROOT";

/// The host's sessions (or, for tests, those of the tree [`TEST_ROOT_VAR`] names).
#[cfg(target_os = "linux")]
pub fn read() -> Result<Sessions, MetricError> {
    let root = std::env::var_os(TEST_ROOT_VAR).unwrap_or_else(|| "/".into());
    read_logind(std::path::Path::new(&root))
}

/// Which of logind's sessions count, from one record's `CLASS` and `STATE`: `None` for a
/// session that is not a person's, else whether it is disconnected (closing).
#[cfg(target_os = "linux")]
fn logind_kind(class: Option<&str>, state: Option<&str>) -> Option<bool> {
    // Before systemd 186 there was no CLASS: every session was a user's.
    let person = class.is_none_or(|class| class.starts_with("user"));
    person.then(|| state == Some("closing"))
}

/// The sessions logind records under `root`/run/systemd/sessions.
#[cfg(target_os = "linux")]
fn read_logind(root: &std::path::Path) -> Result<Sessions, MetricError> {
    // The directory alone proves nothing: packages and images create it, and then, without
    // systemd running, it stays empty and would read as 0 sessions. `run/systemd/system`
    // exists only while systemd is the init system (sd_booted(3)), and with it logind runs.
    let booted = root.join("run/systemd/system");
    if !booted.is_dir() {
        return Err(error(format!(
            "{} does not exist: this host was not booted with systemd, so no systemd-logind \
             keeps session records, and sessions are counted from logind only (not utmp: see \
             docs/monitors.md); the sessions monitor is unavailable here",
            booted.display()
        )));
    }
    let dir = root.join("run/systemd/sessions");
    let entries = std::fs::read_dir(&dir).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => error(format!(
            "{} does not exist: systemd-logind does not run here, and sessions are counted from \
             logind only (not utmp: see docs/monitors.md); the sessions monitor is unavailable here",
            dir.display()
        )),
        _ => error(format!(
            "cannot list {}: {}",
            dir.display(),
            crate::ioerr::io_reason(&err)
        )),
    })?;
    let mut sessions = Sessions {
        active: 0,
        disconnected: 0,
        source: format!("logind {}", dir.display()),
    };
    for entry in entries {
        let entry = entry.map_err(|err| {
            error(format!(
                "cannot list {}: {}",
                dir.display(),
                crate::ioerr::io_reason(&err)
            ))
        })?;
        // Beside each record logind keeps `ID.ref`, a FIFO: opening it would block.
        let name = entry.file_name();
        let is_id = name
            .to_str()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !is_id || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Some(text) = record(&entry.path())? else {
            continue;
        };
        let field = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        };
        match logind_kind(field("CLASS"), field("STATE")) {
            Some(true) => sessions.disconnected += 1,
            Some(false) => sessions.active += 1,
            None => {}
        }
    }
    Ok(sessions)
}

/// One session record: `None` when the session ended between listing and reading it.
#[cfg(target_os = "linux")]
fn record(path: &std::path::Path) -> Result<Option<String>, MetricError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, so a FIFO that took a record's place cannot hold the probe; records are a
    // few hundred bytes, so 64 KiB is plenty and bounds a strange one.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let mut text = String::new();
    let read = opened.and_then(|file| file.take(64 * 1024).read_to_string(&mut text));
    match read {
        Ok(_) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(error(format!(
            "cannot read {}: {}",
            path.display(),
            crate::ioerr::io_reason(&err)
        ))),
    }
}

/// The host's sessions, from the Remote Desktop Services API.
#[cfg(windows)]
pub fn read() -> Result<Sessions, MetricError> {
    use windows_sys::Win32::System::RemoteDesktop::{
        WTS_CURRENT_SERVER_HANDLE, WTS_SESSION_INFOW, WTSActive, WTSDisconnected,
        WTSEnumerateSessionsW, WTSFreeMemory,
    };
    let mut list: *mut WTS_SESSION_INFOW = std::ptr::null_mut();
    let mut listed: u32 = 0;
    // SAFETY: both out-pointers are valid; reserved 0 and version 1 are what the API requires.
    let ok =
        unsafe { WTSEnumerateSessionsW(WTS_CURRENT_SERVER_HANDLE, 0, 1, &mut list, &mut listed) };
    if ok == 0 {
        return Err(error(format!(
            "WTSEnumerateSessionsW failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    let mut sessions = Sessions {
        active: 0,
        disconnected: 0,
        source: String::new(),
    };
    // How many of each kind were listed, in the order first seen: the source line says what
    // the count was taken from without listing a big host's every session.
    let mut tally: Vec<(&str, u32)> = Vec::new();
    if !list.is_null() {
        // SAFETY: on success `list` points at `listed` entries, freed below and not after.
        let entries = unsafe { std::slice::from_raw_parts(list, listed as usize) };
        for entry in entries {
            let kind = match entry.SessionId {
                0 => "in session 0",
                _ => state_name(entry.State),
            };
            match tally.iter_mut().find(|(seen, _)| *seen == kind) {
                Some((_, n)) => *n += 1,
                None => tally.push((kind, 1)),
            }
            if entry.SessionId == 0 {
                continue;
            }
            if entry.State == WTSActive {
                sessions.active += 1;
            } else if entry.State == WTSDisconnected {
                sessions.disconnected += 1;
            }
        }
        // SAFETY: the memory came from WTSEnumerateSessionsW and is no longer used.
        unsafe { WTSFreeMemory(list.cast()) };
    }
    let kinds: Vec<String> = tally
        .iter()
        .map(|(kind, n)| format!(", {n} {kind}"))
        .collect();
    // Wine 8's WTSEnumerateSessionsW is a stub that lists none: "0 listed" says so.
    sessions.source = format!(
        "WTSEnumerateSessionsW: {listed} listed{}; counted: active and disconnected, outside \
         session 0",
        kinds.concat()
    );
    Ok(sessions)
}

/// `WTS_CONNECTSTATE_CLASS` in a word, for the source line.
#[cfg(windows)]
fn state_name(state: i32) -> &'static str {
    match state {
        0 => "active",
        1 => "connected",
        2 => "connect-query",
        3 => "shadow",
        4 => "disconnected",
        5 => "idle",
        6 => "listen",
        7 => "reset",
        8 => "down",
        9 => "init",
        _ => "unknown",
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
pub fn read() -> Result<Sessions, MetricError> {
    Err(error(
        "counting user sessions is not supported on this OS (only Windows and Linux with \
         systemd-logind)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_takes_disconnected_sessions_when_asked() {
        let sessions = Sessions {
            active: 3,
            disconnected: 2,
            source: String::new(),
        };
        assert_eq!(sessions.count(true), 5);
        assert_eq!(sessions.count(false), 3);
        assert_eq!(load(5, 50), 10.0);
        assert_eq!(load(60, 50), 120.0);
    }

    #[cfg(target_os = "linux")]
    mod logind {
        use super::super::*;
        use std::path::{Path, PathBuf};

        /// A fresh tree with `run/systemd/sessions` holding the given records.
        fn tree(name: &str, records: &[(&str, &str)]) -> PathBuf {
            let root =
                std::env::temp_dir().join(format!("lbf-sessions-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            let dir = root.join("run/systemd/sessions");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
            for (id, text) in records {
                std::fs::write(dir.join(id), text).unwrap();
            }
            root
        }

        fn session(class: &str, state: &str) -> String {
            format!(
                "# This is private data. Do not parse.\nUID=1000\nUSER=ann\nACTIVE=1\n\
                 IS_DISPLAY=0\nSTATE={state}\nREMOTE=1\nTYPE=tty\nCLASS={class}\n\
                 SCOPE=session-1.scope\nREMOTE_HOST=192.0.2.7\nSERVICE=sshd\nLEADER=812\n"
            )
        }

        #[test]
        fn which_logind_sessions_count() {
            assert_eq!(logind_kind(Some("user"), Some("active")), Some(false));
            assert_eq!(logind_kind(Some("user"), Some("online")), Some(false));
            assert_eq!(
                logind_kind(Some("user-early"), Some("opening")),
                Some(false)
            );
            assert_eq!(logind_kind(Some("user"), Some("closing")), Some(true));
            assert_eq!(logind_kind(None, Some("active")), Some(false));
            assert_eq!(logind_kind(Some("greeter"), Some("active")), None);
            assert_eq!(logind_kind(Some("lock-screen"), Some("online")), None);
            assert_eq!(logind_kind(Some("background"), Some("active")), None);
            assert_eq!(logind_kind(Some("manager"), Some("active")), None);
        }

        #[test]
        fn counts_user_sessions_by_state_and_leaves_out_the_rest() {
            let records = [
                ("1", session("user", "active")),
                ("2", session("user", "online")),
                ("c3", session("user", "closing")),
                ("4", session("greeter", "active")),
                ("5", session("background", "active")),
                ("6", session("manager", "active")),
                ("7", session("user-incomplete", "active")),
                ("8", session("user", "closing")),
            ];
            let records: Vec<(&str, &str)> =
                records.iter().map(|(id, t)| (*id, t.as_str())).collect();
            let root = tree("states", &records);
            // Not records: a name logind never gives, a directory.
            let dir = root.join("run/systemd/sessions");
            std::fs::write(dir.join("9.tmp"), session("user", "active")).unwrap();
            std::fs::create_dir(dir.join("10")).unwrap();
            let sessions = read_logind(&root).unwrap();
            assert_eq!((sessions.active, sessions.disconnected), (3, 2));
            assert_eq!(
                sessions.source,
                format!("logind {}", dir.display()),
                "{sessions:?}"
            );
            let _ = std::fs::remove_dir_all(&root);
        }

        #[test]
        fn a_ref_fifo_is_not_opened() {
            let root = tree("fifo", &[("1", &session("user", "active"))]);
            let fifo = root.join("run/systemd/sessions/1.ref");
            let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
            // A FIFO under a record's name too: the non-blocking open reads it as empty.
            let named =
                std::ffi::CString::new(root.join("run/systemd/sessions/2").to_str().unwrap())
                    .unwrap();
            // SAFETY: as above.
            assert_eq!(unsafe { libc::mkfifo(named.as_ptr(), 0o600) }, 0);
            let sessions = read_logind(&root).unwrap();
            assert_eq!((sessions.active, sessions.disconnected), (1, 0));
            let _ = std::fs::remove_dir_all(&root);
        }

        #[test]
        fn no_sessions_is_zero_and_no_logind_is_an_error_saying_why() {
            let root = tree("empty", &[]);
            let sessions = read_logind(&root).unwrap();
            assert_eq!((sessions.active, sessions.disconnected), (0, 0));
            // No logind records, systemd running: logind does not run.
            std::fs::remove_dir(root.join("run/systemd/sessions")).unwrap();
            let err = read_logind(&root).unwrap_err();
            assert_eq!(err.monitor, "sessions");
            let missing = root.join("run/systemd/sessions");
            assert!(
                err.message.starts_with(&format!(
                    "{} does not exist: systemd-logind does not run here",
                    missing.display()
                )),
                "{err}"
            );
            assert!(err.message.contains("unavailable"), "{err}");
            // Records but no systemd (a package made the directory): not 0, an error.
            std::fs::create_dir_all(root.join("run/systemd/sessions")).unwrap();
            std::fs::remove_dir(root.join("run/systemd/system")).unwrap();
            let err = read_logind(&root).unwrap_err();
            assert!(
                err.message.contains(
                    "run/systemd/system does not exist: this host was not \
                     booted with systemd"
                ),
                "{err}"
            );
            let _ = std::fs::remove_dir_all(&root);
            assert!(read_logind(Path::new("/nonexistent/lbf")).is_err());
        }

        #[test]
        fn the_machines_own_sessions_when_it_has_logind() {
            let booted = Path::new("/run/systemd/system").is_dir();
            match booted && Path::new("/run/systemd/sessions").is_dir() {
                true => {
                    let sessions = read_logind(Path::new("/")).unwrap();
                    assert_eq!(sessions.source, "logind /run/systemd/sessions");
                }
                false => {
                    eprintln!("SKIPPED: no logind on this machine (not booted with systemd)");
                    assert!(read_logind(Path::new("/")).is_err());
                }
            }
        }
    }
}
