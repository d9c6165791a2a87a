//! A custom monitor's command: run without a shell, with the agent's own privileges, stdin
//! empty, stderr discarded and stdout read up to [`MAX_OUTPUT`] by a thread. It must exit 0
//! by its deadline; whatever happens, its whole process group (a job object on Windows) is
//! killed before the command is reaped, so nothing it started is left behind.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::MAX_OUTPUT;
use crate::config::io_reason;

/// The command's standard output, when it exits 0 by `deadline` having written at most
/// [`MAX_OUTPUT`].
pub fn run(argv: &[String], deadline: Instant) -> Result<String, String> {
    let (program, args) = argv.split_first().ok_or("no program")?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    group::prepare(&mut command);
    let mut child = command
        .spawn()
        .map_err(|err| format!("cannot start {program:?}: {}", io_reason(&err)))?;
    let group = match group::Group::of(&child) {
        Ok(group) => group,
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot contain {program:?}: {}", io_reason(&err)));
        }
    };
    let outcome = finish(&mut child, deadline);
    // Before the reap: while the leader is a zombie its group's id cannot be reused.
    group.kill();
    let _ = child.wait();
    outcome
}

fn finish(child: &mut Child, deadline: Instant) -> Result<String, String> {
    let Some(stdout) = child.stdout.take() else {
        return Err("no standard output".into());
    };
    let (send, read) = mpsc::channel();
    // The reader ends at the end of the output or one byte past the bound; a grandchild that
    // left the group and keeps the pipe open keeps only this thread.
    std::thread::Builder::new()
        .name("lb-feedback-stdout".into())
        .spawn(move || {
            let mut out = Vec::new();
            let result = stdout.take(MAX_OUTPUT as u64 + 1).read_to_end(&mut out);
            let _ = send.send(result.map(|_| out));
        })
        .map_err(|err| format!("cannot start a thread: {err}"))?;
    let timed_out = || "did not finish within its timeout; killed".to_string();
    let out = match read.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(out)) if out.len() > MAX_OUTPUT => {
            return Err(format!("wrote more than {} KiB; killed", MAX_OUTPUT / 1024));
        }
        Ok(Ok(out)) => out,
        Ok(Err(err)) => return Err(format!("cannot read its output: {}", io_reason(&err))),
        Err(_) => return Err(timed_out()),
    };
    // The output has ended; the exit follows at once unless the command closed it early.
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            Ok(Some(status)) => return Err(format!("failed: {status}")),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Ok(None) => return Err(timed_out()),
            Err(err) => return Err(format!("cannot wait for it: {}", io_reason(&err))),
        }
    }
}

/// The command in a process group of its own, killed as one.
#[cfg(unix)]
mod group {
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};

    pub fn prepare(command: &mut Command) {
        command.process_group(0);
    }

    pub struct Group(libc::pid_t);

    impl Group {
        pub fn of(child: &Child) -> std::io::Result<Group> {
            libc::pid_t::try_from(child.id())
                .map(Group)
                .map_err(|_| std::io::Error::other("process id out of range"))
        }

        /// SIGKILL to every process left in the group (none is fine).
        pub fn kill(&self) {
            // SAFETY: kill(2) with a negative id signals that process group; no memory is
            // involved.
            unsafe {
                libc::kill(-self.0, libc::SIGKILL);
            }
        }
    }
}

/// The command in a job object, killed as one. It starts suspended and is resumed only once
/// it is in the job, so even a child it starts at once is in it too.
#[cfg(windows)]
mod group {
    use std::os::windows::io::AsRawHandle;
    use std::os::windows::process::CommandExt;
    use std::process::{Child, Command};

    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE};
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
    };
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
        SetInformationJobObject, TerminateJobObject,
    };
    use windows_sys::Win32::System::Threading::{
        CREATE_NO_WINDOW, CREATE_SUSPENDED, OpenThread, ResumeThread, THREAD_SUSPEND_RESUME,
    };

    pub fn prepare(command: &mut Command) {
        command.creation_flags(CREATE_SUSPENDED | CREATE_NO_WINDOW);
    }

    pub struct Group(HANDLE);

    impl Group {
        pub fn of(child: &Child) -> std::io::Result<Group> {
            // SAFETY: plain Win32 calls on handles this function owns or borrows from `child`;
            // every structure is zeroed and sized as the API asks.
            unsafe {
                let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if job.is_null() {
                    return Err(std::io::Error::last_os_error());
                }
                let group = Group(job);
                let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
                limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
                let size = std::mem::size_of_val(&limits) as u32;
                let info = (&raw const limits).cast();
                if SetInformationJobObject(job, JobObjectExtendedLimitInformation, info, size) == 0
                    || AssignProcessToJobObject(job, child.as_raw_handle() as HANDLE) == 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                resume(child.id())?;
                Ok(group)
            }
        }

        /// Ends every process in the job.
        pub fn kill(&self) {
            // SAFETY: the job handle is open until drop.
            unsafe {
                TerminateJobObject(self.0, 1);
            }
        }
    }

    impl Drop for Group {
        fn drop(&mut self) {
            // SAFETY: closes the handle this value owns, once; KILL_ON_JOB_CLOSE ends anything
            // still in the job.
            unsafe {
                CloseHandle(self.0);
            }
        }
    }

    /// Resumes the suspended process's threads (it has one: it has not run yet).
    unsafe fn resume(pid: u32) -> std::io::Result<()> {
        // SAFETY: the snapshot handle is closed below; the entry is sized as the API asks.
        unsafe {
            let snapshot = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
            if snapshot == INVALID_HANDLE_VALUE {
                return Err(std::io::Error::last_os_error());
            }
            let mut entry: THREADENTRY32 = std::mem::zeroed();
            entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
            let mut resumed = 0;
            let mut more = Thread32First(snapshot, &mut entry) != 0;
            while more {
                if entry.th32OwnerProcessID == pid {
                    let thread = OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID);
                    if !thread.is_null() {
                        if ResumeThread(thread) != u32::MAX {
                            resumed += 1;
                        }
                        CloseHandle(thread);
                    }
                }
                more = Thread32Next(snapshot, &mut entry) != 0;
            }
            CloseHandle(snapshot);
            match resumed {
                0 => Err(std::io::Error::other("could not resume it")),
                _ => Ok(()),
            }
        }
    }
}
