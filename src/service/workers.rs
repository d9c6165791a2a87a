//! The threads connections are answered on. A thread that has answered one waits for the
//! next instead of ending, so a steady poller costs no thread start and end per poll (they
//! were a fifth of the service's CPU per poll, docs/BENCHMARKS.md); one idle for
//! [`IDLE_KEEP`] ends, so a service nobody polls keeps none. There are never more threads
//! than connections being answered at once, which the slots bound ([`super::limits`]).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use super::{HANDLER_STACK, lock};

/// How long a thread with nothing to answer waits for a connection before it ends: longer
/// than the usual agent-check interval (2 s), so steady polling keeps its threads.
pub const IDLE_KEEP: Duration = Duration::from_secs(10);

/// One connection's work: it owns its slot, freed when it returns or is dropped.
pub type Job = Box<dyn FnOnce() + Send>;

/// The pool; clones share it.
#[derive(Clone, Default)]
pub struct Workers(Arc<Pool>);

#[derive(Default)]
struct Pool {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// Set by [`Workers::stop`]: waiting threads end.
    stopped: bool,
}

impl Workers {
    /// Runs `job` on a waiting thread, or on a new one when none waits. On failure to start
    /// one, `job` is dropped unrun (freeing its slot).
    pub fn run(&self, job: Job) -> io::Result<()> {
        let handed = {
            let mut state = lock(&self.0.state);
            let idle = state.idle > state.jobs.len();
            if idle {
                state.jobs.push_back(job);
                None
            } else {
                Some(job)
            }
        };
        // Woken after the lock is let go, so the thread does not wake only to wait for it.
        let Some(job) = handed else {
            self.0.ready.notify_one();
            return Ok(());
        };
        let pool = self.0.clone();
        thread::Builder::new()
            .name("lbf-probe".into())
            .stack_size(HANDLER_STACK)
            .spawn(move || {
                job();
                pool.work();
            })
            .map(drop)
    }

    /// Ends the waiting threads, now and whenever one finishes its job from now on.
    pub fn stop(&self) {
        lock(&self.0.state).stopped = true;
        self.0.ready.notify_all();
    }

    /// Threads waiting for a job now.
    #[cfg(test)]
    fn idle(&self) -> usize {
        lock(&self.0.state).idle
    }
}

impl Pool {
    /// Answers the jobs handed to this thread until it has waited [`IDLE_KEEP`] for none.
    fn work(&self) {
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.jobs.pop_front() {
                drop(state);
                job();
                state = lock(&self.state);
                continue;
            }
            if state.stopped {
                return;
            }
            state.idle += 1;
            let (woken, waited) = self
                .ready
                .wait_timeout(state, IDLE_KEEP)
                .unwrap_or_else(PoisonError::into_inner);
            state = woken;
            state.idle -= 1;
            // A job handed over as the wait ran out is still taken.
            if waited.timed_out() && state.jobs.is_empty() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    fn until(what: impl Fn() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(Instant::now() < give_up, "not within 10 s");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_thread_that_answered_takes_the_next_job() {
        let workers = Workers::default();
        let (done, results) = mpsc::channel();
        let names = |done: mpsc::Sender<thread::ThreadId>| -> Job {
            Box::new(move || done.send(thread::current().id()).unwrap())
        };
        workers.run(names(done.clone())).unwrap();
        let first = results.recv().unwrap();
        until(|| workers.idle() == 1);
        for _ in 0..5 {
            workers.run(names(done.clone())).unwrap();
            assert_eq!(results.recv().unwrap(), first);
            until(|| workers.idle() == 1);
        }
        workers.stop();
        until(|| workers.idle() == 0);
    }

    #[test]
    fn jobs_at_once_each_get_a_thread() {
        let workers = Workers::default();
        let (started, starts) = mpsc::channel();
        let (release, hold) = mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        for _ in 0..4 {
            let (started, hold) = (started.clone(), hold.clone());
            workers
                .run(Box::new(move || {
                    started.send(()).unwrap();
                    let _ = lock(&hold).recv();
                }))
                .unwrap();
        }
        // All four run at once, though each holds its thread until released.
        for _ in 0..4 {
            starts.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        drop(release);
        until(|| workers.idle() == 4);
        workers.stop();
        until(|| workers.idle() == 0);
    }
}
