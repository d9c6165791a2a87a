//! The CPU monitor: the busy share over the sample window, or in since-last mode since the
//! counters the previous probe kept (its figure, the kept record and the monitor interface).

use std::time::{Duration, Instant};

use super::{Counters, Sampler, Source, busy_between};
use crate::clock;
use crate::config::{CpuMode, Monitors};
use crate::metrics::MetricError;
use crate::metrics::monitor::{Answered, Figure, Monitor, Started, Window, limits, load};

/// since-last: probes closer than this to the previous one answer with the previous window's
/// figure. /proc/stat counts in ticks of 10 ms per CPU, so 250 ms on two CPUs is 50 ticks,
/// about 2 points a tick; a gap of a few ms is 0 to 4 ticks, a figure up to 63 points off
/// (docs/BENCHMARKS.md).
pub const SINCE_LAST_MIN_MS: u64 = 250;

/// The CPU busy share, how it was measured, and whose CPU it is: its words are written only
/// when read ([`CpuFigure`]'s `Display`, and [`Source`]'s for `from`).
#[derive(Clone, Debug, PartialEq)]
pub struct CpuFigure {
    pub busy: f64,
    pub how: How,
    pub from: Source,
}

/// How the busy share was measured; lengths and ages in ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum How {
    /// Over a sample window.
    Window { length: u64 },
    /// since-last without fresh counters: over a sample window.
    Afresh { length: u64 },
    /// since-last: since the counters of the previous probe.
    Since { span: u64 },
    /// since-last: since the counters of the previous probe, the window topped up to
    /// [`SINCE_LAST_MIN_MS`].
    ToppedUp { span: u64 },
    /// since-last, too soon after the previous probe: its window's figure, which ended `gap`
    /// ago.
    Last { span: u64, gap: u64 },
}

impl std::fmt::Display for CpuFigure {
    /// `busy 7.9% over 1000 ms`, as `--explain` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let busy = self.busy;
        let seconds = |ms: u64| ms as f64 / 1000.0;
        match self.how {
            How::Window { length } => write!(f, "busy {busy:.1}% over {length} ms"),
            How::Afresh { length } => write!(
                f,
                "busy {busy:.1}% over {length} ms (no fresh counters to compare)"
            ),
            How::Since { span } => write!(
                f,
                "busy {busy:.1}% since the previous probe {:.1} s ago",
                seconds(span)
            ),
            How::ToppedUp { span } => write!(
                f,
                "busy {busy:.1}% since the previous probe {:.1} s ago, waited to make it \
                 {SINCE_LAST_MIN_MS} ms",
                seconds(span)
            ),
            How::Last { span, gap } => write!(
                f,
                "busy {busy:.1}% over the last complete window ({:.1} s, ended {gap} ms ago: \
                 too recent to measure a new one)",
                seconds(span)
            ),
        }
    }
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
        Ok(Some(match begun {
            Begun::Sample(source, sampler) => CpuFigure {
                busy: sampler.finish(&source)?,
                how: How::Window { length },
                from: source,
            },
            Begun::TopUp(source, record) => {
                let counters = source.read()?;
                let now = clock::now_ms();
                let busy = busy_between(&record.counters, &counters)?;
                let span = now.saturating_sub(record.at_ms);
                save(window, &source, now, counters, Some((busy, span)));
                CpuFigure {
                    busy,
                    how: How::ToppedUp { span },
                    from: source,
                }
            }
            Begun::Afresh(source, counters) => {
                let end = source.read()?;
                let busy = busy_between(&counters, &end)?;
                save(window, &source, clock::now_ms(), end, Some((busy, length)));
                CpuFigure {
                    busy,
                    how: How::Afresh { length },
                    from: source,
                }
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
            answered.push(
                load(
                    crate::words::CPU,
                    figure.busy,
                    cpu.importance.get(),
                    limits(cpu.threshold, cpu.release, hysteresis),
                ),
                || Figure::new(figure.to_string(), Some(figure.from.to_string())),
            );
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
                let how = How::Last { span, gap };
                let figure = CpuFigure {
                    busy,
                    how,
                    from: source,
                };
                return (Begun::Done(figure), None);
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
            let how = How::Since { span };
            let figure = CpuFigure {
                busy,
                how,
                from: source,
            };
            return (Begun::Done(figure), None);
        }
    }
    // No fresh counters: the window starts at the reading just taken, and its end is what
    // the next probe compares with.
    let end = Instant::now() + window.length;
    (Begun::Afresh(source, counters), Some(end))
}
