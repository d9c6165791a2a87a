//! Raw figures from the operating system, as loads in percent: CPU busy share, RAM in use,
//! established TCP connections on a port. The OS-specific parts live behind `cfg` here.

pub mod cpu;
pub mod memory;
pub mod tcp;

/// A figure that could not be read; `monitor` becomes the reply's `error:<monitor>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricError {
    pub monitor: &'static str,
    pub message: String,
}

impl std::fmt::Display for MetricError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.monitor, self.message)
    }
}

impl std::error::Error for MetricError {}
