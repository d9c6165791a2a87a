//! The Windows Application event log under the source `lb-feedback`: registering the source
//! (the registry key `lb-feedback-service install` and the MSI create) and reporting one line.
//!
//! Each event carries its whole text as one insertion string for message 1, whose text in the
//! message table built into lb-feedback-service.exe (contrib/windows/messages.mc) is just
//! `%1`: Event Viewer shows the line as written, without the "description cannot be found"
//! preface that an event of a source without a message file gets.

/// The source name, and the registry key under which Event Viewer finds its message file.
pub const SOURCE: &str = "lb-feedback";
pub const SOURCE_KEY: &str = r"SYSTEM\CurrentControlSet\Services\EventLog\Application\lb-feedback";
/// The one message in the table: `%1`.
pub const MESSAGE_ID: u32 = 1;
/// ReportEventW takes at most 31,839 characters per string; longer lines are cut there.
const MAX_CHARS: usize = 31_839;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Information,
}

/// `text` as a NUL-terminated UTF-16 string for the API; an interior NUL (which would end the
/// string early) becomes U+FFFD, and a line too long for the event log is cut.
pub fn wide(text: &str) -> Vec<u16> {
    let mut out: Vec<u16> = text
        .encode_utf16()
        .map(|unit| if unit == 0 { 0xFFFD } else { unit })
        .take(MAX_CHARS)
        .collect();
    out.push(0);
    out
}

#[cfg(windows)]
pub use imp::{EventLog, deregister, register};

#[cfg(windows)]
mod imp {
    use std::path::Path;
    use std::ptr::{null, null_mut};

    use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS, HANDLE};
    use windows_sys::Win32::System::EventLog::{
        DeregisterEventSource, EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE,
        EVENTLOG_WARNING_TYPE, RegisterEventSourceW, ReportEventW,
    };
    use windows_sys::Win32::System::Registry::{
        HKEY, HKEY_LOCAL_MACHINE, KEY_SET_VALUE, REG_DWORD, REG_EXPAND_SZ, REG_OPTION_NON_VOLATILE,
        RegCloseKey, RegCreateKeyExW, RegDeleteTreeW, RegSetValueExW,
    };

    use super::{Level, MESSAGE_ID, SOURCE, SOURCE_KEY, wide};

    /// EVENTLOG_ERROR_TYPE | WARNING | INFORMATION: what this source reports.
    const TYPES_SUPPORTED: u32 = 7;

    /// A handle from RegisterEventSourceW, deregistered when dropped.
    pub struct EventLog(HANDLE);

    // The handle is only passed to ReportEventW, which may be called from any thread.
    unsafe impl Send for EventLog {}

    impl EventLog {
        pub fn open() -> std::io::Result<EventLog> {
            let source = wide(SOURCE);
            // SAFETY: a NUL-terminated string that outlives the call; null means this computer.
            let handle = unsafe { RegisterEventSourceW(null(), source.as_ptr()) };
            match handle.is_null() {
                true => Err(std::io::Error::last_os_error()),
                false => Ok(EventLog(handle)),
            }
        }

        pub fn report(&self, level: Level, text: &str) -> std::io::Result<()> {
            let kind = match level {
                Level::Error => EVENTLOG_ERROR_TYPE,
                Level::Warning => EVENTLOG_WARNING_TYPE,
                Level::Information => EVENTLOG_INFORMATION_TYPE,
            };
            let text = wide(text);
            let strings = [text.as_ptr()];
            // SAFETY: one valid NUL-terminated string, no SID, no raw data.
            let ok = unsafe {
                ReportEventW(
                    self.0,
                    kind,
                    0,
                    MESSAGE_ID,
                    null_mut(),
                    1,
                    0,
                    strings.as_ptr(),
                    null(),
                )
            };
            match ok {
                0 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            }
        }
    }

    impl Drop for EventLog {
        fn drop(&mut self) {
            // SAFETY: the handle came from RegisterEventSourceW and is closed once.
            unsafe { DeregisterEventSource(self.0) };
        }
    }

    fn os_error(code: u32) -> std::io::Error {
        std::io::Error::from_raw_os_error(code as i32)
    }

    /// Creates the source's key with `message_file` (the exe holding the message table).
    pub fn register(message_file: &Path) -> std::io::Result<()> {
        let key_name = wide(SOURCE_KEY);
        let mut key: HKEY = null_mut();
        // SAFETY: valid strings and out-pointer; the key is closed below.
        let status = unsafe {
            RegCreateKeyExW(
                HKEY_LOCAL_MACHINE,
                key_name.as_ptr(),
                0,
                null(),
                REG_OPTION_NON_VOLATILE,
                KEY_SET_VALUE,
                null(),
                &mut key,
                null_mut(),
            )
        };
        if status != ERROR_SUCCESS {
            return Err(os_error(status));
        }
        let file = wide(&message_file.to_string_lossy());
        let set = |name: &str, kind, data: &[u8]| {
            let name = wide(name);
            // SAFETY: an open key, a NUL-terminated name, `data` of the length given.
            let status = unsafe {
                RegSetValueExW(
                    key,
                    name.as_ptr(),
                    0,
                    kind,
                    data.as_ptr(),
                    data.len() as u32,
                )
            };
            match status {
                ERROR_SUCCESS => Ok(()),
                other => Err(os_error(other)),
            }
        };
        let file_bytes: Vec<u8> = file.iter().flat_map(|unit| unit.to_le_bytes()).collect();
        let result = set("EventMessageFile", REG_EXPAND_SZ, &file_bytes)
            .and_then(|()| set("TypesSupported", REG_DWORD, &TYPES_SUPPORTED.to_le_bytes()));
        // SAFETY: opened above, closed once.
        unsafe { RegCloseKey(key) };
        result
    }

    /// Removes the source's key; one that is not there is not an error.
    pub fn deregister() -> std::io::Result<()> {
        let key_name = wide(SOURCE_KEY);
        // SAFETY: a predefined root key and a NUL-terminated subkey name.
        match unsafe { RegDeleteTreeW(HKEY_LOCAL_MACHINE, key_name.as_ptr()) } {
            ERROR_SUCCESS | ERROR_FILE_NOT_FOUND => Ok(()),
            other => Err(os_error(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_strings_end_in_one_nul_and_carry_no_other() {
        assert_eq!(wide("ok"), vec![u16::from(b'o'), u16::from(b'k'), 0]);
        assert_eq!(
            wide("a\0b"),
            vec![u16::from(b'a'), 0xFFFD, u16::from(b'b'), 0]
        );
        assert_eq!(wide("é€"), vec![0xE9, 0x20AC, 0]);
        let long = wide(&"x".repeat(40_000));
        assert_eq!(long.len(), MAX_CHARS + 1);
        assert_eq!(long.last(), Some(&0));
    }
}
