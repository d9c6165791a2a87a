//! The words the agent itself puts after `error:` (and `#mode`, the reason of a drain by
//! mode): one for each built-in monitor and each failure that is no monitor's. A custom
//! monitor's name may be none of them ([`ALL`], checked where the config is
//! read), so `error:config` always means the config and `#sessions:…` the built-in monitor.

pub const CONFIG: &str = "config";
pub const STATE: &str = "state";
pub const PROFILE: &str = "profile";
/// lb-feedback-service's HTTP side: no sample in time.
pub const TIMEOUT: &str = "timeout";
pub const MODE: &str = "mode";
pub const CPU: &str = "cpu";
pub const RAM: &str = "ram";
pub const TCP: &str = "tcp";
pub const SESSIONS: &str = "sessions";
pub const PRESSURE: &str = "pressure";
pub const ALL: [&str; 10] = [
    CONFIG, STATE, PROFILE, TIMEOUT, MODE, CPU, RAM, TCP, SESSIONS, PRESSURE,
];
