//! The custom monitors: each source run once per sample beside the CPU window however many
//! monitors read it, each monitor's value over its `max`; a failed source is the probe's
//! error unless its monitor ignores failures.

use super::{Reading, Running, start};
use crate::config::{Monitors, Source};
use crate::metrics::MetricError;
use crate::metrics::monitor::{Answered, Figure, Monitor, Started, Window, limits, load};

pub struct Custom;

impl Monitor for Custom {
    /// The sources, each once.
    type Needs = Vec<Source>;
    type Begun = Running;
    /// Each source's value or failure.
    type Reading = Vec<Reading>;

    fn need(monitors: &Monitors, needs: &mut Vec<Source>) {
        let custom = monitors.custom.iter().filter(|c| c.enabled());
        needs.extend(custom.map(|c| c.source.clone()));
    }

    fn settle(needs: &mut Vec<Source>) {
        needs.sort_unstable();
        needs.dedup();
    }

    /// Started before the CPU window and collected after it: they run while it passes.
    fn begin(sources: &Vec<Source>, window: &Window) -> Result<Started<Running>, MetricError> {
        Ok((!sources.is_empty()).then(|| (start(sources, window.length), None)))
    }

    fn end(_: &Vec<Source>, running: Running, _: &Window) -> Result<Vec<Reading>, MetricError> {
        Ok(running.collect())
    }

    fn answer(
        monitors: &Monitors,
        readings: &Vec<Reading>,
        hysteresis: f64,
        answered: &mut Answered,
    ) -> Result<(), MetricError> {
        for monitor in monitors.custom.iter().filter(|c| c.enabled()) {
            let reading = readings.iter().find(|r| r.source == monitor.source);
            let (value, took) = match reading.map(|r| (&r.value, r.took)) {
                Some((Ok(value), took)) => (*value, took),
                failed => {
                    let message = match failed {
                        Some((Err(why), _)) => why.clone(),
                        _ => "not read in this sample".to_string(),
                    };
                    answered.failed(monitor.on_error, &monitor.name, message, |message| {
                        MetricError {
                            monitor: monitor.name.clone(),
                            message: format!("{}: {message}", monitor.source),
                        }
                    })?;
                    continue;
                }
            };
            answered.push(
                load(
                    &monitor.name,
                    value / monitor.max * 100.0,
                    monitor.importance.get(),
                    limits(monitor.threshold, monitor.release, hysteresis),
                ),
                || Figure {
                    text: format!("{} of max {}", number(value), number(monitor.max)),
                    source: Some(monitor.source.to_string()),
                    custom: Some((value, took)),
                },
            );
        }
        Ok(())
    }

    fn sources(readings: &Vec<Reading>) -> Vec<(String, Option<String>)> {
        readings
            .iter()
            .map(|r| (format!("custom source {}", r.source), r.value.clone().err()))
            .collect()
    }
}

/// `20`, `0.75`: a custom value as the config would write it.
fn number(value: f64) -> String {
    format!("{}", (value * 1000.0).round() / 1000.0)
}
