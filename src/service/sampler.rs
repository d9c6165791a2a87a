//! One sample shared by every probe that arrives while it is being taken: N load balancers
//! polling at once cost one CPU window, not N.
//!
//! A probe calls [`Sampler::join`]: if a sample is running it joins that one, else it asks the
//! sampler thread for a new one and joins it. The probe may read `agent-send` until the
//! sample's window ends ([`Sampler::window_end`]), then takes the readings
//! ([`Sampler::readings`]). The sampler thread ([`Sampler::run`]) takes one sample at a time,
//! only when asked, so an idle service samples nothing. Under `--verbose` it logs one line per
//! sample: its number, how long it took and how many probes it served.
//!
//! A probe joining late gets figures whose window began before it connected; they are at most
//! one window old, the same age a since-last reply has.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::lock;
use super::log::Log;
use crate::metrics::MetricError;
use crate::probe::Readings;

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
    /// Probes served by the running sample, or by the wanted one.
    sharers: u64,
    /// The number of the last finished sample, whose outcome is `last`.
    finished: u64,
    last: Option<Sampled>,
    stopping: bool,
}

#[derive(Default)]
pub struct Sampler {
    inner: Mutex<Inner>,
    /// Signalled on every change: a sample wanted, a window known, a sample finished, a stop.
    changed: Condvar,
}

/// One sample: calls `wait(deadline)` once to pass its window, then reads the rest.
pub type Take<'a> = dyn FnMut(&mut dyn FnMut(Instant)) -> Result<Readings, MetricError> + 'a;

impl Sampler {
    pub fn new() -> Sampler {
        Sampler::default()
    }

    /// Joins the running sample, or asks for a new one.
    pub fn join(&self) -> Ticket {
        let mut inner = lock(&self.inner);
        inner.sharers += 1;
        if inner.running {
            return Ticket(inner.started);
        }
        if !inner.wanted {
            inner.wanted = true;
            self.changed.notify_all();
        }
        Ticket(inner.started + 1)
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

    /// The sampler thread: takes a sample whenever a probe asks, until [`Sampler::stop`].
    /// Samples asked for before the stop are still taken: their probes are waiting.
    pub fn run(&self, take: &mut Take<'_>, log: &Log) {
        loop {
            let number = {
                let mut inner = lock(&self.inner);
                while !inner.wanted && !inner.stopping {
                    inner = self
                        .changed
                        .wait(inner)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                if !inner.wanted {
                    return;
                }
                inner.wanted = false;
                inner.running = true;
                inner.started += 1;
                inner.window_end = None;
                inner.started
            };
            let began = Instant::now();
            let outcome = take(&mut |deadline| {
                lock(&self.inner).window_end = Some(deadline);
                self.changed.notify_all();
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            });
            let outcome = Arc::new(outcome);
            let sharers = {
                let mut inner = lock(&self.inner);
                inner.running = false;
                inner.window_end = None;
                inner.finished = number;
                inner.last = Some(outcome.clone());
                std::mem::take(&mut inner.sharers)
            };
            self.changed.notify_all();
            let took = began.elapsed().as_millis();
            match &*outcome {
                Ok(_) => log.note(format!(
                    "sample {number}: {took} ms, shared by {sharers} probe{}",
                    if sharers == 1 { "" } else { "s" }
                )),
                // Logged once here, not once per probe that answers error:WHAT with it.
                Err(err) => log.problem(format!(
                    "sample {number} failed after {took} ms ({sharers} probes answered error:{}): {err}",
                    err.monitor
                )),
            }
        }
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

    /// A sampler thread whose samples last `window` and report how many were taken so far.
    fn start(window: Duration) -> (Arc<Sampler>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
        let sampler = Arc::new(Sampler::new());
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

    #[test]
    fn probes_arriving_during_a_sample_share_it() {
        let (sampler, taken, thread) = start(Duration::from_millis(300));
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
        assert_eq!(taken.load(Ordering::SeqCst), 1);
        assert!(
            results
                .iter()
                .all(|(end, n)| *end == results[0].0 && *n == 1)
        );
        // Idle now: a later probe gets a fresh sample of its own.
        let ticket = sampler.join();
        let sampled = sampler.readings(ticket, give_up()).unwrap();
        assert_eq!(sampled.as_ref().as_ref().unwrap().tcp[0].1, 2);
        sampler.stop();
        thread.join().unwrap();
    }

    #[test]
    fn window_end_is_known_before_the_sample_ends() {
        let (sampler, _, thread) = start(Duration::from_millis(400));
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
        let sampler = Arc::new(Sampler::new());
        // No sampler thread: nothing ever finishes.
        let ticket = sampler.join();
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(sampler.window_end(ticket, soon), soon);
        assert!(sampler.readings(ticket, soon).is_none());
        // A wanted sample is still taken after the stop, then the thread returns.
        let (sampler, taken, thread) = start(Duration::from_millis(10));
        let ticket = sampler.join();
        sampler.stop();
        assert!(sampler.readings(ticket, give_up()).is_some());
        thread.join().unwrap();
        assert_eq!(taken.load(Ordering::SeqCst), 1);
    }
}
