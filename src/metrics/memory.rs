//! RAM load: (total − available) ÷ total, in percent, from sysinfo's RAM refresh only.

use sysinfo::{MemoryRefreshKind, System};

use super::MetricError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
}

impl Memory {
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }

    pub fn load(&self) -> f64 {
        self.used() as f64 / self.total as f64 * 100.0
    }
}

pub fn read() -> Result<Memory, MetricError> {
    let mut system = System::new().map_err(|err| MetricError {
        monitor: "ram",
        message: err.to_string(),
    })?;
    system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
    let memory = Memory {
        total: system.total_memory(),
        available: system.available_memory(),
    };
    if memory.total == 0 {
        return Err(MetricError {
            monitor: "ram",
            message: "the OS reported no memory".into(),
        });
    }
    Ok(memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_used_over_total() {
        let m = Memory {
            total: 16,
            available: 12,
        };
        assert_eq!(m.used(), 4);
        assert_eq!(m.load(), 25.0);
    }

    #[test]
    fn live_reading_is_sane() {
        let m = read().unwrap();
        assert!(m.total > 0 && m.available <= m.total);
    }
}
