//! The in-flight slots and the connections waiting for one: the rules and the queue of
//! [`super::limits`] under one lock, so a slot freed as a connection ends goes to the oldest
//! waiting connection the rules admit, and none waits while a slot it may take is free.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::limits::{self, InFlight, Limits, Refusal, Waiter, Waiting};
use super::lock;

/// A connection accepted and not yet answered.
pub struct Pending {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub accepted: Instant,
}

/// What a new connection got.
pub enum Admitted {
    /// A slot: answer it now.
    Now(Slot, Pending),
    /// A place in the queue: a connection that ends hands it a slot, or its wait ends.
    Waits,
    /// Neither: close it without a reply.
    Refused(Refusal, Pending),
}

/// The slots of one listener kind (the agent port's, `--http`'s).
pub struct Slots {
    pub limits: Limits,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Default)]
struct State {
    in_flight: InFlight,
    waiting: Waiting<Pending>,
    /// Threads in [`Slots::wait_idle`]: only they need a wake-up when a slot frees (each
    /// costs a syscall, on every poll).
    watchers: usize,
}

/// A taken slot; dropping it (the connection's thread ending, or failing to start) frees it.
pub struct Slot {
    slots: Arc<Slots>,
    /// `None` once handed on ([`Slots::pass_on`]).
    source: Option<IpAddr>,
}

impl Slots {
    pub fn new(limits: Limits) -> Slots {
        Slots {
            limits,
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        }
    }

    /// A slot for a connection from `peer`, or why not; it never waits.
    pub fn take(slots: &Arc<Slots>, peer: SocketAddr) -> Result<Slot, Refusal> {
        let source = limits::source(peer);
        lock(&slots.state).in_flight.take(&slots.limits, source)?;
        Ok(slots.slot(source))
    }

    /// A slot for `pending`, or a place in the queue, or neither; with the connections whose
    /// wait has ended by `now`, to be refused.
    pub fn take_or_wait(
        slots: &Arc<Slots>,
        pending: Pending,
        now: Instant,
    ) -> (Admitted, Vec<Waiter<Pending>>) {
        let source = limits::source(pending.peer);
        let mut state = lock(&slots.state);
        let expired = state.waiting.expired(now);
        let admitted = match state.in_flight.take(&slots.limits, source) {
            Ok(()) => Admitted::Now(slots.slot(source), pending),
            Err(why) => match state.waiting.push(&slots.limits, source, why, now, pending) {
                Ok(()) => Admitted::Waits,
                Err(pending) => Admitted::Refused(why, pending),
            },
        };
        (admitted, expired)
    }

    /// Frees `slot` and hands it on: the oldest waiting connection the rules admit now, with
    /// its slot; and the connections whose wait has ended by `now`, to be refused.
    pub fn pass_on(
        mut slot: Slot,
        now: Instant,
    ) -> (Option<(Slot, Pending)>, Vec<Waiter<Pending>>) {
        let slots = slot.slots.clone();
        let mut state = lock(&slots.state);
        if let Some(source) = slot.source.take() {
            state.in_flight.give_back(source);
        }
        let expired = state.waiting.expired(now);
        let State {
            in_flight,
            waiting,
            watchers,
        } = &mut *state;
        let next = waiting
            .admit(&slots.limits, in_flight)
            .map(|waiter| (slots.slot(waiter.source), waiter.item));
        let watched = *watchers > 0;
        drop(state);
        if watched {
            slots.freed.notify_all();
        }
        (next, expired)
    }

    /// The connections whose wait has ended by `now`, taken out of the queue.
    pub fn expired(&self, now: Instant) -> Vec<Waiter<Pending>> {
        lock(&self.state).waiting.expired(now)
    }

    /// When the oldest waiting connection's wait ends, if one waits.
    pub fn next_expiry(&self) -> Option<Instant> {
        lock(&self.state).waiting.next_expiry()
    }

    /// Every waiting connection, taken out of the queue (at a stop).
    pub fn take_waiting(&self) -> Vec<Waiter<Pending>> {
        lock(&self.state).waiting.take_all()
    }

    /// Waits until no connection is in flight, or `until`; returns how many still are.
    pub fn wait_idle(&self, until: Instant) -> usize {
        let mut state = lock(&self.state);
        state.watchers += 1;
        while state.in_flight.total() > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = match self.freed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        state.watchers -= 1;
        state.in_flight.total()
    }

    /// A slot already counted in the state for `source`.
    fn slot(self: &Arc<Slots>, source: IpAddr) -> Slot {
        Slot {
            slots: self.clone(),
            source: Some(source),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(source) = self.source.take() {
            let watched = {
                let mut state = lock(&self.slots.state);
                state.in_flight.give_back(source);
                state.watchers > 0
            };
            if watched {
                self.slots.freed.notify_all();
            }
        }
    }
}
