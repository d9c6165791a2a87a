//! Who may take an in-flight slot, and how refusals are told: the service's admission
//! bookkeeping, kept free of sockets and clocks so it can be tested as plain data.
//!
//! # The limits
//! A connection is answered by a thread of its own while it holds a slot. Three rules decide
//! whether a new connection from address `S` gets one (xinetd's `instances` and `per_source`,
//! and systemd's `MaxConnections=` and `MaxConnectionsPerSource=`, are the models):
//! 1. `max_in_flight` slots in all;
//! 2. at most `max_in_flight_per_source` of them held by `S`;
//! 3. the reserve: when `S` already has a connection in flight and no more than `reserve` slots
//!    are free, `S` is refused. The last `reserve` free slots are kept for addresses with
//!    nothing in flight, so the sources that are already being answered (a flood among them)
//!    can never hold more than `max_in_flight - reserve` slots between them, and a load
//!    balancer whose poll comes in during a flood still finds a slot.
//!
//! `reserve` is `min(max_in_flight_per_source, max_in_flight / 8)`: one source's worth of
//! slots, but never more than an eighth of the total, so a small `max_in_flight` (2, say) is
//! still usable by a single peer. With the defaults (1024 and 128) one address can hold 128
//! slots and busy addresses together 896; the other 128 are for addresses with none.
//!
//! # Waiting for a slot
//! A connection refused by rule 2 or 3 (its address already has connections in flight) is
//! not closed at once: it waits in [`Waiting`], oldest first, and takes the first slot the
//! rules give it as connections end, for at most [`QUEUE_WAIT`]; then it is closed without
//! a reply and counted as refused for the rule that held it back. Many load balancers behind
//! one address (a NAT), or one HAProxy with many servers polling this host, are so all
//! answered, a little later, instead of some refused. The rules still decide every slot, so
//! the waiting take nothing from `max_in_flight` or the reserve. Bounded: an address has at
//! most `max_in_flight_per_source` waiting (with the defaults, 128 in flight and 128 waiting;
//! beyond, refused at once), and [`QUEUE_MAX`] wait in all, the listener's accept backlog,
//! each holding only its socket. A connection refused by rule 1 (every slot taken) does not
//! wait: the limit in all stays a limit.
//!
//! What the limits do not stop: a client with many addresses (every address of 127.0.0.0/8 on
//! the host itself, an IPv6 prefix) counts as many sources, each with its own share, and can
//! still take every slot; `allow` is the answer to that. An IPv4 peer on an IPv6 listener
//! (`::ffff:10.0.0.1`) counts as the IPv4 address.
//!
//! # Telling refusals
//! One line per refused connection let a flood write 70,000 lines a second. [`Refusals`]
//! writes the first refusal of an address (and reason) in each report window as it happens,
//! at most [`FIRST_LINES`] of them per window, and counts the rest; at the window's end it
//! writes one line per address with its count (the [`SUMMARY_LINES`] busiest, then one line
//! for all the others): "refused 5123 connections from 127.0.0.1 in the last 10 s:
//! max_in_flight_per_source". That is at most `FIRST_LINES + SUMMARY_LINES + 1` lines per
//! window, whatever the flood.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long refusals are counted before their totals are written.
pub const REPORT_WINDOW: Duration = Duration::from_secs(10);
/// Refusals written as they happen, per window; the rest are counted.
pub const FIRST_LINES: usize = 5;
/// Addresses written one by one in a window's totals; the others share one line.
pub const SUMMARY_LINES: usize = 5;
/// Addresses counted one by one per window; refusals beyond are counted together, so a flood
/// from many addresses cannot grow the table without bound.
pub const TRACKED_SOURCES: usize = 1000;

/// How long a connection waits for a slot at most: under half of HAProxy's default check
/// timeout (`inter`, 2 s, when `timeout check` is not set), so a reply after the longest wait
/// still arrives in time, given a sample at hand.
pub const QUEUE_WAIT: Duration = Duration::from_secs(1);
/// Connections waiting for a slot at most, from all addresses: as many as the listener's
/// accept backlog holds.
pub const QUEUE_MAX: usize = 1024;

/// The in-flight limits, from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max: usize,
    pub per_source: usize,
    /// Free slots kept for addresses with nothing in flight (see the module's comment).
    pub reserve: usize,
}

impl Limits {
    pub fn new(max: usize, per_source: usize) -> Limits {
        Limits {
            max,
            per_source,
            reserve: per_source.min(max / 8),
        }
    }

    /// Whether a connection may start while `total` are in flight, `of_source` of them from
    /// its address.
    pub fn admit(&self, total: usize, of_source: usize) -> Result<(), Refusal> {
        if total >= self.max {
            Err(Refusal::Full)
        } else if of_source >= self.per_source {
            Err(Refusal::PerSource)
        } else if of_source > 0 && self.max - total <= self.reserve {
            Err(Refusal::Reserved)
        } else {
            Ok(())
        }
    }
}

/// Why a connection was closed without a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    NotAllowed,
    /// `max_in_flight` reached.
    Full,
    /// `max_in_flight_per_source` reached for this address.
    PerSource,
    /// This address has connections in flight and the free slots left are the reserve.
    Reserved,
    /// No thread could be started for it.
    NoThread,
}

impl Refusal {
    /// The reason as a refusal's own line gives it.
    pub fn explain(self, limits: &Limits) -> String {
        match self {
            Refusal::NotAllowed => "not in allow".into(),
            Refusal::Full => format!(
                "{} connections already in flight (max_in_flight)",
                limits.max
            ),
            Refusal::PerSource => format!(
                "{} connections from this address already in flight (max_in_flight_per_source)",
                limits.per_source
            ),
            Refusal::Reserved => format!(
                "this address has connections in flight and the last {} free slots are kept \
                 for addresses with none",
                limits.reserve
            ),
            Refusal::NoThread => "no thread could be started".into(),
        }
    }

    /// The reason in a window's totals.
    pub fn short(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "not in allow",
            Refusal::Full => "max_in_flight",
            Refusal::PerSource => "max_in_flight_per_source",
            Refusal::Reserved => "slots kept for other addresses",
            Refusal::NoThread => "no thread",
        }
    }
}

/// The address a peer counts as: IPv4-mapped IPv6 as plain IPv4.
pub fn source(peer: SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

/// The connections in flight, in all and per address.
#[derive(Debug, Default)]
pub struct InFlight {
    total: usize,
    /// Only addresses with at least one: the table is never larger than `max_in_flight`.
    by_source: HashMap<IpAddr, usize>,
}

impl InFlight {
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn of(&self, source: IpAddr) -> usize {
        self.by_source.get(&source).copied().unwrap_or(0)
    }

    /// Takes a slot for `source` if `limits` allow it.
    pub fn take(&mut self, limits: &Limits, source: IpAddr) -> Result<(), Refusal> {
        limits.admit(self.total, self.of(source))?;
        self.total += 1;
        *self.by_source.entry(source).or_insert(0) += 1;
        Ok(())
    }

    /// Gives back a slot [`InFlight::take`] gave.
    pub fn give_back(&mut self, source: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(count) = self.by_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.by_source.remove(&source);
            }
        }
    }
}

/// A connection waiting for a slot, and why it did not get one when it came.
#[derive(Debug)]
pub struct Waiter<T> {
    pub source: IpAddr,
    pub since: Instant,
    pub why: Refusal,
    pub item: T,
}

/// The connections waiting for a slot, oldest first (see the module's comment).
#[derive(Debug)]
pub struct Waiting<T> {
    entries: std::collections::VecDeque<Waiter<T>>,
    /// Only addresses with at least one waiting.
    by_source: HashMap<IpAddr, usize>,
}

impl<T> Default for Waiting<T> {
    fn default() -> Waiting<T> {
        Waiting {
            entries: std::collections::VecDeque::new(),
            by_source: HashMap::new(),
        }
    }
}

impl<T> Waiting<T> {
    /// Queues `item`, refused a slot for `why` at `now`; given back when it may not wait (a
    /// refusal other than rules 2 and 3, its address's share of the queue or the queue full).
    pub fn push(
        &mut self,
        limits: &Limits,
        source: IpAddr,
        why: Refusal,
        now: Instant,
        item: T,
    ) -> Result<(), T> {
        let waits = matches!(why, Refusal::PerSource | Refusal::Reserved);
        let of_source = self.by_source.get(&source).copied().unwrap_or(0);
        if !waits || of_source >= limits.per_source || self.entries.len() >= QUEUE_MAX {
            return Err(item);
        }
        *self.by_source.entry(source).or_insert(0) += 1;
        self.entries.push_back(Waiter {
            source,
            since: now,
            why,
            item,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The oldest waiting connection the rules admit now, its slot taken in `in_flight`.
    pub fn admit(&mut self, limits: &Limits, in_flight: &mut InFlight) -> Option<Waiter<T>> {
        if in_flight.total() >= limits.max {
            return None;
        }
        let at = self
            .entries
            .iter()
            .position(|w| in_flight.take(limits, w.source).is_ok())?;
        let waiter = self.entries.remove(at)?;
        self.forget(waiter.source);
        Some(waiter)
    }

    /// When the oldest one's wait ends, if any waits.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.entries.front().map(|w| w.since + QUEUE_WAIT)
    }

    /// Takes out those that have waited [`QUEUE_WAIT`] by `now`.
    pub fn expired(&mut self, now: Instant) -> Vec<Waiter<T>> {
        let mut gone = Vec::new();
        while self
            .entries
            .front()
            .is_some_and(|w| now.saturating_duration_since(w.since) >= QUEUE_WAIT)
        {
            if let Some(waiter) = self.entries.pop_front() {
                self.forget(waiter.source);
                gone.push(waiter);
            }
        }
        gone
    }

    /// Takes out every one (at a stop).
    pub fn take_all(&mut self) -> Vec<Waiter<T>> {
        self.by_source.clear();
        self.entries.drain(..).collect()
    }

    fn forget(&mut self, source: IpAddr) {
        if let Some(count) = self.by_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.by_source.remove(&source);
            }
        }
    }
}

/// Refusals of one window, by address and reason (see the module's comment).
#[derive(Debug)]
pub struct Refusals {
    limits: Limits,
    since: Instant,
    /// Refusals after an address's first line in this window.
    counted: HashMap<(IpAddr, Refusal), u64>,
    /// Refusals of addresses beyond `TRACKED_SOURCES`.
    untracked: u64,
    first_lines: usize,
    /// Every refusal since the start, by reason (lb-feedback-service's `/metrics`).
    totals: BTreeMap<Refusal, u64>,
}

impl Refusals {
    pub fn new(limits: Limits, now: Instant) -> Refusals {
        Refusals {
            limits,
            since: now,
            counted: HashMap::new(),
            untracked: 0,
            first_lines: 0,
            totals: BTreeMap::new(),
        }
    }

    /// Counts one refusal; the line to write now, if it is one of the window's first.
    pub fn refuse(&mut self, peer: SocketAddr, why: Refusal) -> Option<String> {
        *self.totals.entry(why).or_insert(0) += 1;
        let key = (source(peer), why);
        if let Some(count) = self.counted.get_mut(&key) {
            *count += 1;
            return None;
        }
        if self.counted.len() >= TRACKED_SOURCES {
            self.untracked += 1;
            return None;
        }
        // The first of this address and reason: a line now, while the window has lines left;
        // otherwise it is counted with the rest.
        let write = self.first_lines < FIRST_LINES;
        self.counted.insert(key, u64::from(!write));
        if !write {
            return None;
        }
        self.first_lines += 1;
        Some(format!(
            "{peer}: {}; closed without a reply",
            why.explain(&self.limits)
        ))
    }

    /// Refusals since the start, by reason; reasons never seen are absent.
    pub fn totals(&self) -> &BTreeMap<Refusal, u64> {
        &self.totals
    }

    /// Once the window has passed: its totals (nothing if nothing is left to tell), and a new
    /// window starts.
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        if now.saturating_duration_since(self.since) < REPORT_WINDOW {
            return Vec::new();
        }
        self.end_window(now)
    }

    /// The totals of the window so far, and a new window starts (at a stop, say).
    pub fn end_window(&mut self, now: Instant) -> Vec<String> {
        let seconds = now.saturating_duration_since(self.since).as_secs_f64();
        let seconds = format!("{seconds:.0}");
        let mut counts: Vec<((IpAddr, Refusal), u64)> = self
            .counted
            .drain()
            .filter(|(_, count)| *count > 0)
            .collect();
        // The busiest first; ties by address, for a stable order.
        counts.sort_by(|(a, x), (b, y)| y.cmp(x).then(a.cmp(b)));
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        let mut lines: Vec<String> = counts
            .iter()
            .take(SUMMARY_LINES)
            .map(|((ip, why), count)| {
                format!(
                    "refused {count} more connection{} from {ip} in the last {seconds} s: {}",
                    plural(*count),
                    why.short()
                )
            })
            .collect();
        let rest = counts.get(SUMMARY_LINES..).unwrap_or_default();
        let others: u64 = rest.iter().map(|(_, n)| n).sum::<u64>() + self.untracked;
        if others > 0 {
            let sources = match self.untracked {
                0 => format!("{} other addresses", rest.len()),
                _ => "other addresses".into(),
            };
            lines.push(format!(
                "refused {others} more connection{} from {sources} in the last {seconds} s",
                plural(others)
            ));
        }
        self.since = now;
        self.untracked = 0;
        self.first_lines = 0;
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn peer(text: &str) -> SocketAddr {
        SocketAddr::new(ip(text), 40000)
    }

    #[test]
    fn reserve_is_one_source_at_most_an_eighth() {
        assert_eq!(Limits::new(1024, 128).reserve, 128);
        assert_eq!(Limits::new(1024, 16).reserve, 16);
        assert_eq!(Limits::new(64, 16).reserve, 8);
        assert_eq!(Limits::new(2, 16).reserve, 0);
    }

    #[test]
    fn admit_applies_the_three_rules() {
        let limits = Limits::new(64, 16); // reserve 8
        assert_eq!(limits.admit(64, 0), Err(Refusal::Full));
        assert_eq!(limits.admit(10, 16), Err(Refusal::PerSource));
        assert_eq!(limits.admit(10, 15), Ok(()));
        // 8 free: kept for addresses with nothing in flight.
        assert_eq!(limits.admit(56, 1), Err(Refusal::Reserved));
        assert_eq!(limits.admit(56, 0), Ok(()));
        assert_eq!(limits.admit(63, 0), Ok(()));
        assert_eq!(limits.admit(55, 1), Ok(()));
        // Without a reserve one address may use every slot.
        let small = Limits::new(2, 16);
        assert_eq!(small.admit(1, 1), Ok(()));
        assert_eq!(small.admit(2, 2), Err(Refusal::Full));
    }

    #[test]
    fn a_flood_from_one_address_leaves_slots_for_the_others() {
        let limits = Limits::new(64, 16);
        let mut in_flight = InFlight::default();
        let flood = ip("127.0.0.1");
        let taken = (0..400)
            .filter(|_| in_flight.take(&limits, flood).is_ok())
            .count();
        assert_eq!(taken, 16);
        assert_eq!(
            in_flight.take(&limits, flood),
            Err(Refusal::PerSource),
            "per-source limit"
        );
        // Busy addresses fill up to the reserve, never past it.
        for n in 2..=4 {
            let busy = ip(&format!("10.0.0.{n}"));
            while in_flight.take(&limits, busy).is_ok() {}
        }
        assert_eq!(in_flight.total(), 64 - 8);
        assert_eq!(in_flight.of(ip("10.0.0.4")), 8);
        assert_eq!(
            in_flight.take(&limits, ip("10.0.0.4")),
            Err(Refusal::Reserved)
        );
        // Every address with nothing in flight still gets one.
        for n in 1..=8 {
            let idle = ip(&format!("192.0.2.{n}"));
            assert_eq!(in_flight.take(&limits, idle), Ok(()));
            let second = if n < 8 {
                Refusal::Reserved
            } else {
                Refusal::Full
            };
            assert_eq!(in_flight.take(&limits, idle), Err(second));
        }
        assert_eq!(
            in_flight.take(&limits, ip("192.0.2.99")),
            Err(Refusal::Full)
        );
        // Giving back frees the slot and forgets an address at zero.
        in_flight.give_back(ip("192.0.2.1"));
        assert_eq!(in_flight.of(ip("192.0.2.1")), 0);
        assert!(!in_flight.by_source.contains_key(&ip("192.0.2.1")));
        assert_eq!(in_flight.take(&limits, ip("192.0.2.99")), Ok(()));
        for _ in 0..16 {
            in_flight.give_back(flood);
        }
        assert_eq!(in_flight.of(flood), 0);
        assert_eq!(in_flight.total(), 64 - 16);
    }

    #[test]
    fn overflow_from_one_address_waits_and_takes_slots_as_they_free() {
        let limits = Limits::new(64, 16); // reserve 8
        let (mut in_flight, mut waiting) = (InFlight::default(), Waiting::default());
        let (flood, quiet) = (ip("127.0.0.1"), ip("127.0.0.2"));
        let start = Instant::now();
        let mut queued = 0;
        let mut refused = 0;
        for n in 0..40 {
            match in_flight.take(&limits, flood) {
                Ok(()) => {}
                Err(why) => match waiting.push(&limits, flood, why, start, n) {
                    Ok(()) => queued += 1,
                    Err(_) => refused += 1,
                },
            }
        }
        // 16 in flight, 16 waiting (the address's share of the queue), 8 refused at once.
        assert_eq!((in_flight.of(flood), queued, refused), (16, 16, 8));
        // Nothing frees: none is admitted, and another address still gets its slot at once.
        assert!(waiting.admit(&limits, &mut in_flight).is_none());
        assert_eq!(in_flight.take(&limits, quiet), Ok(()));
        // Each slot freed goes to the oldest waiting, in order.
        for expected in 16..32 {
            in_flight.give_back(flood);
            let waiter = waiting.admit(&limits, &mut in_flight).unwrap();
            assert_eq!((waiter.item, waiter.why), (expected, Refusal::PerSource));
            assert_eq!(in_flight.of(flood), 16);
        }
        assert!(waiting.is_empty() && waiting.by_source.is_empty());
    }

    #[test]
    fn the_waiting_take_neither_the_reserve_nor_the_last_slot() {
        let limits = Limits::new(64, 64); // reserve 8
        let (mut in_flight, mut waiting) = (InFlight::default(), Waiting::default());
        let busy = ip("10.0.0.1");
        let now = Instant::now();
        while in_flight.take(&limits, busy).is_ok() {}
        assert_eq!(in_flight.total(), 56);
        assert_eq!(
            waiting.push(&limits, busy, Refusal::Reserved, now, 1),
            Ok(())
        );
        // The reserve goes to addresses with none, and the waiting one stays waiting.
        for n in 1..=8 {
            assert_eq!(in_flight.take(&limits, ip(&format!("192.0.2.{n}"))), Ok(()));
            assert!(waiting.admit(&limits, &mut in_flight).is_none());
        }
        // Every slot taken: a refusal by the limit in all does not wait.
        assert_eq!(
            waiting.push(&limits, ip("192.0.2.99"), Refusal::Full, now, 2),
            Err(2)
        );
        // The reserve's slots freed are the reserve's again; one of the busy address's is its.
        for n in 1..=8 {
            in_flight.give_back(ip(&format!("192.0.2.{n}")));
            assert!(waiting.admit(&limits, &mut in_flight).is_none());
        }
        in_flight.give_back(busy);
        assert_eq!(
            waiting.admit(&limits, &mut in_flight).map(|w| w.item),
            Some(1)
        );
        assert_eq!(in_flight.total(), 56);
    }

    #[test]
    fn waiting_ends_after_queue_wait_and_the_queue_is_bounded() {
        let limits = Limits::new(4096, 2048);
        let mut waiting = Waiting::default();
        let start = Instant::now();
        let later = start + Duration::from_millis(500);
        assert_eq!(waiting.next_expiry(), None);
        for n in 0..QUEUE_MAX {
            let from = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000_u32 + n as u32 % 4));
            let at = if n < 10 { start } else { later };
            assert_eq!(
                waiting.push(&limits, from, Refusal::PerSource, at, n),
                Ok(())
            );
        }
        assert_eq!(
            waiting.push(&limits, ip("10.9.9.9"), Refusal::PerSource, later, 0),
            Err(0)
        );
        assert_eq!(waiting.next_expiry(), Some(start + QUEUE_WAIT));
        assert!(
            waiting
                .expired(start + QUEUE_WAIT - Duration::from_millis(1))
                .is_empty()
        );
        let gone = waiting.expired(start + QUEUE_WAIT);
        assert_eq!(
            gone.iter().map(|w| w.item).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(waiting.len(), QUEUE_MAX - 10);
        assert_eq!(waiting.take_all().len(), QUEUE_MAX - 10);
        assert!(waiting.is_empty() && waiting.by_source.is_empty());
    }

    #[test]
    fn ipv4_mapped_peers_count_as_ipv4() {
        assert_eq!(source(peer("::ffff:127.0.0.1")), ip("127.0.0.1"));
        assert_eq!(source(peer("::1")), ip("::1"));
    }

    #[test]
    fn refusals_write_the_first_and_count_the_rest() {
        let start = Instant::now();
        let limits = Limits::new(1024, 16);
        let mut refusals = Refusals::new(limits, start);
        let first = refusals.refuse(peer("127.0.0.1"), Refusal::PerSource);
        assert_eq!(
            first.as_deref(),
            Some(
                "127.0.0.1:40000: 16 connections from this address already in flight \
                 (max_in_flight_per_source); closed without a reply"
            )
        );
        for _ in 0..5122 {
            assert_eq!(refusals.refuse(peer("127.0.0.1"), Refusal::PerSource), None);
        }
        // Another reason is another line.
        assert!(
            refusals
                .refuse(peer("127.0.0.1"), Refusal::NotAllowed)
                .is_some()
        );
        assert!(refusals.due(start + Duration::from_secs(9)).is_empty());
        // Every refusal counts in the totals since the start, lines or not.
        assert_eq!(refusals.totals().get(&Refusal::PerSource), Some(&5123));
        assert_eq!(refusals.totals().get(&Refusal::NotAllowed), Some(&1));
        let totals = refusals.due(start + REPORT_WINDOW);
        assert_eq!(
            totals,
            vec![
                "refused 5122 more connections from 127.0.0.1 in the last 10 s: \
                 max_in_flight_per_source"
            ]
        );
        // A new window: a first line again, nothing to total if nothing follows it.
        assert!(
            refusals
                .refuse(peer("127.0.0.1"), Refusal::PerSource)
                .is_some()
        );
        assert!(refusals.due(start + REPORT_WINDOW * 2).is_empty());
        assert!(refusals.end_window(start + REPORT_WINDOW * 2).is_empty());
    }

    #[test]
    fn a_flood_from_many_addresses_stays_a_few_lines() {
        let start = Instant::now();
        let mut refusals = Refusals::new(Limits::new(1024, 16), start);
        let mut written = 0;
        for round in 0..20u64 {
            for n in 0..2000u32 {
                let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000_u32 + n));
                for _ in 0..=(round % 3) {
                    written += usize::from(
                        refusals
                            .refuse(SocketAddr::new(addr, 1), Refusal::Full)
                            .is_some(),
                    );
                }
            }
        }
        assert_eq!(written, FIRST_LINES);
        let totals = refusals.end_window(start + Duration::from_secs(3));
        assert_eq!(totals.len(), SUMMARY_LINES + 1, "{totals:?}");
        assert!(
            totals[SUMMARY_LINES].contains("from other addresses in the last 3 s"),
            "{totals:?}"
        );
        let counted: u64 = totals
            .iter()
            .map(|line| line.split(' ').nth(1).unwrap().parse::<u64>().unwrap())
            .sum();
        // Every refusal but the written ones is in the totals.
        let all: u64 = (0..20u64).map(|round| 2000 * (round % 3 + 1)).sum();
        assert_eq!(counted, all - FIRST_LINES as u64);
        assert!(refusals.counted.is_empty());
    }
}
