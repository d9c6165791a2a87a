//! The sessions monitor: the host's user sessions, read once per sample for every config,
//! each counting disconnected ones or not as it says.

use super::{Sessions, load as sessions_load, read};
use crate::config::Monitors;
use crate::metrics::MetricError;
use crate::metrics::monitor::{Answered, Figure, Monitor, Started, Window, limits, load};

pub struct Users;

impl Monitor for Users {
    type Needs = bool;
    type Begun = ();
    type Reading = Option<Sessions>;

    fn need(monitors: &Monitors, needs: &mut bool) {
        *needs |= monitors.sessions.is_some_and(|s| s.enabled());
    }

    fn begin(needs: &bool, _: &Window) -> Result<Started<()>, MetricError> {
        Ok(needs.then_some(((), None)))
    }

    fn end(_: &bool, _: (), _: &Window) -> Result<Option<Sessions>, MetricError> {
        Ok(Some(read()?))
    }

    fn answer(
        monitors: &Monitors,
        reading: &Option<Sessions>,
        hysteresis: f64,
        answered: &mut Answered,
    ) -> Result<(), MetricError> {
        let Some((monitor, found)) = monitors
            .sessions
            .filter(|s| s.enabled())
            .zip(reading.as_ref())
        else {
            return Ok(());
        };
        let count = found.count(monitor.disconnected);
        let max = monitor.max_sessions.get();
        let text = || match monitor.disconnected {
            true => format!(
                "{count} of {max} ({} active, {} disconnected)",
                found.active, found.disconnected
            ),
            false => format!(
                "{count} of {max} active ({} disconnected not counted)",
                found.disconnected
            ),
        };
        answered.push(
            load(
                crate::words::SESSIONS,
                sessions_load(count, max),
                monitor.importance.get(),
                limits(monitor.threshold, monitor.release, hysteresis),
            ),
            || Figure::new(text(), Some(found.source.clone())),
        );
        Ok(())
    }
}
