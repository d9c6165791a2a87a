//! The seed's rules, pure: loads × importances give the idle percent, thresholds give drain.
//!
//! utilization = Σ(load × importance) ÷ (number of monitors with importance > 0);
//! percent = 100 − utilization, rounded to the nearest integer, clamped to 0..=100.
//! A monitor whose load reaches its (non-zero) threshold drains the server.

/// One monitor's figure as the rules see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    /// `cpu`, `ram` or `tcp:PORT`.
    pub name: String,
    /// Percent; a TCP load may pass 100.
    pub load: f64,
    pub importance: f64,
    /// Percent; 0 is off.
    pub threshold: f64,
}

impl Load {
    pub fn contribution(&self) -> f64 {
        self.load * self.importance
    }

    pub fn tripped(&self) -> bool {
        self.threshold > 0.0 && self.load >= self.threshold
    }
}

/// What the rules conclude from the loads.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub utilization: f64,
    /// The idle share HAProxy gets as `N%`.
    pub percent: u8,
    /// The first monitor at or over its threshold, by index into the loads.
    pub tripped: Option<usize>,
}

pub fn judge(loads: &[Load]) -> Verdict {
    let counted = loads.iter().filter(|l| l.importance > 0.0).count();
    let utilization = if counted == 0 {
        0.0
    } else {
        loads.iter().map(Load::contribution).sum::<f64>() / counted as f64
    };
    Verdict {
        utilization,
        percent: (100.0 - utilization).round().clamp(0.0, 100.0) as u8,
        tripped: loads.iter().position(Load::tripped),
    }
}

/// TCP load: established connections against the configured maximum, in percent.
pub fn tcp_load(established: u64, max_connections: u64) -> f64 {
    established as f64 / max_connections as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, load: f64, importance: f64, threshold: f64) -> Load {
        Load {
            name: name.into(),
            load,
            importance,
            threshold,
        }
    }

    #[test]
    fn cpu_and_ram_full_gives_zero() {
        let v = judge(&[load("cpu", 100.0, 1.0, 0.0), load("ram", 100.0, 1.0, 0.0)]);
        assert_eq!(v.percent, 0);
        assert_eq!(v.tripped, None);
    }

    #[test]
    fn ignored_monitor_does_not_divide() {
        let v = judge(&[load("cpu", 40.0, 1.0, 0.0), load("ram", 90.0, 0.0, 0.0)]);
        assert_eq!(v.percent, 60);
    }

    #[test]
    fn two_monitors_average() {
        let v = judge(&[load("cpu", 40.0, 1.0, 0.0), load("ram", 60.0, 1.0, 0.0)]);
        assert_eq!(v.utilization, 50.0);
        assert_eq!(v.percent, 50);
    }

    #[test]
    fn tcp_five_of_ten_gives_fifty() {
        let tcp = tcp_load(5, 10);
        assert_eq!(tcp, 50.0);
        let v = judge(&[
            load("cpu", 77.0, 0.0, 0.0),
            load("ram", 33.0, 0.0, 0.0),
            load("tcp:3389", tcp, 1.0, 0.0),
        ]);
        assert_eq!(v.percent, 50);
    }

    #[test]
    fn nothing_enabled_is_fully_idle() {
        assert_eq!(judge(&[]).percent, 100);
        assert_eq!(judge(&[load("cpu", 80.0, 0.0, 0.0)]).percent, 100);
    }

    #[test]
    fn importance_weighs_the_sum_but_not_the_count() {
        // The seed divides by how many monitors count, not by the sum of importances:
        // cpu 30 × 2 + ram 20 × 1 = 80, over 2 monitors = 40 → 60%.
        let v = judge(&[load("cpu", 30.0, 2.0, 0.0), load("ram", 20.0, 1.0, 0.0)]);
        assert_eq!(v.utilization, 40.0);
        assert_eq!(v.percent, 60);
        // Which can pass 100 and clamps to 0.
        assert_eq!(judge(&[load("cpu", 60.0, 2.0, 0.0)]).percent, 0);
    }

    #[test]
    fn rounds_to_nearest_and_clamps() {
        assert_eq!(judge(&[load("cpu", 12.4, 1.0, 0.0)]).percent, 88);
        assert_eq!(judge(&[load("cpu", 12.6, 1.0, 0.0)]).percent, 87);
        assert_eq!(judge(&[load("cpu", 12.5, 1.0, 0.0)]).percent, 88);
        assert_eq!(
            judge(&[load("tcp:80", tcp_load(30, 10), 1.0, 0.0)]).percent,
            0
        );
    }

    #[test]
    fn threshold_trips_at_or_over_and_zero_is_off() {
        assert_eq!(judge(&[load("cpu", 90.0, 1.0, 90.0)]).tripped, Some(0));
        assert_eq!(judge(&[load("cpu", 89.9, 1.0, 90.0)]).tripped, None);
        assert_eq!(judge(&[load("cpu", 100.0, 1.0, 0.0)]).tripped, None);
        // A monitor that does not count towards the percent can still drain.
        let v = judge(&[load("cpu", 10.0, 1.0, 0.0), load("tcp:80", 50.0, 0.0, 40.0)]);
        assert_eq!(v.tripped, Some(1));
        assert_eq!(v.percent, 90);
    }
}
