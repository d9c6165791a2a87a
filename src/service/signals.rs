//! SIGTERM and Ctrl-C (SIGINT; on Windows Ctrl-C and Ctrl-Break) become a clean stop: the
//! listener stops accepting, finishes the replies in flight and `run` exits 0. SIGHUP (Unix)
//! asks the reload thread to reread the config ([`super::reloader`]): this thread never waits
//! for a file, so a stop is never held by a reload.
//!
//! Unix: signal-hook's iterator, read by one thread (no code of ours runs inside a signal
//! handler). Windows: a console control handler, which Windows runs on a thread of its own.

use std::io;

use super::Stop;

/// Keeps the handling installed; dropping it ends the Unix signal thread.
#[cfg(unix)]
pub struct Signals {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(unix)]
pub fn install(stop: &Stop, reload: impl Fn() + Send + 'static) -> io::Result<Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = signals.handle();
    let stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("lbf-signals".into())
        .spawn(move || {
            // Ends when the handle is closed.
            for signal in signals.forever() {
                if signal == SIGHUP {
                    reload();
                } else {
                    stop.trigger();
                    break;
                }
            }
        })?;
    Ok(Signals {
        handle,
        thread: Some(thread),
    })
}

#[cfg(unix)]
impl Drop for Signals {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The console handler stays for the life of the process: a second `run` in one process
/// does not happen, and removing it would race with an event being delivered.
#[cfg(windows)]
pub struct Signals;

#[cfg(windows)]
static CONSOLE_STOP: std::sync::OnceLock<Stop> = std::sync::OnceLock::new();

/// `reload`: Windows consoles have no SIGHUP; the service reloads on the SCM's `paramchange`.
#[cfg(windows)]
pub fn install(stop: &Stop, _reload: impl Fn() + Send + 'static) -> io::Result<Signals> {
    use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;

    if CONSOLE_STOP.set(stop.clone()).is_err() {
        return Err(io::Error::other("the console handler is already installed"));
    }
    // SAFETY: `on_console_event` is a plain function with the signature Windows expects, and
    // lives as long as the process.
    if unsafe { SetConsoleCtrlHandler(Some(on_console_event), 1) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Signals)
}

#[cfg(windows)]
unsafe extern "system" fn on_console_event(event: u32) -> windows_sys::core::BOOL {
    use windows_sys::Win32::System::Console::{CTRL_BREAK_EVENT, CTRL_C_EVENT};

    match event {
        CTRL_C_EVENT | CTRL_BREAK_EVENT => {
            if let Some(stop) = CONSOLE_STOP.get() {
                stop.trigger();
            }
            1
        }
        // Closing the console window, logoff, shutdown: Windows' default (end the process).
        _ => 0,
    }
}
