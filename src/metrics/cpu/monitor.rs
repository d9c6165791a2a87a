//! The CPU monitor: the busy share over the sample window, or in since-last mode since the
//! counters the previous probe kept (its figure, the kept record and the monitor interface).

use std::time::{Duration, Instant};

use super::{Counters, Sampler, Source, busy_between};
use crate::clock;
use crate::config::{CpuMode, Monitors};
use crate::metrics::MetricError;
use crate::metrics::monitor::{Answered, Monitor, Started, Window, limits, load};

/// since-last: probes closer than this to the previous one answer with the previous window's
/// figure. /proc/stat counts in ticks of 10 ms per CPU, so 250 ms on two CPUs is 50 ticks,
/// about 2 points a tick; a gap of a few ms is 0 to 4 ticks, a figure up to 63 points off
/// (docs/BENCHMARKS.md).
pub const SINCE_LAST_MIN_MS: u64 = 250;

/// The CPU busy share, how it was measured, and whose CPU it is.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuFigure {
    pub busy: f64,
    pub how: String,
    pub from: String,
}

/// What since-last mode keeps between probes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuRecord {
    pub at_ms: u64,
    pub counters: Counters,
    /// Whose counters they are: 0 for the host's, else a stamp of the cgroup and its
    /// capacity (`cgroup::CpuCapacity::id`), so they are only compared with their own kind.
    pub source: u64,
    /// The busy share of the window that ended at `at_ms`, and its length in ms: the answer
    /// for a probe that comes too soon after to measure a window of its own.
    pub last: Option<(f64, u64)>,
}

impl CpuRecord {
    /// `AT BUSY TOTAL SOURCE LAST SPAN`: six 20-digit numbers (every u64 fits; LAST in
    /// thousandths of a percent, SPAN 0 for none), 123 bytes whatever the values, kept as
    /// the state directory's `cpu-counters` (with its checksum, 143 bytes).
    pub fn line(&self) -> String {
        let (last, span) = self.last.map_or((0, 0), |(busy, span)| {
            ((busy * 1000.0).round() as u64, span)
        });
        format!(
            "{:020} {:020} {:020} {:020} {last:020} {span:020}",
            self.at_ms, self.counters.busy, self.counters.total, self.source
        )
    }

    /// The record of [`CpuRecord::line`]'s text; `None` for anything else.
    pub fn parse(line: &str) -> Option<CpuRecord> {
        let numbers: Vec<u64> = line
            .split(' ')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        match numbers[..] {
            [at_ms, busy, total, source, last, span] => Some(CpuRecord {
                at_ms,
                counters: Counters { busy, total },
                source,
                last: (span > 0).then(|| (last as f64 / 1000.0, span)),
            }),
            _ => None,
        }
    }
}

pub struct Cpu;

/// A CPU reading begun before the window.
pub enum Begun {
    /// Sampling: counters read at the window's start.
    Sample(Source, Sampler),
    /// since-last, fresh counters too recent: the window is topped up to the minimum.
    TopUp(Source, CpuRecord),
    /// since-last without fresh counters: the window starts at these.
    Afresh(Source, Counters),
    /// since-last answered without a window.
    Done(CpuFigure),
}

impl Monitor for Cpu {
    type Needs = bool;
    type Begun = Begun;
    type Reading = Option<CpuFigure>;

    fn need(monitors: &Monitors, needs: &mut bool) {
        *needs |= monitors.cpu.enabled();
    }

    fn begin(needs: &bool, window: &Window) -> Result<Started<Begun>, MetricError> {
        if !needs {
            return Ok(None);
        }
        let source = Source::choose(window.scope.cpu, window.cgroups)?;
        // Without cumulative counters (systems other than Linux and Windows) since-last samples.
        if window.cpu_mode == CpuMode::SinceLast
            && let Ok(counters) = source.read()
        {
            return Ok(Some(since_last(window, source, counters)));
        }
        let sampler = Sampler::start(&source)?;
        let end = Instant::now() + window.length;
        Ok(Some((Begun::Sample(source, sampler), Some(end))))
    }

    fn end(_: &bool, begun: Begun, window: &Window) -> Result<Option<CpuFigure>, MetricError> {
        let length = window.length.as_millis() as u64;
        let figure = |busy: f64, how: String, source: &Source| CpuFigure {
            busy,
            how,
            from: source.describe(),
        };
        Ok(Some(match begun {
            Begun::Sample(source, sampler) => {
                let busy = sampler.finish(&source)?;
                figure(busy, format!("busy {busy:.1}% over {length} ms"), &source)
            }
            Begun::TopUp(source, record) => {
                let counters = source.read()?;
                let now = clock::now_ms();
                let busy = busy_between(&record.counters, &counters)?;
                let span = now.saturating_sub(record.at_ms);
                save(window, &source, now, counters, Some((busy, span)));
                let how = format!(
                    "busy {busy:.1}% since the previous probe {:.1} s ago, waited to make it \
                     {SINCE_LAST_MIN_MS} ms",
                    span as f64 / 1000.0
                );
                figure(busy, how, &source)
            }
            Begun::Afresh(source, counters) => {
                let end = source.read()?;
                let busy = busy_between(&counters, &end)?;
                save(window, &source, clock::now_ms(), end, Some((busy, length)));
                let how =
                    format!("busy {busy:.1}% over {length} ms (no fresh counters to compare)");
                figure(busy, how, &source)
            }
            Begun::Done(figure) => figure,
        }))
    }

    fn answer(
        monitors: &Monitors,
        reading: &Option<CpuFigure>,
        hysteresis: f64,
        answered: &mut Answered,
    ) -> Result<(), MetricError> {
        let cpu = monitors.cpu;
        if let Some(figure) = reading.as_ref().filter(|_| cpu.enabled()) {
            answered.loads.push(load(
                crate::words::CPU,
                figure.busy,
                cpu.importance.get(),
                limits(cpu.threshold, cpu.release, hysteresis),
                figure.how.clone(),
                Some(figure.from.clone()),
            ));
        }
        Ok(())
    }
}

/// A failed save only means the next probe samples; this one still answers.
fn save(
    window: &Window,
    source: &Source,
    at_ms: u64,
    counters: Counters,
    last: Option<(f64, u64)>,
) {
    let record = CpuRecord {
        at_ms,
        counters,
        source: source.id(),
        last,
    };
    window.store.save_record("cpu", &record.line());
}

/// since-last: the busy share since the counters the previous probe saved, when they are
/// fresh and of the same source. Closer than [`SINCE_LAST_MIN_MS`] to them the previous
/// window's figure answers (the counters are kept, so the next window is whole); without
/// that figure the window is topped up to the minimum. Without fresh counters it samples.
fn since_last(window: &Window, source: Source, counters: Counters) -> (Begun, Option<Instant>) {
    let now = clock::now_ms();
    let kept = window.store.record("cpu");
    let fresh = kept.as_deref().and_then(CpuRecord::parse).filter(|record| {
        record.source == source.id()
            && record.at_ms <= now
            && now - record.at_ms <= window.max_age_ms
    });
    if let Some(record) = fresh {
        let gap = now - record.at_ms;
        if gap < SINCE_LAST_MIN_MS {
            if let Some((busy, span)) = record.last {
                let how = format!(
                    "busy {busy:.1}% over the last complete window ({:.1} s, ended {gap} ms ago: \
                     too recent to measure a new one)",
                    span as f64 / 1000.0
                );
                let from = source.describe();
                return (Begun::Done(CpuFigure { busy, how, from }), None);
            }
            // Counters ahead of today's (a record from another boot, or forged) never will
            // give a share: the window starts afresh instead.
            if counters.busy_percent_since(&record.counters).is_some()
                || counters == record.counters
            {
                let end = Instant::now() + Duration::from_millis(SINCE_LAST_MIN_MS - gap);
                return (Begun::TopUp(source, record), Some(end));
            }
        } else if let Some(busy) = counters.busy_percent_since(&record.counters) {
            let span = now.saturating_sub(record.at_ms);
            save(window, &source, now, counters, Some((busy, span)));
            let how = format!(
                "busy {busy:.1}% since the previous probe {:.1} s ago",
                span as f64 / 1000.0
            );
            let from = source.describe();
            return (Begun::Done(CpuFigure { busy, how, from }), None);
        }
    }
    // No fresh counters: the window starts at the reading just taken, and its end is what
    // the next probe compares with.
    let end = Instant::now() + window.length;
    (Begun::Afresh(source, counters), Some(end))
}
