//! The state directory as an attacker on the same host uses it: the agent's unprivileged user
//! (here nobody, through `setpriv`) owns it and plants symlinks, FIFOs, devices and huge files
//! while root runs `lb-feedback mode` and probes. Nothing may make root write, create,
//! truncate or print another file, and nothing may hang. Also: a stamp that cannot be brought
//! up to date (unwritable directory, full disk) and clock steps (`faketime`).
//!
//! Needs root (to be two users and to mount a tmpfs) and setpriv; skipped with a message
//! without them unless `LB_FEEDBACK_E2E=1`.
#![cfg(unix)]

mod common;
#[path = "common/e2e.rs"]
mod e2e;

use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{BIN, TempDir, agent, e2e_required, reply, serve, stderr, stdout};

const NOBODY: u32 = 65534;
/// The longest any command may take before the test calls it hung.
const BOUND: Duration = Duration::from_secs(10);

/// Whether this machine can play both users; prints why not (or fails under CI).
fn two_users(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        let why = format!("SKIPPED: {test} needs root");
        assert!(!e2e_required(), "{why}");
        eprintln!("{why}");
        return false;
    }
    e2e::available(test, &["setpriv"])
}

/// `command` run as nobody.
fn as_nobody(command: &mut Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
    wrapped.arg(command.get_program()).args(command.get_args());
    // The agent's commands start from an empty environment (common::prepared).
    wrapped.env_clear().envs(set_vars(command));
    wrapped
}

/// The variables `command` sets.
fn set_vars(command: &Command) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    command
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect()
}

/// A shell script run as nobody (the attacker planting things); it must succeed.
fn plant(script: &str) {
    let output = as_nobody(Command::new("sh").args(["-c", script]))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "planting failed: {}",
        stderr(&output)
    );
}

/// Runs `command` to its end within `BOUND`; a command still running then is killed and the
/// test fails: that is a hang.
fn finishes(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + BOUND;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} hung: still running after {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The test's state directory, owned by nobody as the package's is by its own user.
fn nobody_state(dir: &TempDir) -> PathBuf {
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    state
}

/// A root-only file the attacker wants root to overwrite or show.
fn precious(dir: &TempDir) -> PathBuf {
    let path = dir.file("precious", "ROOT-ONLY-SECRET\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn assert_untouched(path: &Path) {
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        "ROOT-ONLY-SECRET\n",
        "{} was written through a planted link",
        path.display()
    );
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn root_mode_drain_follows_no_planted_temp_link_and_leaves_files_to_the_agent() {
    if !two_users("root_mode_drain_follows_no_planted_temp_link") {
        return;
    }
    let dir = TempDir::new("hostile-temp");
    let state = nobody_state(&dir);
    let target = precious(&dir);
    // Every name the temp files could have had before: one per pid, first and second write.
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    plant(&format!(
        "cd {} && perl -e 'for $p (1..{}) {{ symlink(\"{}\", \".mode.json.$p.0.tmp\"); symlink(\"{}\", \".last-non-normal.$p.1.tmp\") }}'",
        state.display(),
        pid_max.trim(),
        target.display(),
        target.display()
    ));
    let output = finishes(agent(&dir).args(["mode", "drain"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_untouched(&target);
    for name in ["mode.json", "last-non-normal"] {
        let meta = std::fs::symlink_metadata(state.join(name)).unwrap();
        assert!(meta.is_file(), "{name} must be a regular file");
        assert_eq!(
            meta.uid(),
            NOBODY,
            "{name} must belong to the directory's owner"
        );
        assert_eq!(meta.mode() & 0o022, 0, "{name}: {:o}", meta.mode());
    }
    // The agent's user can still change what root set.
    let output = finishes(&mut as_nobody(agent(&dir).args(["mode", "normal"])));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = finishes(agent(&dir).arg("mode"));
    assert!(stdout(&output).starts_with("normal"), "{}", stdout(&output));
}

#[test]
fn since_last_probe_by_root_writes_and_creates_nothing_through_links() {
    if !two_users("since_last_probe_by_root_writes_and_creates_nothing_through_links") {
        return;
    }
    let dir = TempDir::new("hostile-counters");
    let state = nobody_state(&dir);
    let target = precious(&dir);
    plant(&format!(
        "ln -s {} {}/cpu-counters",
        target.display(),
        state.display()
    ));
    for _ in 0..2 {
        let output = finishes(agent(&dir).env("LB_FEEDBACK_CPU_MODE", "since-last"));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert_untouched(&target);
    // A dangling link: root must not create its target either.
    let created = dir.path().join("created-by-root");
    std::fs::remove_file(state.join("cpu-counters")).unwrap();
    plant(&format!(
        "ln -s {} {}/cpu-counters",
        created.display(),
        state.display()
    ));
    let output = finishes(agent(&dir).env("LB_FEEDBACK_CPU_MODE", "since-last"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !created.exists(),
        "root created a file through a dangling link"
    );
}

#[test]
fn explain_by_root_never_prints_what_a_planted_link_points_to() {
    if !two_users("explain_by_root_never_prints_what_a_planted_link_points_to") {
        return;
    }
    let dir = TempDir::new("hostile-explain");
    let state = nobody_state(&dir);
    let target = precious(&dir);
    for name in ["last-non-normal", "mode.json"] {
        plant(&format!(
            "ln -sf {} {}/{name}",
            target.display(),
            state.display()
        ));
        let output = finishes(agent(&dir).arg("--explain"));
        let all = format!("{}{}", stdout(&output), stderr(&output));
        assert!(!all.contains("SECRET"), "{name}: {all}");
        assert!(all.contains("symbolic link"), "{name}: {all}");
        std::fs::remove_file(state.join(name)).unwrap();
    }
}

#[test]
fn fifos_devices_and_huge_files_hang_nothing_and_are_a_clean_error() {
    if !two_users("fifos_devices_and_huge_files_hang_nothing") {
        return;
    }
    let dir = TempDir::new("hostile-fifo");
    let state = nobody_state(&dir);
    let since_last = [("LB_FEEDBACK_CPU_MODE", "since-last")];
    for name in ["mode.json", "last-non-normal", "cpu-counters"] {
        for entry in std::fs::read_dir(&state).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        plant(&format!("mkfifo {}/{name}", state.display()));
        // By hand, over a socket as xinetd runs it, and root's mode commands.
        let output = finishes(agent(&dir).envs(since_last).arg("--explain"));
        let text = format!("{}{}", stdout(&output), stderr(&output));
        if name != "cpu-counters" {
            assert!(text.contains("FIFO"), "{name}: {text}");
        }
        let (mut client, mut child) = serve({
            let mut command = agent(&dir);
            command.envs(since_last);
            command
        });
        let line = reply(&mut client, &mut child);
        match name {
            "mode.json" => assert_eq!(line, "error:state\n"),
            // An unusable stamp: availability first.
            "last-non-normal" => assert!(line.starts_with("up ready "), "{line}"),
            _ => assert!(line.ends_with("%\n"), "{line}"),
        }
        assert!(finishes(agent(&dir).arg("mode")).status.code().is_some());
        let set = finishes(agent(&dir).args(["mode", "drain"]));
        assert!(set.status.success(), "{name}: {}", stderr(&set));
        finishes(agent(&dir).args(["mode", "reset"]));
    }
    // A device behind a link, and a regular file far larger than any state file.
    plant(&format!("ln -s /dev/zero {}/mode.json", state.display()));
    let output = finishes(agent(&dir).arg("mode"));
    assert!(
        stderr(&output).contains("symbolic link"),
        "{}",
        stderr(&output)
    );
    std::fs::remove_file(state.join("mode.json")).unwrap();
    std::fs::remove_file(state.join("last-non-normal")).unwrap();
    plant(&format!(
        "truncate -s 1G {0}/mode.json && truncate -s 1G {0}/last-non-normal",
        state.display()
    ));
    let output = finishes(agent(&dir).arg("--explain"));
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(text.contains("more than the 4096"), "{text}");
}

/// A config whose RAM threshold of 1 % drains any machine, and one that never drains.
const DRAINS: &str = r#"{"ram": {"threshold": 1}}"#;
const NORMAL: &str = "{}";

#[test]
fn an_old_stamp_in_a_directory_the_agent_cannot_write_means_up_ready() {
    if !two_users("an_old_stamp_in_a_directory_the_agent_cannot_write_means_up_ready") {
        return;
    }
    let dir = TempDir::new("stale-readonly");
    // Root's directory (wrong owner for the agent, which runs as nobody) with an hour-old stamp.
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(
        state.join("last-non-normal"),
        (now_ms() - 3_600_000).to_string(),
    )
    .unwrap();
    dir.file("config.json", DRAINS);
    let output = finishes(&mut as_nobody(&mut agent(&dir)));
    assert!(
        stdout(&output).starts_with("drain #ram"),
        "{}",
        stderr(&output)
    );
    dir.file("config.json", NORMAL);
    let output = finishes(&mut as_nobody(agent(&dir).arg("--explain")));
    let text = stdout(&output);
    assert!(text.contains("reply       up ready "), "{text}");
    assert!(text.contains("unusable"), "{text}");
}

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_stamp_that_cannot_be_written_on_a_full_or_read_only_disk_is_not_trusted() {
    if !two_users("a_stamp_that_cannot_be_written_on_a_full_disk_is_not_trusted") {
        return;
    }
    let dir = TempDir::new("stale-full");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "lbf-full"])
        .arg(&state)
        .output()
        .unwrap();
    if !mounted.status.success() {
        // Containers without CAP_SYS_ADMIN: the unwritable-directory test covers the rule.
        eprintln!(
            "SKIPPED: a_stamp_that_cannot_be_written_on_a_full_disk: mount not allowed here ({})",
            stderr(&mounted).trim()
        );
        return;
    }
    let _unmount = Mounted(state.clone());
    std::fs::write(
        state.join("last-non-normal"),
        (now_ms() - 3_600_000).to_string(),
    )
    .unwrap();
    // Fill it: the write fails once no page is left.
    let filler = std::fs::File::create(state.join("filler")).unwrap();
    let mut filler = std::io::BufWriter::new(filler);
    while std::io::Write::write_all(&mut filler, &[0; 4096])
        .and_then(|()| std::io::Write::flush(&mut filler))
        .is_ok()
    {}
    // Open for writing, it would keep the remount below from making the mount read-only.
    drop(filler);
    let probe = |config: &str| {
        dir.file("config.json", config);
        let (mut client, mut child) = serve(agent(&dir));
        reply(&mut client, &mut child)
    };
    let line = probe(DRAINS);
    assert!(line.starts_with("drain #ram"), "{line}");
    let line = probe(NORMAL);
    assert!(line.starts_with("up ready "), "{line}");

    // Read-only, with an old stamp nothing can remove: not trusted either.
    std::fs::remove_file(state.join("filler")).unwrap();
    std::fs::write(
        state.join("last-non-normal"),
        (now_ms() - 3_600_000).to_string(),
    )
    .unwrap();
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(remounted.success());
    let line = probe(DRAINS);
    assert!(line.starts_with("drain #ram"), "{line}");
    let line = probe(NORMAL);
    assert!(line.starts_with("up ready "), "{line}");
}

#[test]
fn a_timed_mode_set_with_the_clock_a_year_ahead_keeps_its_length() {
    if !e2e::available(
        "a_timed_mode_set_with_the_clock_a_year_ahead_keeps_its_length",
        &["faketime"],
    ) {
        return;
    }
    let dir = TempDir::new("clock-mode");
    let mut ahead = Command::new("faketime");
    let set = agent(&dir);
    ahead
        .args(["-f", "+365d", BIN])
        .args(["mode", "drain", "--for", "15m"])
        .env_clear()
        .envs(set_vars(&set));
    let output = finishes(&mut ahead);
    assert!(output.status.success(), "{}", stderr(&output));
    for _ in 0..2 {
        let shown = stdout(&finishes(agent(&dir).arg("mode")));
        assert!(shown.starts_with("drain ("), "{shown}");
        assert!(
            shown.contains("expires in 15m 0s") || shown.contains("expires in 14m 59s"),
            "{shown}"
        );
    }
}

#[test]
fn a_recovery_stamp_in_the_future_opens_one_window_not_every_reply() {
    let dir = TempDir::new("clock-stamp");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let year_ms = 365 * 24 * 3_600_000;
    std::fs::write(
        state.join("last-non-normal"),
        (now_ms() + year_ms).to_string(),
    )
    .unwrap();
    let probe = || {
        let mut command = agent(&dir);
        command.env("LB_FEEDBACK_RECOVERY_SECONDS", "1");
        let (mut client, mut child) = serve(command);
        reply(&mut client, &mut child)
    };
    let first = probe();
    assert!(first.starts_with("up ready "), "{first}");
    std::thread::sleep(Duration::from_millis(1200));
    let later = probe();
    assert!(
        !later.starts_with("up ready") && later.ends_with("%\n"),
        "{later}"
    );
}

#[test]
fn root_creating_the_directory_gives_it_to_state_owner_or_says_what_to_fix() {
    if !two_users("root_creating_the_directory_gives_it_to_state_owner") {
        return;
    }
    let dir = TempDir::new("owner");
    let state = dir.path().join("state");
    let output = finishes(
        agent(&dir)
            .env("LB_FEEDBACK_STATE_OWNER", "nobody")
            .args(["mode", "drain"]),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::metadata(&state).unwrap().uid(), NOBODY);
    assert_eq!(
        std::fs::metadata(state.join("mode.json")).unwrap().uid(),
        NOBODY
    );
    // The agent, as that user, goes on writing there.
    let output = finishes(&mut as_nobody(agent(&dir).args(["mode", "normal"])));
    assert!(output.status.success(), "{}", stderr(&output));

    std::fs::remove_dir_all(&state).unwrap();
    let output = finishes(agent(&dir).args(["mode", "drain"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("note: created"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("state_owner"),
        "{}",
        stdout(&output)
    );

    std::fs::remove_dir_all(&state).unwrap();
    let output = finishes(
        agent(&dir)
            .env("LB_FEEDBACK_STATE_OWNER", "no-such-user-here")
            .args(["mode", "drain"]),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no such user"),
        "{}",
        stderr(&output)
    );
}
