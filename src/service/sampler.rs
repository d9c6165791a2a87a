//! The figures every poll answers from: a sampler thread measures consecutive windows of
//! `sample_ms` for as long as polls keep coming, so each poll answers at once from the last
//! complete window, and N load balancers cost one reading a window, not N.
//!
//! A probe calls [`Sampler::join`]. While the sampler keeps its figures fresh (the last window
//! ended less than half a window before the one now running), the probe gets that window at
//! once. Otherwise (the first poll, or the first after [`KEEP_FOR`] without any) it asks for
//! a new window, or joins the one already running, and waits for it: the first poll after a
//! pause waits one window, as the one-shot does. The probe may read `agent-send` until its
//! window ends ([`Sampler::window_end`]), then takes the readings ([`Sampler::readings`]).
//!
//! The sampler thread ([`Sampler::run`]) starts the next window as soon as one ends while the
//! last poll is less than [`KEEP_FOR`] old, and then waits for a poll: an idle service reads
//! nothing. A window that reads no CPU (no CPU monitor) still lasts `sample_ms`, so RAM and
//! TCP are read once a window, not in a loop. Under `--verbose` it logs one line per window:
//! its number, how long it took, how many probes waited for it, and how many were answered at
//! once from the window before while it ran.
//!
//! TCP counts are read once a window with the rest, not per poll: a count of a big host's
//! connection table costs milliseconds (docs/BENCHMARKS.md), so per poll it would cost each
//! load balancer's poll that again, and per window the service's cost stays the same however
//! many poll. The count is then at most a window and a half old, as the CPU figure is.
//!
//! The figures a probe gets are at most one window and a half old: no older than a one-shot
//! since-last reply's, and no younger than needed to answer at once.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::lock;
use super::log::Log;
use crate::metrics::MetricError;
use crate::probe::Readings;

/// The log lines for sources (a custom monitor's command, file or URL) that started failing
/// or answer again in this sample, and the sources failing now: a source that stays down is
/// logged once, not once a window.
fn source_changes(
    number: u64,
    readings: &Readings,
    before: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    let mut failing = Vec::new();
    for (source, failure) in readings.sources() {
        let was = before.contains(&source);
        match failure {
            Some(why) => {
                if !was {
                    lines.push(format!("sample {number}: {source} failed: {why}"));
                }
                failing.push(source);
            }
            None if was => lines.push(format!("sample {number}: {source} answers again")),
            None => {}
        }
    }
    (lines, failing)
}

/// How long the sampler keeps measuring after the last poll. HAProxy polls every
/// `agent-inter` (2 s by default); a minute covers any sane interval and a load balancer
/// restarting, and an idle service then costs nothing.
pub const KEEP_FOR: Duration = Duration::from_secs(60);

/// The outcome of one sample, shared by the probes that waited for it.
pub type Sampled = Arc<Result<Readings, MetricError>>;

/// The number of the sample a probe waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

#[derive(Default)]
struct Inner {
    /// Samples started so far; a running sample has this number.
    started: u64,
    running: bool,
    /// A probe waits for sample `started + 1`, which has not started yet.
    wanted: bool,
    /// The running sample's window end, once it is known.
    window_end: Option<Instant>,
    /// Probes waiting for the running sample, or for the wanted one.
    waiting: u64,
    /// Probes answered at once from the last finished sample while the next one runs.
    served: u64,
    /// The number of the last finished sample, whose outcome is `last`.
    finished: u64,
    finished_at: Option<Instant>,
    /// How long the last finished sample took (lb-feedback-service's `/metrics`).
    last_took: Option<Duration>,
    last: Option<Sampled>,
    last_poll: Option<Instant>,
    stopping: bool,
}

pub struct Sampler {
    inner: Mutex<Inner>,
    /// Signalled on every change: a sample wanted, a window known, a sample finished, a stop.
    changed: Condvar,
    window: Duration,
    keep_for: Duration,
}

/// One sample: calls `wait(deadline)` once to pass its window, then reads the rest.
pub type Take<'a> = dyn FnMut(&mut dyn FnMut(Instant)) -> Result<Readings, MetricError> + 'a;

impl Sampler {
    /// A sampler whose windows last `window` (`sample_ms`), kept going for `keep_for` after
    /// the last poll ([`KEEP_FOR`] in the service).
    pub fn new(window: Duration, keep_for: Duration) -> Sampler {
        Sampler {
            inner: Mutex::default(),
            changed: Condvar::new(),
            window,
            keep_for,
        }
    }

    /// The last finished sample when it is fresh, else the running one, else a new one.
    pub fn join(&self) -> Ticket {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        inner.last_poll = Some(now);
        let fresh = inner
            .finished_at
            .is_some_and(|at| now.saturating_duration_since(at) < self.window + self.window / 2);
        let ticket = match (fresh, inner.running) {
            (true, _) => {
                inner.served += 1;
                Ticket(inner.finished)
            }
            (false, true) => {
                inner.waiting += 1;
                Ticket(inner.started)
            }
            (false, false) => {
                inner.waiting += 1;
                Ticket(inner.started + 1)
            }
        };
        // A sampler that went idle starts again; one that keeps sampling just goes on.
        if !inner.running && !inner.wanted {
            inner.wanted = true;
            self.changed.notify_all();
        }
        ticket
    }

    /// When the window of the ticket's sample ends: the time until which `agent-send` is worth
    /// reading. Now, once that sample has finished; `give_up` if it is not known by then.
    pub fn window_end(&self, ticket: Ticket, give_up: Instant) -> Instant {
        let mut inner = lock(&self.inner);
        loop {
            if inner.finished >= ticket.0 {
                return Instant::now();
            }
            if inner.running
                && inner.started == ticket.0
                && let Some(end) = inner.window_end
            {
                return end;
            }
            let Some(left) = left(give_up) else {
                return give_up;
            };
            inner = self.wait(inner, left);
        }
    }

    /// The outcome of the ticket's sample (or of a later one, if this probe was slow to look);
    /// `None` when it is not there by `give_up`.
    pub fn readings(&self, ticket: Ticket, give_up: Instant) -> Option<Sampled> {
        let mut inner = lock(&self.inner);
        loop {
            if inner.finished >= ticket.0 {
                return inner.last.clone();
            }
            inner = self.wait(inner, left(give_up)?);
        }
    }

    /// The sampler thread: takes samples while polls come (see the module's text), until
    /// [`Sampler::stop`]. A sample probes wait for is still taken after the stop; a window
    /// nobody waits for ends at the stop.
    pub fn run(&self, take: &mut Take<'_>, log: &Log) {
        let mut failing = Vec::new();
        loop {
            let number = {
                let mut inner = lock(&self.inner);
                loop {
                    let polled = inner
                        .last_poll
                        .is_some_and(|at| at.elapsed() < self.keep_for);
                    if inner.wanted || (polled && !inner.stopping) {
                        break;
                    }
                    if inner.stopping {
                        return;
                    }
                    inner = self
                        .changed
                        .wait(inner)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                inner.wanted = false;
                inner.running = true;
                inner.started += 1;
                inner.window_end = None;
                inner.started
            };
            let began = Instant::now();
            let outcome = take(&mut |deadline| self.pass_window(deadline));
            let outcome = Arc::new(outcome);
            let (waited, served) = {
                let mut inner = lock(&self.inner);
                inner.running = false;
                inner.window_end = None;
                inner.finished = number;
                inner.finished_at = Some(Instant::now());
                inner.last_took = Some(began.elapsed());
                inner.last = Some(outcome.clone());
                (
                    std::mem::take(&mut inner.waiting),
                    std::mem::take(&mut inner.served),
                )
            };
            self.changed.notify_all();
            let took = began.elapsed().as_millis();
            if let Ok(readings) = &*outcome {
                let (lines, now) = source_changes(number, readings, &failing);
                lines.into_iter().for_each(|line| log.problem(line));
                failing = now;
            }
            match &*outcome {
                Ok(_) => log.note(format!(
                    "sample {number}: {took} ms, shared by {waited} probe{}{}",
                    if waited == 1 { "" } else { "s" },
                    match served {
                        0 => String::new(),
                        n => format!(", {n} answered at once from sample {}", number - 1),
                    }
                )),
                // Logged once here, not once per probe that answers error:WHAT with it.
                Err(err) => log.problem(format!(
                    "sample {number} failed after {took} ms ({waited} probes answered error:{}): {err}",
                    err.monitor
                )),
            }
            // A window that read no CPU still lasts its length.
            self.pass_window(began + self.window);
        }
    }

    /// Sleeps until `deadline`, or until the stop when no probe waits for this window.
    fn pass_window(&self, deadline: Instant) {
        let mut inner = lock(&self.inner);
        if inner.running {
            inner.window_end = Some(deadline);
            self.changed.notify_all();
        }
        while let Some(left) = left(deadline) {
            if inner.stopping && inner.waiting == 0 {
                return;
            }
            inner = self.wait(inner, left);
        }
    }

    /// Samples finished so far, and how long the last one took.
    pub fn taken(&self) -> (u64, Option<Duration>) {
        let inner = lock(&self.inner);
        (inner.finished, inner.last_took)
    }

    /// Lets [`Sampler::run`] return once no probe waits for a sample.
    pub fn stop(&self) {
        lock(&self.inner).stopping = true;
        self.changed.notify_all();
    }

    fn wait<'a>(
        &self,
        inner: std::sync::MutexGuard<'a, Inner>,
        left: Duration,
    ) -> std::sync::MutexGuard<'a, Inner> {
        match self.changed.wait_timeout(inner, left) {
            Ok((inner, _)) => inner,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }
}

/// Time left before `deadline`, or `None` when it has passed.
fn left(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn readings(tcp: u64) -> Result<Readings, MetricError> {
        Ok(Readings {
            tcp: vec![(80, tcp)],
            ..Readings::default()
        })
    }

    #[test]
    fn a_custom_source_is_logged_when_it_fails_and_when_it_answers_again_only() {
        let config: crate::config::Config = {
            let mut config = crate::config::Config::default();
            let json = r#"{"custom": [{"name": "q", "file": "/q"}]}"#;
            config
                .apply_json(json, std::path::Path::new("t.json"))
                .unwrap();
            config
        };
        let source = config.custom[0].source.clone();
        let sample = |value: Result<f64, String>| Readings {
            custom: vec![crate::metrics::custom::Reading {
                source: source.clone(),
                value,
                took: Duration::ZERO,
            }],
            ..Readings::default()
        };
        let (lines, failing) = source_changes(1, &sample(Ok(5.0)), &[]);
        assert!(lines.is_empty() && failing.is_empty());
        let (lines, failing) = source_changes(2, &sample(Err("gone".into())), &failing);
        assert_eq!(lines, ["sample 2: custom source file /q failed: gone"]);
        // Still down, even for another reason: nothing new to say.
        let (lines, failing) = source_changes(3, &sample(Err("still".into())), &failing);
        assert!(lines.is_empty());
        let (lines, failing) = source_changes(4, &sample(Ok(5.0)), &failing);
        assert_eq!(lines, ["sample 4: custom source file /q answers again"]);
        assert!(failing.is_empty());
    }

    /// A sampler thread whose samples last `window` and report how many were taken so far.
    fn start(
        window: Duration,
        keep_for: Duration,
    ) -> (Arc<Sampler>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
        let sampler = Arc::new(Sampler::new(window, keep_for));
        let taken = Arc::new(AtomicU64::new(0));
        let thread = {
            let (sampler, taken) = (sampler.clone(), taken.clone());
            std::thread::spawn(move || {
                let mut take = |wait: &mut dyn FnMut(Instant)| {
                    let n = taken.fetch_add(1, Ordering::SeqCst) + 1;
                    wait(Instant::now() + window);
                    readings(n)
                };
                sampler.run(&mut take, &Log::stderr(false));
            })
        };
        (sampler, taken, thread)
    }

    fn give_up() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// What one poll got (the sample's number) and how long it waited.
    fn poll(sampler: &Sampler) -> (u64, Duration) {
        let asked = Instant::now();
        let ticket = sampler.join();
        let sampled = sampler.readings(ticket, give_up()).unwrap();
        (sampled.as_ref().as_ref().unwrap().tcp[0].1, asked.elapsed())
    }

    #[test]
    fn probes_arriving_during_a_sample_share_it() {
        let (sampler, taken, thread) = start(Duration::from_millis(300), KEEP_FOR);
        let probes: Vec<_> = (0..20)
            .map(|i| {
                let sampler = sampler.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(i * 5));
                    let ticket = sampler.join();
                    let end = sampler.window_end(ticket, give_up());
                    let sampled = sampler.readings(ticket, give_up()).unwrap();
                    (end, sampled.as_ref().as_ref().unwrap().tcp[0].1)
                })
            })
            .collect();
        let results: Vec<_> = probes.into_iter().map(|p| p.join().unwrap()).collect();
        // All had the first; the second, kept for the next polls, began as it ended.
        assert!(taken.load(Ordering::SeqCst) <= 2);
        assert!(
            results
                .iter()
                .all(|(end, n)| *end == results[0].0 && *n == 1)
        );
        // The next window runs already; a later probe is answered from the first at once.
        let (n, waited) = poll(&sampler);
        assert_eq!(n, 1);
        assert!(waited < Duration::from_millis(100), "{waited:?}");
        sampler.stop();
        thread.join().unwrap();
    }

    #[test]
    fn steady_polls_are_answered_at_once_from_consecutive_windows() {
        let window = Duration::from_millis(200);
        let (sampler, taken, thread) = start(window, KEEP_FOR);
        // The first poll waits for its window.
        let (first, waited) = poll(&sampler);
        assert_eq!(first, 1);
        assert!(waited >= window - Duration::from_millis(5), "{waited:?}");
        let mut seen = vec![first];
        let began = Instant::now();
        while began.elapsed() < Duration::from_millis(1200) {
            std::thread::sleep(Duration::from_millis(20));
            let (n, waited) = poll(&sampler);
            // Far below the window: no poll waits for one.
            assert!(waited < window / 2, "poll waited {waited:?}");
            seen.push(n);
        }
        // The figures move on window by window, each at most a window and a half old.
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1] && w[1] - w[0] <= 1),
            "{seen:?}"
        );
        let last = *seen.last().unwrap();
        assert!((5..=8).contains(&last), "{seen:?}");
        assert!(taken.load(Ordering::SeqCst) >= last);
        sampler.stop();
        thread.join().unwrap();
    }

    #[test]
    fn an_idle_sampler_stops_and_the_next_poll_waits_one_window() {
        let window = Duration::from_millis(100);
        let (sampler, taken, thread) = start(window, Duration::from_millis(300));
        poll(&sampler);
        // Kept for 300 ms after the poll, then idle: about 4 windows, then no more.
        std::thread::sleep(Duration::from_millis(900));
        let idle = taken.load(Ordering::SeqCst);
        assert!((3..=6).contains(&idle), "{idle} samples");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(taken.load(Ordering::SeqCst), idle);
        // After the pause the figures are stale: the poll waits for a new window.
        let (n, waited) = poll(&sampler);
        assert_eq!(n, idle + 1);
        assert!(waited >= window - Duration::from_millis(5), "{waited:?}");
        sampler.stop();
        thread.join().unwrap();
    }

    #[test]
    fn window_end_is_known_before_the_sample_ends() {
        let (sampler, _, thread) = start(Duration::from_millis(400), KEEP_FOR);
        let asked = Instant::now();
        let ticket = sampler.join();
        let end = sampler.window_end(ticket, give_up());
        assert!(asked.elapsed() < Duration::from_millis(300));
        assert!(end >= asked + Duration::from_millis(400));
        sampler.readings(ticket, give_up()).unwrap();
        assert!(Instant::now() >= end);
        sampler.stop();
        thread.join().unwrap();
    }

    #[test]
    fn waits_are_bounded_and_stop_ends_the_thread() {
        let sampler = Arc::new(Sampler::new(Duration::from_millis(100), KEEP_FOR));
        // No sampler thread: nothing ever finishes.
        let ticket = sampler.join();
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(sampler.window_end(ticket, soon), soon);
        assert!(sampler.readings(ticket, soon).is_none());
        // A wanted sample is still taken after the stop, then the thread returns.
        let (sampler, taken, thread) = start(Duration::from_millis(10), KEEP_FOR);
        let ticket = sampler.join();
        sampler.stop();
        assert!(sampler.readings(ticket, give_up()).is_some());
        thread.join().unwrap();
        assert_eq!(taken.load(Ordering::SeqCst), 1);
        // A window kept for polls, with nobody waiting, ends at the stop.
        let (sampler, taken, thread) = start(Duration::from_millis(400), KEEP_FOR);
        poll(&sampler);
        std::thread::sleep(Duration::from_millis(50));
        let stopped = Instant::now();
        sampler.stop();
        thread.join().unwrap();
        assert!(stopped.elapsed() < Duration::from_millis(250));
        assert_eq!(taken.load(Ordering::SeqCst), 2);
    }
}
