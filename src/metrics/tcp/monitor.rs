//! The TCP monitor: established connections on each watched local port against its
//! `max_connections`, every port counted in one pass.

use super::count_established;
use crate::config::Monitors;
use crate::metrics::MetricError;
use crate::metrics::monitor::{Answered, Figure, Monitor, Started, Window, limits, load};
use crate::rules;

pub struct Tcp;

impl Monitor for Tcp {
    /// The watched ports, each once.
    type Needs = Vec<u16>;
    type Begun = ();
    /// Established connections per watched port.
    type Reading = Vec<(u16, u64)>;
    const LABELS: &'static [&'static str] = &["port"];

    fn need(monitors: &Monitors, needs: &mut Vec<u16>) {
        let enabled = monitors.tcp.iter().filter(|t| t.enabled());
        needs.extend(enabled.map(|t| t.port.get() as u16));
    }

    fn settle(needs: &mut Vec<u16>) {
        needs.sort_unstable();
        needs.dedup();
    }

    fn begin(ports: &Vec<u16>, _: &Window) -> Result<Started<()>, MetricError> {
        Ok((!ports.is_empty()).then_some(((), None)))
    }

    fn end(ports: &Vec<u16>, _: (), _: &Window) -> Result<Vec<(u16, u64)>, MetricError> {
        let counts = count_established(ports)?;
        Ok(ports.iter().copied().zip(counts).collect())
    }

    fn answer(
        monitors: &Monitors,
        reading: &Vec<(u16, u64)>,
        hysteresis: f64,
        answered: &mut Answered,
    ) -> Result<(), MetricError> {
        for monitor in monitors.tcp.iter().filter(|t| t.enabled()) {
            let port = monitor.port.get() as u16;
            let count = reading
                .iter()
                .find(|(p, _)| *p == port)
                .map_or(0, |(_, count)| *count);
            let max = monitor.max_connections.get();
            answered.push(
                load(
                    &format!("{}:{port}", crate::words::TCP),
                    rules::tcp_load(count, max),
                    monitor.importance.get(),
                    limits(monitor.threshold, monitor.release, hysteresis),
                ),
                || Figure::new(format!("{count} of {max} established"), None),
            );
        }
        Ok(())
    }
}
