//! The seed's rules, pure: loads × importances give the idle percent, thresholds give drain.
//!
//! utilization = Σ(load × importance) ÷ (number of monitors with importance > 0);
//! percent = 100 − utilization, rounded to the nearest integer, clamped to 0..=100, and
//! raised to `min_percent`.
//! A monitor whose load reaches its (non-zero) threshold drains the server, and keeps it
//! draining until the load is at or below its release (hysteresis).

/// One monitor's figure as the rules see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    /// `cpu`, `ram` or `tcp:PORT`.
    pub name: String,
    /// Percent, as the weight uses it: smoothed when smoothing is on, else `raw`. A TCP
    /// load may pass 100.
    pub load: f64,
    /// This probe's own figure, in percent: the threshold acts on it, so a real overload
    /// drains at once however the weight is smoothed.
    pub raw: f64,
    pub importance: f64,
    /// Percent; 0 is off.
    pub threshold: f64,
    /// Percent: a drain this threshold caused lasts while `raw` is above it.
    pub release: f64,
    /// Whether this monitor was holding a drain when this probe began.
    pub held: bool,
}

impl Load {
    /// A monitor with the same figure for the weight and the threshold, holding nothing.
    pub fn new(name: String, load: f64, importance: f64, threshold: f64, release: f64) -> Load {
        Load {
            name,
            load,
            raw: load,
            importance,
            threshold,
            release,
            held: false,
        }
    }

    pub fn contribution(&self) -> f64 {
        self.load * self.importance
    }

    /// Whether this monitor drains the server: its figure reached the threshold, or it was
    /// holding a drain and has not yet come down to its release. The answer is also what it
    /// holds for the next probe.
    pub fn tripped(&self) -> bool {
        self.threshold > 0.0
            && (self.raw >= self.threshold || (self.held && self.raw > self.release))
    }

    /// Tripped only because it is holding a drain (its figure is below the threshold).
    pub fn holding(&self) -> bool {
        self.tripped() && self.raw < self.threshold
    }
}

/// What the rules conclude from the loads.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub utilization: f64,
    /// The idle share HAProxy gets as `N%`, at least `min_percent`.
    pub percent: u8,
    /// The percent the rule gave, when `min_percent` raised it.
    pub raised_from: Option<u8>,
    /// The first monitor at or over its threshold, by index into the loads.
    pub tripped: Option<usize>,
}

/// `min_percent` floors the percent: a cluster whose servers all report `0%` has no weight
/// left anywhere.
pub fn judge(loads: &[Load], min_percent: u8) -> Verdict {
    let counted = loads.iter().filter(|l| l.importance > 0.0).count();
    let utilization = if counted == 0 {
        0.0
    } else {
        loads.iter().map(Load::contribution).sum::<f64>() / counted as f64
    };
    let percent = (100.0 - utilization).round().clamp(0.0, 100.0) as u8;
    Verdict {
        utilization,
        percent: percent.max(min_percent),
        raised_from: (percent < min_percent).then_some(percent),
        tripped: loads.iter().position(Load::tripped),
    }
}

/// The moving average of a monitor's load: `previous` (when, in ms, and its value) moved
/// towards `raw` by 1 − e^(−Δt/τ), τ being `seconds`. Weighting by the time passed rather
/// than per probe makes the average the same however often HAProxy polls (and however many
/// load balancers do): a figure counts for as long as it stood. No previous value, smoothing
/// off, or a clock that went back: the new figure as it is. `libm::exp` rather than `f64::exp`,
/// which is glibc's libm.so.6: a shared library the dynamic build would load for this alone.
pub fn smooth(previous: Option<(u64, f64)>, raw: f64, now_ms: u64, seconds: u64) -> f64 {
    match previous {
        Some((at_ms, value)) if seconds > 0 && at_ms <= now_ms => {
            let passed = (now_ms - at_ms) as f64 / 1000.0;
            value + (1.0 - libm::exp(-passed / seconds as f64)) * (raw - value)
        }
        _ => raw,
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
        Load::new(name.into(), load, importance, threshold, threshold)
    }

    fn judge(loads: &[Load]) -> Verdict {
        super::judge(loads, 0)
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

    #[test]
    fn min_percent_floors_a_normal_reply_only() {
        let full = [load("cpu", 100.0, 1.0, 0.0)];
        let v = super::judge(&full, 5);
        assert_eq!((v.percent, v.raised_from), (5, Some(0)));
        let v = super::judge(&[load("cpu", 40.0, 1.0, 0.0)], 5);
        assert_eq!((v.percent, v.raised_from), (60, None));
        // The floor does not stop a threshold from draining.
        let v = super::judge(&[load("cpu", 100.0, 1.0, 90.0)], 5);
        assert_eq!(v.tripped, Some(0));
    }

    #[test]
    fn a_held_drain_lasts_until_the_load_is_at_or_below_release() {
        let at = |raw: f64, held: bool| Load {
            held,
            ..Load::new("tcp:80".into(), raw, 1.0, 95.0, 85.0)
        };
        // Not holding: only the threshold trips.
        assert!(!at(90.0, false).tripped());
        assert!(at(95.0, false).tripped());
        assert!(!at(95.0, false).holding());
        // Holding: above release it keeps draining, at or below it lets go.
        assert!(at(90.0, true).tripped() && at(90.0, true).holding());
        assert!(at(85.1, true).tripped());
        assert!(!at(85.0, true).tripped());
        assert!(!at(10.0, true).tripped());
        // A threshold of 0 is off, whatever was held.
        let off = Load {
            held: true,
            ..Load::new("cpu".into(), 99.0, 1.0, 0.0, 0.0)
        };
        assert!(!off.tripped());
    }

    #[test]
    fn smoothing_follows_the_time_passed_not_the_number_of_probes() {
        // Off, first figure, clock stepped back: the figure itself.
        assert_eq!(smooth(Some((0, 20.0)), 100.0, 1000, 0), 100.0);
        assert_eq!(smooth(None, 100.0, 1000, 10), 100.0);
        assert_eq!(smooth(Some((5000, 20.0)), 100.0, 1000, 10), 100.0);
        // One time constant moves it 63 % of the way.
        let one = smooth(Some((0, 0.0)), 100.0, 10_000, 10);
        assert!((one - 63.212).abs() < 0.01, "{one}");
        // Ten probes 1 s apart land where one probe 10 s later does.
        let mut value = (0, 0.0);
        for second in 1..=10 {
            value = (second * 1000, smooth(Some(value), 100.0, second * 1000, 10));
        }
        assert!((value.1 - one).abs() < 1e-9, "{} vs {one}", value.1);
        // The same figure fed twice in the same instant changes nothing the second time.
        let twice = smooth(Some((10_000, one)), 100.0, 10_000, 10);
        assert_eq!(twice, one);
    }

    #[test]
    fn a_one_second_burst_moves_a_smoothed_weight_only_a_little() {
        // 20 % load for a minute, then one probe 2 s later reads a burst at 100 %.
        let steady = (60_000, 20.0);
        let raw = judge(&[load("cpu", 100.0, 1.0, 0.0)]).percent;
        let smoothed = smooth(Some(steady), 100.0, 62_000, 10);
        let percent = judge(&[load("cpu", smoothed, 1.0, 0.0)]).percent;
        assert_eq!(raw, 0);
        // 20 + (1 − e^−0.2) × 80 = 34.5 → 65 %, where the raw burst says 0 %.
        assert_eq!(percent, 65);
    }
}
