//! A real cgroup v1 for the tests that run the agent inside one (tests/cgroup_v1.rs,
//! tests/pressure.rs): created in the hierarchies asked for, the processes started in it
//! killed and its directories removed when it drops. Needs root and writable v1 hierarchies.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A cgroup in each of some v1 hierarchies, with the processes started in it; dropping it
/// kills them and removes the directories, whatever happened before (a child's guard drops
/// before its parent's: declare it after).
pub struct Cgroup {
    pub name: String,
    dirs: Vec<PathBuf>,
    children: Vec<Child>,
}

impl Cgroup {
    /// `/lbf-test-PID` + `suffix` in each of `controllers`' hierarchies, with `limits`
    /// written in order, or why this machine cannot have it.
    pub fn create(
        suffix: &str,
        controllers: &[&str],
        limits: &[(&str, &str, String)],
    ) -> Result<Cgroup, String> {
        let name = format!("lbf-test-{}{suffix}", std::process::id());
        let mut cgroup = Cgroup {
            name: format!("/{name}"),
            dirs: Vec::new(),
            children: Vec::new(),
        };
        for controller in controllers {
            let top = PathBuf::from("/sys/fs/cgroup").join(controller);
            if !top.join("cgroup.procs").is_file() {
                return Err(format!(
                    "no cgroup v1 {controller} hierarchy at {}",
                    top.display()
                ));
            }
            let dir = top.join(&name);
            std::fs::create_dir(&dir)
                .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
            cgroup.dirs.push(dir);
        }
        for (controller, file, value) in limits {
            let path = PathBuf::from("/sys/fs/cgroup")
                .join(controller)
                .join(&name)
                .join(file);
            std::fs::write(&path, value)
                .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        }
        Ok(cgroup)
    }

    /// `command` wrapped so that it joins this cgroup before it starts.
    pub fn inside(&self, command: &Command) -> Command {
        let joins: Vec<String> = self
            .dirs
            .iter()
            .map(|dir| format!("echo $$ > {}/cgroup.procs", dir.display()))
            .collect();
        let mut wrapped = Command::new("sh");
        wrapped
            .arg("-c")
            .arg(format!("{} && exec \"$@\"", joins.join(" && ")))
            .arg("sh")
            .arg(command.get_program())
            .args(command.get_args());
        // The agent's commands start from an empty environment; sh and the burner need PATH.
        wrapped.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            wrapped.env("PATH", path);
        }
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                wrapped.env(key, value);
            }
        }
        wrapped
    }

    pub fn spawn(&mut self, command: &Command) {
        let child = self
            .inside(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    pub fn read(&self, controller: &str, file: &str) -> String {
        let dir = self
            .dirs
            .iter()
            .find(|d| d.starts_with(PathBuf::from("/sys/fs/cgroup").join(controller)));
        std::fs::read_to_string(dir.unwrap().join(file)).unwrap()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A directory goes once its last task has left; that can lag the reaping a little.
        let deadline = Instant::now() + Duration::from_secs(5);
        for dir in self.dirs.iter().rev() {
            while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
