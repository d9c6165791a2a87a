//! The state directory as an attacker on the same host uses it: the agent's unprivileged user
//! (here nobody, through `setpriv`) owns it and plants symlinks, FIFOs, devices and huge files
//! while root runs `lb-feedback mode` and probes. Nothing may make root write, create,
//! truncate or print another file, and nothing may hang. Also: a poller table that cannot be
//! brought up to date (unwritable directory, full disk) and clock steps (`faketime`).
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
use std::time::{Duration, Instant};

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
        "cd {} && perl -e 'for $p (1..{}) {{ symlink(\"{}\", \".mode.json.$p.0.tmp\") }}'",
        state.display(),
        pid_max.trim(),
        target.display()
    ));
    // Root's probe makes the poller table, root's mode rewrites it (every poller owed).
    let (mut client, mut child) = serve(agent(&dir));
    assert!(reply(&mut client, &mut child).starts_with("up ready "));
    let output = finishes(agent(&dir).args(["mode", "drain"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_untouched(&target);
    for name in ["mode.json", "pollers"] {
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
    // `--explain` reads the mode file, `status` the poller table too.
    for (name, command) in [("pollers", "status"), ("mode.json", "--explain")] {
        plant(&format!(
            "ln -sf {} {}/{name}",
            target.display(),
            state.display()
        ));
        let output = finishes(agent(&dir).arg(command));
        let all = format!("{}{}", stdout(&output), stderr(&output));
        assert!(!all.contains("SECRET"), "{name}: {all}");
        assert!(all.contains("symbolic link"), "{name}: {all}");
        std::fs::remove_file(state.join(name)).unwrap();
    }
    // A probe over a socket follows no link at the table either: `up ready`, availability
    // first, and the target untouched.
    plant(&format!(
        "ln -sf {} {}/pollers",
        target.display(),
        state.display()
    ));
    let (mut client, mut child) = serve(agent(&dir));
    assert!(reply(&mut client, &mut child).starts_with("up ready "));
    assert_untouched(&target);
}

#[test]
fn fifos_devices_and_huge_files_hang_nothing_and_are_a_clean_error() {
    if !two_users("fifos_devices_and_huge_files_hang_nothing") {
        return;
    }
    let dir = TempDir::new("hostile-fifo");
    let state = nobody_state(&dir);
    let since_last = [("LB_FEEDBACK_CPU_MODE", "since-last")];
    for name in ["mode.json", "pollers", "cpu-counters"] {
        for entry in std::fs::read_dir(&state).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        plant(&format!("mkfifo {}/{name}", state.display()));
        // By hand, over a socket as xinetd runs it, and root's mode commands.
        let output = finishes(agent(&dir).envs(since_last).arg("--explain"));
        let text = format!("{}{}", stdout(&output), stderr(&output));
        if name == "mode.json" {
            assert!(text.contains("FIFO"), "{name}: {text}");
        }
        let output = finishes(agent(&dir).arg("status"));
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
            // An unusable poller table: availability first.
            "pollers" => assert!(line.starts_with("up ready "), "{line}"),
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
    let _ = std::fs::remove_file(state.join("pollers"));
    plant(&format!(
        "truncate -s 1G {0}/mode.json && truncate -s 1G {0}/pollers",
        state.display()
    ));
    let output = finishes(agent(&dir).arg("--explain"));
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(text.contains("more than the 4096"), "{text}");
    std::fs::remove_file(state.join("mode.json")).unwrap();
    let text = stdout(&finishes(agent(&dir).arg("status")));
    assert!(text.contains("more than the 2097152"), "{text}");
    let (mut client, mut child) = serve(agent(&dir));
    assert!(reply(&mut client, &mut child).starts_with("up ready "));
}

/// A config whose RAM threshold of 1 % drains any machine, and one that never drains.
const DRAINS: &str = r#"{"ram": {"threshold": 1}}"#;
const NORMAL: &str = "{}";

/// Polls over a socket until the base poller is owed nothing (new pollers are owed three
/// `up ready`), with `recovery_seconds` 0 so that takes four polls, not ten seconds.
fn settle_poller(dir: &TempDir) {
    for _ in 0..4 {
        let mut command = agent(dir);
        command.env("LB_FEEDBACK_RECOVERY_SECONDS", "0");
        let (mut client, mut child) = serve(command);
        reply(&mut client, &mut child);
    }
    let mut command = agent(dir);
    command.env("LB_FEEDBACK_RECOVERY_SECONDS", "0");
    let (mut client, mut child) = serve(command);
    let line = reply(&mut client, &mut child);
    assert!(!line.starts_with("up ready"), "{line}");
}

#[test]
fn a_poller_table_the_agent_cannot_write_means_up_ready() {
    if !two_users("a_poller_table_the_agent_cannot_write_means_up_ready") {
        return;
    }
    let dir = TempDir::new("stale-readonly");
    // Root's directory (wrong owner for the agent, which runs as nobody), with a table that
    // says the poller is owed nothing.
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    dir.file("config.json", NORMAL);
    settle_poller(&dir);
    dir.file("config.json", DRAINS);
    let (mut client, mut child) = serve(as_nobody(&mut agent(&dir)));
    let line = reply(&mut client, &mut child);
    assert!(line.starts_with("drain #ram"), "{line}");
    dir.file("config.json", NORMAL);
    let (mut client, mut child) = serve(as_nobody(&mut agent(&dir)));
    let line = reply(&mut client, &mut child);
    assert!(line.starts_with("up ready "), "{line}");
}

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_poller_table_that_cannot_be_written_on_a_full_or_read_only_disk_is_not_trusted() {
    if !two_users("a_poller_table_that_cannot_be_written_on_a_full_or_read_only_disk") {
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
            "SKIPPED: a_poller_table_that_cannot_be_written_on_a_full_or_read_only_disk: mount not allowed here ({})",
            stderr(&mounted).trim()
        );
        return;
    }
    let _unmount = Mounted(state.clone());
    dir.file("config.json", NORMAL);
    settle_poller(&dir);
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

    // Read-only, with a table nothing can remove that says the poller is owed nothing: not
    // trusted either.
    std::fs::remove_file(state.join("filler")).unwrap();
    dir.file("config.json", NORMAL);
    settle_poller(&dir);
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
fn a_poller_owed_since_a_year_ahead_gets_its_replies_not_a_year_of_them() {
    if !e2e::available(
        "a_poller_owed_since_a_year_ahead_gets_its_replies_not_a_year_of_them",
        &["faketime"],
    ) {
        return;
    }
    let dir = TempDir::new("clock-owed");
    dir.file("config.json", DRAINS);
    // Drained with the clock a year ahead: owed since then.
    let set = agent(&dir);
    let mut ahead = Command::new("faketime");
    ahead
        .args(["-f", "+365d", BIN])
        .env_clear()
        .envs(set_vars(&set));
    let (mut client, mut child) = serve(ahead);
    let line = reply(&mut client, &mut child);
    assert!(line.starts_with("drain #ram"), "{line}");
    dir.file("config.json", NORMAL);
    let probe = || {
        let mut command = agent(&dir);
        command.env("LB_FEEDBACK_RECOVERY_SECONDS", "1");
        let (mut client, mut child) = serve(command);
        reply(&mut client, &mut child)
    };
    for _ in 0..3 {
        let line = probe();
        assert!(line.starts_with("up ready "), "{line}");
    }
    std::thread::sleep(Duration::from_millis(1100));
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

/// The steady-steering memory (`steady`) planted as a link to a root-only file, a FIFO and a
/// 1 GB file: root's probes never follow, block on or read it all, and answer with the raw
/// figures, holding nothing (9 of 10 under a threshold of 95: `10%`, no held drain), while
/// `--explain` says why.
#[test]
fn a_planted_steady_memory_costs_the_hold_never_the_reply() {
    if !two_users("a_planted_steady_memory_costs_the_hold_never_the_reply") {
        return;
    }
    let dir = TempDir::new("hostile-steady");
    let state = nobody_state(&dir);
    let target = precious(&dir);
    let held = common::Connections::open(9);
    dir.file(
        "config.json",
        &format!(
            r#"{{"cpu": {{"importance": 0}}, "ram": {{"importance": 0}}, "recovery": "never",
                "tcp": [{{"port": {}, "max_connections": 10, "threshold": 95}}]}}"#,
            held.port()
        ),
    );
    let steady = state.join("steady");
    for plantation in [
        format!("ln -s {} {}", target.display(), steady.display()),
        format!("mkfifo {}", steady.display()),
        format!("truncate -s 1G {}", steady.display()),
    ] {
        let _ = std::fs::remove_file(&steady);
        plant(&plantation);
        let (mut client, mut child) = serve(agent(&dir));
        assert_eq!(reply(&mut client, &mut child), "10%\n", "{plantation}");
        let output = finishes(agent(&dir).arg("--explain"));
        assert!(
            stdout(&output).contains("the steady-steering memory is unusable"),
            "{plantation}: {}",
            stdout(&output)
        );
        assert!(!stdout(&output).contains("ROOT-ONLY-SECRET"));
    }
    assert_untouched(&target);
}
