//! A custom monitor's command: run without a shell, with the agent's own privileges, stdin
//! empty and stderr discarded. Its result is its exit status (0 by its deadline) and what it
//! wrote to stdout (at most [`MAX_OUTPUT`]) until it exited and [`AFTER_EXIT`] more: not
//! until every holder of the pipe has closed it, so a child it left running (`sleep 600 &`)
//! cannot turn a finished command into a timeout. Then, whatever happened, its whole process
//! group (a job object on Windows) is killed before the command is reaped, and on Linux the
//! descendants that left the group and were handed to a subreaper service are killed too
//! ([`super::orphans`]). No thread is started on Unix: the pipe is polled by the caller.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::MAX_OUTPUT;
use crate::ioerr::io_reason;

/// How long output is still read once the command has exited: what it wrote just before
/// exiting may still be on its way through a child that shares the pipe, but a child that
/// keeps the pipe open for good must not hold the result.
pub const AFTER_EXIT: Duration = Duration::from_millis(50);
/// How often a command that is still running is checked for its exit while its output pipe
/// stays open.
const EXIT_CHECK: Duration = Duration::from_millis(10);

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
    let mut child = super::orphans::spawn(&mut command)
        .map_err(|err| format!("cannot start {program:?}: {}", io_reason(&err)))?;
    let group = match group::Group::of(&child) {
        Ok(group) => group,
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            super::orphans::reaped(&child);
            return Err(format!("cannot contain {program:?}: {}", io_reason(&err)));
        }
    };
    let outcome = finish(&mut child, deadline);
    // Before the reap: while the leader is a zombie its group's id cannot be reused.
    group.kill();
    let _ = child.wait();
    super::orphans::reaped(&child);
    outcome
}

fn finish(child: &mut Child, deadline: Instant) -> Result<String, String> {
    let Some(stdout) = child.stdout.take() else {
        return Err("no standard output".into());
    };
    let mut output = output::Output::new(stdout)
        .map_err(|err| format!("cannot read its output: {}", io_reason(&err)))?;
    let timed_out = || "did not finish within its timeout; killed".to_string();
    let too_long = || format!("wrote more than {} KiB; killed", MAX_OUTPUT / 1024);
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(err) => return Err(format!("cannot wait for it: {}", io_reason(&err))),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        if output.ended() {
            // The output has ended; the exit follows at once unless the command closed it
            // early.
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(EXIT_CHECK);
        } else {
            output
                .read_for(EXIT_CHECK.min(left))
                .map_err(|err| format!("cannot read its output: {}", io_reason(&err)))?;
            if output.len() > MAX_OUTPUT {
                return Err(too_long());
            }
        }
    };
    output
        .read_for(AFTER_EXIT)
        .map_err(|err| format!("cannot read its output: {}", io_reason(&err)))?;
    if output.len() > MAX_OUTPUT {
        return Err(too_long());
    }
    if !status.success() {
        return Err(format!("failed: {status}"));
    }
    Ok(String::from_utf8_lossy(&output.into_bytes()).into_owned())
}

/// The command's stdout read without a thread: the pipe is non-blocking and polled.
#[cfg(unix)]
mod output {
    use std::io::{self, Read};
    use std::os::fd::AsRawFd;
    use std::process::ChildStdout;
    use std::time::{Duration, Instant};

    use super::MAX_OUTPUT;

    pub struct Output {
        pipe: ChildStdout,
        bytes: Vec<u8>,
        ended: bool,
    }

    impl Output {
        pub fn new(pipe: ChildStdout) -> io::Result<Output> {
            let fd = pipe.as_raw_fd();
            // SAFETY: fcntl on a descriptor `pipe` owns; no memory is passed.
            let set = unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
            };
            if !set {
                return Err(io::Error::last_os_error());
            }
            Ok(Output {
                pipe,
                bytes: Vec::new(),
                ended: false,
            })
        }

        /// Whether every writer has closed the pipe.
        pub fn ended(&self) -> bool {
            self.ended
        }

        pub fn len(&self) -> usize {
            self.bytes.len()
        }

        pub fn into_bytes(self) -> Vec<u8> {
            self.bytes
        }

        /// Reads what comes for `time`, or until the end of the output or one byte past
        /// [`MAX_OUTPUT`].
        pub fn read_for(&mut self, time: Duration) -> io::Result<()> {
            let until = Instant::now() + time;
            let mut chunk = [0; 8192];
            while !self.ended && self.bytes.len() <= MAX_OUTPUT {
                match self.pipe.read(&mut chunk) {
                    Ok(0) => self.ended = true,
                    Ok(n) => self
                        .bytes
                        .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        self.wait(left)?;
                    }
                    Err(err) => return Err(err),
                }
            }
            Ok(())
        }

        /// Until the pipe is readable (or closed) or `time` has passed.
        fn wait(&self, time: Duration) -> io::Result<()> {
            let mut fd = libc::pollfd {
                fd: self.pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // Rounded up: a timeout of 0 ms would spin.
            let ms = i32::try_from(time.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            // SAFETY: one pollfd, valid for the call.
            match unsafe { libc::poll(&mut fd, 1, ms) } {
                -1 => {
                    let err = io::Error::last_os_error();
                    match err.kind() {
                        io::ErrorKind::Interrupted => Ok(()),
                        _ => Err(err),
                    }
                }
                _ => Ok(()),
            }
        }
    }
}

/// The command's stdout read by a thread (Windows pipes cannot be polled), which sends each
/// chunk as it comes. The thread ends when the last holder of the pipe closes it, and the job
/// object's kill ends every holder, so it does not outlive the command.
#[cfg(windows)]
mod output {
    use std::io::{self, Read};
    use std::process::ChildStdout;
    use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
    use std::time::{Duration, Instant};

    use super::MAX_OUTPUT;

    pub struct Output {
        chunks: Receiver<io::Result<Vec<u8>>>,
        bytes: Vec<u8>,
        ended: bool,
    }

    impl Output {
        pub fn new(mut pipe: ChildStdout) -> io::Result<Output> {
            let (send, chunks) = mpsc::channel();
            std::thread::Builder::new()
                .name("lb-feedback-stdout".into())
                .spawn(move || {
                    let mut sent = 0;
                    let mut chunk = [0; 8192];
                    // One byte past the bound is enough to know it was passed.
                    while sent <= MAX_OUTPUT {
                        let result = match pipe.read(&mut chunk) {
                            Ok(0) => break,
                            Ok(n) => Ok(chunk.get(..n).unwrap_or_default().to_vec()),
                            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                            Err(err) => Err(err),
                        };
                        let failed = result.is_err();
                        sent += result.as_ref().map_or(0, Vec::len);
                        if send.send(result).is_err() || failed {
                            break;
                        }
                    }
                })?;
            Ok(Output {
                chunks,
                bytes: Vec::new(),
                ended: false,
            })
        }

        pub fn ended(&self) -> bool {
            self.ended
        }

        pub fn len(&self) -> usize {
            self.bytes.len()
        }

        pub fn into_bytes(self) -> Vec<u8> {
            self.bytes
        }

        pub fn read_for(&mut self, time: Duration) -> io::Result<()> {
            let until = Instant::now() + time;
            while !self.ended && self.bytes.len() <= MAX_OUTPUT {
                let left = until.saturating_duration_since(Instant::now());
                match self.chunks.recv_timeout(left) {
                    Ok(chunk) => self.bytes.extend_from_slice(&chunk?),
                    Err(RecvTimeoutError::Disconnected) => self.ended = true,
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
            Ok(())
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
