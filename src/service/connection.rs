//! One connection on the agent port, and what all of them share: the config in force, the
//! sampler, the slots and the refusal counts; from the mode and `agent-send` to the reply,
//! its undo when undelivered, and the clean close.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::limits::{Limits, Refusal, Refusals, Waiter};
use super::log::Log;
use super::reload::Live;
use super::sampler::{self, Sampler};
use super::slots::{Pending, Slot};
use super::{CONNECTION_SLACK, Slots, lock};
use crate::clock;
use crate::config::{Config, CpuMode, Mode};
use crate::probe::{self, Caller, ProbeError, Readings};
use crate::reply;
use crate::socket::{self, Undelivered};
use crate::state::StateDir;
use crate::state::history::Event;
use crate::state::pollers::Undo;

/// What every connection's thread shares.
pub(super) struct Shared {
    /// The config in force: each poll and each sample window takes it once.
    pub(super) live: Live,
    pub(super) log: Arc<Log>,
    pub(super) sampler: Sampler,
    pub(super) slots: Arc<Slots>,
    /// Only the threads accepting and the refusals' thread take it, for in-memory counting.
    pub(super) refusals: Mutex<Refusals>,
    /// Replies written on the agent port since the start.
    pub(super) answered: AtomicU64,
    pub(super) connection_time: Duration,
}

impl Shared {
    pub(super) fn new(live: Live, log: Arc<Log>) -> Shared {
        let config = live.get().config.clone();
        let limits = Limits::new(
            config.max_in_flight.get() as usize,
            config.max_in_flight_per_source.get() as usize,
        );
        Shared {
            slots: Arc::new(Slots::new(limits)),
            refusals: Mutex::new(Refusals::new(limits, Instant::now())),
            answered: AtomicU64::new(0),
            connection_time: Duration::from_millis(config.sample_ms.get()) + CONNECTION_SLACK,
            sampler: Sampler::new(
                Duration::from_millis(config.sample_ms.get()),
                sampler::KEEP_FOR,
            ),
            live,
            log,
        }
    }

    /// Counts a connection closed without a reply, and logs it if it is one of the first.
    pub(super) fn refuse(&self, peer: SocketAddr, why: Refusal) {
        if let Some(line) = lock(&self.refusals).refuse(peer, why) {
            self.log.problem(line);
        }
    }

    /// Logs the totals of refusals once their window has passed, or now if `all`.
    pub(super) fn report_refusals(&self, all: bool) {
        let lines = {
            let mut refusals = lock(&self.refusals);
            match all {
                true => refusals.end_window(Instant::now()),
                false => refusals.due(Instant::now()),
            }
        };
        for line in lines {
            self.log.problem(line);
        }
    }

    /// The kept windows follow each other, so each is already "since the last": since-last's
    /// saved counters would add nothing but a state write per window.
    pub(super) fn take_samples(&self) {
        let mut take = |wait: &mut dyn FnMut(Instant)| {
            // Each window with the config in force when it starts.
            let current = self.live.get();
            let state = StateDir::new(&current.config.state_dir);
            probe::sample_as(
                &current.needs,
                &current.config,
                CpuMode::Sample,
                &state,
                wait,
            )
        };
        self.sampler.run(&mut take, &self.log);
    }

    /// Answers the connection `slot` was taken for, then each waiting connection the slot is
    /// handed on to as it frees ([`Slots::pass_on`]), on this thread.
    pub(super) fn answer(&self, mut slot: Slot, mut pending: Pending) {
        loop {
            self.serve(pending);
            let (next, expired) = Slots::pass_on(slot, Instant::now());
            self.refuse_expired(expired);
            match next {
                Some(taken) => (slot, pending) = taken,
                None => return,
            }
        }
    }

    /// Closes connections whose wait for a slot ended, counted as refused for the rule that
    /// held each back.
    pub(super) fn refuse_expired(&self, expired: Vec<Waiter<Pending>>) {
        for waiter in expired {
            self.refuse(waiter.item.peer, waiter.why);
        }
    }

    /// One connection, from the mode to the clean close; its deadline counts from its accept.
    fn serve(&self, pending: Pending) {
        let Pending {
            mut stream,
            peer,
            accepted,
        } = pending;
        let deadline = accepted + self.connection_time;
        let Some((line, undo)) = self.reply(&mut stream, peer, accepted, deadline) else {
            return;
        };
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let written = stream
            .set_write_timeout(Some(left))
            .map_err(Undelivered::Write)
            .and_then(|()| socket::write_reply(&mut stream, line.as_bytes()));
        match &written {
            // A peer that closed first (a check by hand with empty input) was answered all
            // the same; it is no problem, it only does not count toward recovery.
            Ok(()) | Err(Undelivered::PeerShut) => {
                self.answered.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => self
                .log
                .problem(format!("{peer}: the reply was not delivered: {err}")),
        }
        // A reply the poller may never have read does not count toward its recovery.
        if let (Err(_), Some(undo)) = (written, undo) {
            StateDir::new(&self.live.get().config.state_dir).undo(&undo);
        }
        let _ = stream.shutdown(Shutdown::Write);
        socket::drain(
            &mut stream,
            deadline.min(Instant::now() + socket::DRAIN_TIME),
        );
    }

    /// The reply line and how to take its poll back if it is not delivered, or `None` to
    /// close without one.
    fn reply(
        &self,
        stream: &mut TcpStream,
        peer: SocketAddr,
        accepted: Instant,
        deadline: Instant,
    ) -> Option<(String, Option<Undo>)> {
        let current = self.live.get();
        let base = &current.config;
        let state = StateDir::new(&base.state_dir);
        let caller = Caller::Haproxy {
            peer: Some(peer.ip()),
        };
        let (mode, mode_from) = match probe::effective_mode(base, &state, clock::now_ms()) {
            Ok(mode) => mode,
            Err(err) => {
                let err = ProbeError::State(err);
                self.log.problem(format!("{peer}: {err}"));
                return Some((err.line(), None));
            }
        };
        // As the one-shot: a mode other than normal decides alone, nothing is sampled.
        let ticket = (mode == Mode::Normal).then(|| self.sampler.join());
        // As the one-shot: agent-send matters only when profiles need it (without them it is
        // left to the drain), and then in every mode. Its line is read while the sample runs,
        // and waited for until the window ends or REQUEST_GRACE after the connection,
        // whichever is later.
        let mut request = Vec::new();
        if !base.profiles.is_empty() {
            let grace = accepted + probe::REQUEST_GRACE;
            let until = match ticket {
                Some(ticket) => self.sampler.window_end(ticket, deadline).max(grace),
                None => grace,
            };
            socket::read_line(stream, &mut request, &mut false, until.min(deadline));
        }
        let (config, profile) = match probe::select(base, socket::request_line(&request).as_deref())
        {
            Ok(selected) => selected,
            Err(err) => {
                self.log.problem(format!("{peer}: {err}"));
                return Some((err.line(), None));
            }
        };
        let sampled = ticket.map(|ticket| self.sampler.readings(ticket, deadline));
        let nothing = Readings::default();
        let readings = match &sampled {
            None => &nothing,
            Some(None) => {
                self.log.problem(format!(
                    "{peer}: no sample within the connection's deadline; closed without a reply"
                ));
                return None;
            }
            Some(Some(sampled)) => match sampled.as_ref() {
                Ok(readings) => readings,
                // The sampler logged it once for every probe that shares it.
                Err(err) => {
                    let line = reply::error_line(&err.monitor);
                    let change = probe::record_error(config, &state, caller, profile, &line);
                    self.tell(config, change);
                    return Some((line, None));
                }
            },
        };
        // Under no lock of the service's own: a connection whose state I/O is slow (a stalled
        // disk, a FIFO planted in the state directory) holds up only itself, never the others,
        // but for the poller table's lock, which is bounded (state::LOCK_WAIT).
        let report = probe::answer(config, profile, readings, (mode, mode_from), caller, &state);
        match report {
            Ok(report) => {
                self.tell(config, report.recovery.change);
                Some((report.line, report.recovery.undo))
            }
            // A failed custom source: the sampler logged it once for the window.
            Err(err) => {
                let line = err.line();
                let change = probe::record_error(config, &state, caller, profile, &line);
                self.tell(config, change);
                Some((line, None))
            }
        }
    }

    /// A change of what a poller is told goes to the service's log, and to syslog when
    /// configured (unless the service's log is the event log, where syslog's events go on
    /// Windows: once is enough).
    fn tell(&self, config: &Config, change: Option<Event>) {
        if let Some(event) = change {
            if !self.log.is_event_log() {
                crate::syslog::tell(config, Some(&event));
            }
            self.log.info(format!("told {event}"));
        }
    }
}
