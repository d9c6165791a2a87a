//! The RAM monitor: memory in use over the host's or the cgroup's total, as `scope` says.

use super::{Memory, Source, bytes, read_scoped};
use crate::config::Monitors;
use crate::metrics::MetricError;
use crate::metrics::monitor::{Answered, Figure, Monitor, Started, Window, limits, load};

/// RAM in use and where the figure came from.
#[derive(Clone, Debug, PartialEq)]
pub struct RamFigure {
    pub memory: Memory,
    pub from: Source,
}

pub struct Ram;

impl Monitor for Ram {
    type Needs = bool;
    type Begun = ();
    type Reading = Option<RamFigure>;

    fn need(monitors: &Monitors, needs: &mut bool) {
        *needs |= monitors.ram.enabled();
    }

    fn begin(needs: &bool, _: &Window) -> Result<Started<()>, MetricError> {
        Ok(needs.then_some(((), None)))
    }

    /// Read after the window, as the other point-in-time figures are.
    fn end(_: &bool, _: (), window: &Window) -> Result<Option<RamFigure>, MetricError> {
        let (memory, from) = read_scoped(window.scope.ram, window.cgroups)?;
        Ok(Some(RamFigure { memory, from }))
    }

    fn answer(
        monitors: &Monitors,
        reading: &Option<RamFigure>,
        hysteresis: f64,
        answered: &mut Answered,
    ) -> Result<(), MetricError> {
        let ram = monitors.ram;
        if let Some(figure) = reading.as_ref().filter(|_| ram.enabled()) {
            let (used, total) = (figure.memory.used(), figure.memory.total);
            answered.push(
                load(
                    crate::words::RAM,
                    figure.memory.load(),
                    ram.importance.get(),
                    limits(ram.threshold, ram.release, hysteresis),
                ),
                || {
                    let text = format!("{} of {} in use", bytes(used), bytes(total));
                    Figure::new(text, Some(figure.from.to_string()))
                },
            );
        }
        Ok(())
    }
}
