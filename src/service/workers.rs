//! The threads of one agent-port listener, each accepting connections on it and answering
//! what it accepted itself: a poll wakes one thread, with no hand-off from an accepting thread
//! to an answering one (that hand-off, a second thread's wake-up and sleep, was a fifth of
//! the service's CPU per poll, docs/BENCHMARKS.md). A thread about to answer starts another
//! first when no other is left accepting, so the listener is never unattended; one that has
//! accepted nothing for [`IDLE_KEEP`] ends unless it is the last one accepting (Linux: the
//! listener's receive timeout ends a blocked `accept`; elsewhere they stay until the stop).
//! So there are never more threads than connections answered at once, and one accepting.

use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::{HANDLER_STACK, lock};

/// How long a thread with nothing to answer waits for a connection before it ends: longer
/// than the usual agent-check interval (2 s), so steady polling keeps its threads.
pub const IDLE_KEEP: Duration = Duration::from_secs(10);
/// How long a stop waits for a woken thread to leave `accept` before it wakes one again.
const WAKE_WAIT: Duration = Duration::from_millis(200);

/// What one `accept` and its admission gave a thread.
pub enum Turn<J> {
    /// Nothing to answer (refused, queued for a slot, a failed accept): accept again.
    Again,
    /// This thread is not needed: nothing came for [`IDLE_KEEP`], or accepting failed. It
    /// ends unless it is the last one accepting.
    Idle,
    /// The stop came: the thread ends.
    Stop,
    /// A connection with its slot, to answer on this thread.
    Answer(J),
}

/// What the threads do with the listener: the service's admission and reply.
pub trait Accept: Send + Sync + 'static {
    type Job: Send;
    /// One `accept` and the decision about what it gave.
    fn turn(&self, listener: &TcpListener) -> Turn<Self::Job>;
    /// Answers an admitted connection.
    fn answer(&self, job: Self::Job);
    /// Closes an admitted connection unanswered: no thread could be started to accept while
    /// it was answered.
    fn unstaffed(&self, job: Self::Job);
}

/// One listener's threads; clones share them.
pub struct Workers<A: Accept>(Arc<Pool<A>>);

impl<A: Accept> Clone for Workers<A> {
    fn clone(&self) -> Self {
        Workers(self.0.clone())
    }
}

/// The threads hold the listener, the pool does not: it closes as the last thread ends.
struct Pool<A> {
    accept: A,
    state: Mutex<State>,
    /// Only [`Workers::stop`] and [`Workers::wait_ended`] wait on it, after `stopped` is set:
    /// before, nobody is woken (each wake-up is a syscall, on every poll).
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Threads in `accept` or deciding on what it gave.
    accepting: usize,
    /// Threads alive.
    threads: usize,
    stopped: bool,
}

impl<A: Accept> Workers<A> {
    /// Starts the first thread accepting on `listener`, with `idle` (the service:
    /// [`IDLE_KEEP`]) as its receive timeout where `accept` honours it.
    pub fn start(listener: TcpListener, accept: A, idle: Duration) -> io::Result<Workers<A>> {
        #[cfg(target_os = "linux")]
        socket2::SockRef::from(&listener).set_read_timeout(Some(idle))?;
        #[cfg(not(target_os = "linux"))]
        let _ = idle;
        let workers = Workers(Arc::new(Pool {
            accept,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }));
        {
            let mut state = lock(&workers.0.state);
            state.accepting = 1;
            state.threads = 1;
        }
        if let Err(err) = workers.0.spawn(Arc::new(listener)) {
            let mut state = lock(&workers.0.state);
            state.accepting = 0;
            state.threads = 0;
            return Err(err);
        }
        Ok(workers)
    }

    /// Once the service's stop is triggered: no thread accepts again, and `wake` (a
    /// connection to the listener) is called until none is left in `accept`, or `until`.
    /// Threads answering end when their connection is answered.
    pub fn stop(&self, wake: impl Fn() -> io::Result<()>, until: Instant) -> io::Result<()> {
        let mut state = lock(&self.0.state);
        state.stopped = true;
        while state.accepting > 0 && Instant::now() < until {
            let before = state.accepting;
            drop(state);
            wake()?;
            state = lock(&self.0.state);
            let wait = WAKE_WAIT.min(until.saturating_duration_since(Instant::now()));
            state = self
                .0
                .changed
                .wait_timeout_while(state, wait, |state| state.accepting == before)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(())
    }

    /// After [`Workers::stop`]: waits until every thread has ended, and with it let go of the
    /// listener, or `until`; how many are left.
    pub fn wait_ended(&self, until: Instant) -> usize {
        let mut state = lock(&self.0.state);
        while state.threads > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .0
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.threads
    }

    /// Threads alive now, and how many of them are accepting.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let state = lock(&self.0.state);
        (state.threads, state.accepting)
    }
}

impl<A: Accept> Pool<A> {
    /// Starts a thread already counted as accepting.
    fn spawn(self: &Arc<Self>, listener: Arc<TcpListener>) -> io::Result<()> {
        let pool = self.clone();
        thread::Builder::new()
            .name("lbf-probe".into())
            .stack_size(HANDLER_STACK)
            .spawn(move || pool.work(listener))
            .map(drop)
    }

    fn work(self: Arc<Self>, listener: Arc<TcpListener>) {
        loop {
            match self.accept.turn(&listener) {
                Turn::Again => {}
                Turn::Idle if self.leave(false) => break,
                Turn::Idle => {}
                Turn::Stop => {
                    self.leave(true);
                    break;
                }
                Turn::Answer(job) => {
                    if !self.staffed(&listener) {
                        self.accept.unstaffed(job);
                        continue;
                    }
                    self.accept.answer(job);
                    if !self.back() {
                        break;
                    }
                }
            }
        }
        // Let go of the listener before counting out, so none is left once all are.
        drop(listener);
        let mut state = lock(&self.state);
        state.threads -= 1;
        if state.stopped {
            self.changed.notify_all();
        }
    }

    /// Stops accepting: always when `anyway`, else (idle) unless it is the last one
    /// accepting and no stop has come. Whether it did.
    fn leave(&self, anyway: bool) -> bool {
        let mut state = lock(&self.state);
        if !(anyway || state.stopped || state.accepting > 1) {
            return false;
        }
        state.accepting -= 1;
        if state.stopped {
            self.changed.notify_all();
        }
        true
    }

    /// Before answering: leaves accepting to the others, first starting a thread to take its
    /// place if it is the last one. False if that failed: it stays accepting.
    fn staffed(self: &Arc<Self>, listener: &Arc<TcpListener>) -> bool {
        {
            let mut state = lock(&self.state);
            if state.accepting > 1 || state.stopped {
                state.accepting -= 1;
                if state.stopped {
                    self.changed.notify_all();
                }
                return true;
            }
            // Counted before it runs, so no other thread starts one too.
            state.threads += 1;
        }
        if self.spawn(listener.clone()).is_err() {
            lock(&self.state).threads -= 1;
            return false;
        }
        true
    }

    /// After answering: accepting again, unless the stop has come.
    fn back(&self) -> bool {
        let mut state = lock(&self.state);
        if state.stopped {
            return false;
        }
        state.accepting += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    /// Answers each connection with the id of the thread that accepted it, after waiting
    /// for its first byte: a connection holds its thread until the client writes.
    struct Echo {
        stopped: Arc<AtomicBool>,
        answered: Mutex<mpsc::Sender<thread::ThreadId>>,
    }

    impl Accept for Echo {
        type Job = TcpStream;
        fn turn(&self, listener: &TcpListener) -> Turn<TcpStream> {
            let accepted = listener.accept();
            if self.stopped.load(Ordering::SeqCst) {
                return Turn::Stop;
            }
            match accepted {
                Ok((stream, _)) => Turn::Answer(stream),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => Turn::Idle,
                Err(_) => Turn::Again,
            }
        }
        fn answer(&self, mut stream: TcpStream) {
            let _ = stream.read(&mut [0]);
            let _ = stream.write_all(b"answered\n");
            let _ = lock(&self.answered).send(thread::current().id());
        }
        fn unstaffed(&self, _: TcpStream) {}
    }

    fn until(what: impl Fn() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(Instant::now() < give_up, "not within 10 s");
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn start(
        idle: Duration,
    ) -> (
        Workers<Echo>,
        SocketAddr,
        Arc<AtomicBool>,
        mpsc::Receiver<thread::ThreadId>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let (answered, answers) = mpsc::channel();
        let echo = Echo {
            stopped: stopped.clone(),
            answered: Mutex::new(answered),
        };
        (
            Workers::start(listener, echo, idle).unwrap(),
            addr,
            stopped,
            answers,
        )
    }

    fn stop(workers: &Workers<Echo>, addr: SocketAddr, stopped: &AtomicBool) {
        stopped.store(true, Ordering::SeqCst);
        let wake = || TcpStream::connect(addr).map(drop);
        let soon = Instant::now() + Duration::from_secs(10);
        workers.stop(wake, soon).unwrap();
        assert_eq!(workers.wait_ended(soon), 0);
    }

    fn poll(addr: SocketAddr) -> String {
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(b"x").unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        reply
    }

    #[test]
    fn one_poll_after_another_needs_two_threads_in_all() {
        let (workers, addr, stopped, answers) = start(IDLE_KEEP);
        let mut threads = std::collections::HashSet::new();
        for _ in 0..5 {
            assert_eq!(poll(addr), "answered\n");
            threads.insert(answers.recv().unwrap());
            // The first poll's thread started one to accept while it answered; both are
            // back to accepting, and no other was started since.
            until(|| workers.counts() == (2, 2));
        }
        assert!(threads.len() <= 2, "{threads:?}");
        stop(&workers, addr, &stopped);
        assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    }

    #[test]
    fn connections_at_once_each_get_a_thread_and_one_stays_accepting() {
        let (workers, addr, stopped, answers) = start(IDLE_KEEP);
        let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // Four answering, each waiting for its client, and one more accepting.
        until(|| workers.counts() == (5, 1));
        for mut client in held {
            client.write_all(b"x").unwrap();
            let mut reply = String::new();
            client.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, "answered\n");
        }
        let threads: std::collections::HashSet<_> =
            (0..4).map(|_| answers.recv().unwrap()).collect();
        assert_eq!(threads.len(), 4);
        until(|| workers.counts() == (5, 5));
        stop(&workers, addr, &stopped);
    }

    #[test]
    fn a_stop_ends_those_accepting_and_those_answering_once_answered() {
        let (workers, addr, stopped, _answers) = start(IDLE_KEEP);
        let mut held = TcpStream::connect(addr).unwrap();
        until(|| workers.counts() == (2, 1));
        stopped.store(true, Ordering::SeqCst);
        let wake = || TcpStream::connect(addr).map(drop);
        let soon = Instant::now() + Duration::from_secs(10);
        workers.stop(wake, soon).unwrap();
        // The one accepting is gone; the one answering is not, until its client writes.
        assert_eq!(workers.counts(), (1, 0));
        held.write_all(b"x").unwrap();
        let mut reply = String::new();
        held.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "answered\n");
        assert_eq!(workers.wait_ended(soon), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn threads_idle_for_the_keep_end_but_the_last_one_accepting() {
        let (workers, addr, stopped, _answers) = start(Duration::from_millis(100));
        let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        until(|| workers.counts() == (4, 1));
        for mut client in held {
            client.write_all(b"x").unwrap();
        }
        // Back to accepting, then idle: all but one end.
        until(|| workers.counts() == (1, 1));
        thread::sleep(Duration::from_millis(300));
        assert_eq!(workers.counts(), (1, 1));
        assert_eq!(poll(addr), "answered\n");
        stop(&workers, addr, &stopped);
    }
}
