//! The history's events to the local syslog daemon when `log: "syslog"` asks for it: one
//! datagram to `/dev/log` (the channel inetd services use), best effort and never waiting, so a
//! missing or stalled daemon costs the record, never the reply. On Windows the same events go
//! to the Application event log.

use crate::config::{Config, LogTo};
use crate::state::history::Event;

/// daemon.notice: a state change worth a line, not a problem.
#[cfg(unix)]
const PRIORITY: u8 = 3 * 8 + 5;

/// Sends `event` if the config says so.
pub fn tell(config: &Config, event: Option<&Event>) {
    if let (LogTo::Syslog, Some(event)) = (config.log, event) {
        send(&event.to_string());
    }
}

/// `<29>lb-feedback[PID]: MESSAGE`: RFC 3164 without the timestamp and host, which the local
/// daemon adds (rsyslog and journald both do).
#[cfg(unix)]
fn send(message: &str) {
    use std::os::unix::net::UnixDatagram;
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let line = format!("<{PRIORITY}>lb-feedback[{}]: {message}", std::process::id());
    let _ = socket
        .set_nonblocking(true)
        .and_then(|()| socket.connect("/dev/log"))
        .and_then(|()| socket.send(line.as_bytes()));
}

/// Windows has no /dev/log: the Application event log takes its place, an Information event
/// from the source `lb-feedback`. Opened per event: state changes are rare.
#[cfg(windows)]
fn send(message: &str) {
    if let Ok(events) = crate::eventlog::EventLog::open() {
        let _ = events.report(crate::eventlog::Level::Information, message);
    }
}

#[cfg(not(any(unix, windows)))]
fn send(_message: &str) {}
