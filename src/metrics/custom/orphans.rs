//! Custom commands' descendants that left their process group (`setsid sleep 600 &`): the
//! group kill cannot reach them, so on Linux a long-running agent (lb-feedback-service) makes
//! itself their subreaper ([`adopt`]; the one-shot probe at its first command): when the command that started one exits, the kernel
//! hands it to the agent instead of init, and after each command this module kills and reaps
//! every child of the agent that is neither a running command nor in a running command's
//! group. Every command is started through [`spawn`], which records it, so a command just
//! started is never taken for an orphan. A killed orphan is reaped by the next sweep if it was
//! not yet gone. Needs `/proc/PID/task/TID/children` (CONFIG_PROC_CHILDREN, on in Debian's and
//! the common distributions' kernels); without it nothing is found and the orphans stay.
//!
//! Elsewhere (other Unixes; Windows, whose job object already holds every descendant) it only
//! starts the command.

#[cfg(target_os = "linux")]
pub use linux::{adopt, reaped, spawn};

#[cfg(not(target_os = "linux"))]
pub fn spawn(command: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    command.spawn()
}

#[cfg(not(target_os = "linux"))]
pub fn reaped(_child: &std::process::Child) {}

/// What a sweep does with one child of the agent.
#[cfg(any(target_os = "linux", test))]
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// A zombie: reap it.
    Reap,
    /// Alive outside every running command's group: kill it, then reap it.
    Kill,
    /// A running command, or in one's group (its group kill ends it).
    Leave,
}

/// The fate of child `pid` whose `/proc/PID/stat` says `stat`, among the running commands
/// `live` (each the leader of its own group); `None` when the text is not a stat line.
#[cfg(any(target_os = "linux", test))]
fn fate(pid: u32, stat: &str, live: &[u32]) -> Option<Fate> {
    // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses, so the fields
    // are counted from the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let group: u32 = fields.nth(1)?.parse().ok()?;
    // A running command that has just exited is a zombie too, but its own wait reaps it:
    // reaped here, that wait would fail (ECHILD) and the command with it.
    Some(if live.contains(&pid) {
        Fate::Leave
    } else if state == "Z" {
        Fate::Reap
    } else if live.contains(&group) {
        Fate::Leave
    } else {
        Fate::Kill
    })
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::path::Path;
    use std::process::{Child, Command};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, PoisonError};

    use super::{Fate, fate};

    /// Whether this process is a subreaper, so orphans come to it.
    static ADOPTING: AtomicBool = AtomicBool::new(false);
    /// The commands started and not yet reaped.
    static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    /// Makes this process the subreaper of everything it starts.
    pub fn adopt() -> io::Result<()> {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        ADOPTING.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Starts `command` and records it as running, in one step under the lock a sweep takes.
    /// The first command makes this process a subreaper if it is not one yet (the one-shot
    /// probe; the service adopts at start to log a failure), so what escapes is found before
    /// the probe exits; where the kernel refuses, what escapes stays, as elsewhere.
    pub fn spawn(command: &mut Command) -> io::Result<Child> {
        if !ADOPTING.load(Ordering::Relaxed) {
            drop(adopt());
        }
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        let child = command.spawn()?;
        live.push(child.id());
        Ok(child)
    }

    /// `child` has been reaped: forgets it, then sweeps the orphans.
    pub fn reaped(child: &Child) {
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|pid| *pid != child.id());
        if ADOPTING.load(Ordering::Relaxed) {
            sweep(Path::new("/proc"), std::process::id(), &live);
        }
    }

    /// Kills and reaps the children of process `me` under `proc` that [`fate`] says are
    /// orphans.
    fn sweep(proc: &Path, me: u32, live: &[u32]) {
        for pid in children(proc, me) {
            let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat"));
            let Some(fate) = stat.ok().and_then(|stat| fate(pid, &stat, live)) else {
                continue;
            };
            let Ok(id) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // SAFETY: kill and waitpid on a child of this process, which only this module
            // and the command's own wait reap (and that one is in `live`), so the id cannot
            // have been reused; no memory is passed but a status this frame owns.
            unsafe {
                match fate {
                    Fate::Leave => continue,
                    Fate::Kill => {
                        libc::kill(id, libc::SIGKILL);
                    }
                    Fate::Reap => {}
                }
                let mut status = 0;
                libc::waitpid(id, &mut status, libc::WNOHANG);
            }
        }
    }

    /// Every child of process `me`: a reparented orphan may belong to any of its threads.
    fn children(proc: &Path, me: u32) -> Vec<u32> {
        let Ok(tasks) = std::fs::read_dir(proc.join(me.to_string()).join("task")) else {
            return Vec::new();
        };
        let mut pids = Vec::new();
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                pids.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
        pids
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn children_are_read_from_every_thread() {
            let dir = std::env::temp_dir().join(format!("lbf-orphans-{}", std::process::id()));
            for (task, children) in [("10", "11 12 "), ("13", ""), ("14", "15 ")] {
                let path = dir.join("10/task").join(task);
                std::fs::create_dir_all(&path).unwrap();
                std::fs::write(path.join("children"), children).unwrap();
            }
            let mut found = children(&dir, 10);
            found.sort_unstable();
            assert_eq!(found, [11, 12, 15]);
            assert!(children(&dir, 99).is_empty());
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphans_are_killed_zombies_reaped_and_running_commands_left() {
        let live = [100, 200];
        assert_eq!(
            fate(100, "100 (sh) S 1 100 100 0", &live),
            Some(Fate::Leave)
        );
        assert_eq!(
            fate(101, "101 (sleep) S 1 100 100 0", &live),
            Some(Fate::Leave)
        );
        assert_eq!(
            fate(300, "300 (sleep) S 1 300 300 0", &live),
            Some(Fate::Kill)
        );
        assert_eq!(
            fate(101, "101 (sleep) Z 1 100 100 0", &live),
            Some(Fate::Reap)
        );
        // A command that has exited and is not yet waited for is its own wait's to reap.
        assert_eq!(
            fate(200, "200 (echo) Z 1 200 200 0", &live),
            Some(Fate::Leave)
        );
        // A name with spaces and a parenthesis.
        assert_eq!(
            fate(301, "301 (a) b (c) S 1 301 301 0", &live),
            Some(Fate::Kill)
        );
        assert_eq!(fate(302, "garbage", &live), None);
    }
}
