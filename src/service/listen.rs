//! The agent port's listeners: binding them (IPv6-only beside IPv4), what a thread does with
//! each connection it accepts ([`Agent`]: the allowlist and in-flight checks, then the
//! answer on that thread, [`super::workers`]), the descriptor limit they need, and waking
//! the listeners to stop.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::limits::Refusal;
use super::log::Log;
use super::slots::{Admitted, Pending, Slot};
use super::workers::{Accept, Turn, Workers};
use super::{Shared, Slots, Stop};
use crate::cidr;

/// Pending connections the kernel queues per listener while its threads catch up
/// (many load balancers connect in the same instant).
const BACKLOG: i32 = 1024;
/// After a failed `accept` (out of descriptors, say) the connection stays queued: pause
/// instead of spinning on it.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long waking a listener by connecting to it may take.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Descriptors kept beside one per connection in flight: listeners, stdio, the state
/// directory's files, /proc, a netlink socket.
#[cfg(target_os = "linux")]
const SPARE_FDS: u64 = 64;

/// A listening socket. IPv6 sockets are IPv6-only, so `0.0.0.0:P` and `[::]:P` bind side by
/// side on every OS (Linux would otherwise let `[::]` take IPv4 too, and the second bind fail
/// with "address in use"); std cannot set that before binding, socket2 can.
pub(super) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // As std does on Unix: a restarted service binds again while the previous one's
    // connections sit in TIME_WAIT. (On Windows the option would let another program take
    // the port, so it stays off there.)
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// A connection to the listener on `addr` from here, to wake a blocked `accept`.
fn wake(addr: SocketAddr) -> io::Result<()> {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    TcpStream::connect_timeout(&SocketAddr::new(ip, addr.port()), WAKE_TIMEOUT).map(drop)
}

/// Wakes each listener's threads blocked in `accept`, one connection to itself each, and
/// waits until none accepts (at most `until`), then for each other listener's thread
/// (`--http`'s). A listener that cannot be woken (its address unreachable from here) keeps
/// its threads until the process exits; they accept nothing more meanwhile.
pub(super) fn stop_acceptors(
    pools: &[(SocketAddr, Workers<Agent>)],
    others: Vec<(SocketAddr, JoinHandle<()>)>,
    until: Instant,
    log: &Log,
) {
    let cannot = |addr: SocketAddr, err: io::Error| {
        log.problem(format!(
            "cannot wake the listener on {addr} to stop it ({err}); it ends with the process"
        ))
    };
    for (addr, workers) in pools {
        if let Err(err) = workers.stop(|| wake(*addr), until) {
            cannot(*addr, err);
        }
    }
    for (addr, thread) in others {
        match wake(addr) {
            Ok(()) => {
                let _ = thread.join();
            }
            Err(err) => cannot(addr, err),
        }
    }
}

/// Every connection in flight or waiting for a slot holds a descriptor: with `max_in_flight`
/// 1024 and as many waiting the process needs about 2100, and systemd gives services a soft
/// limit of 1024 by default (the hard limit is far higher). Raises the soft limit to what
/// `max_in_flight` needs, within the hard limit;
/// logs it when that is not enough, since `accept` would then fail with "too many open files"
/// before `max_in_flight` is reached.
#[cfg(target_os = "linux")]
pub(super) fn check_fd_limit(max_in_flight: usize, log: &Log) {
    let need = (max_in_flight + super::limits::QUEUE_MAX) as u64 + SPARE_FDS;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or fill the struct given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= need {
        return;
    }
    let wanted = libc::rlimit {
        rlim_cur: need.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0;
    let now = if raised {
        wanted.rlim_cur
    } else {
        limit.rlim_cur
    };
    if now < need {
        log.problem(format!(
            "max_in_flight {max_in_flight} needs about {need} open files and the limit is {now}: \
             raise it (systemd: LimitNOFILE=) or lower max_in_flight"
        ));
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn check_fd_limit(_max_in_flight: usize, _log: &Log) {}

/// What one `accept` gave a listener's loop.
pub(crate) enum Accepted {
    Connection(TcpStream, SocketAddr),
    /// Nothing to answer: the peer gave up, or a signal came.
    Again,
    /// Accepting failed (logged, and paused for [`ACCEPT_PAUSE`] so a full descriptor table is
    /// not a busy loop).
    Failed,
    /// Nothing came within the listener's receive timeout ([`super::workers`]).
    Idle,
    /// The stop was triggered (the wake-up connection, or one that came as it began: no reply).
    Stop,
}

/// One `accept` on `listener`; `what` names it in the log.
pub(crate) fn accept(listener: &TcpListener, stop: &Stop, log: &Log, what: &str) -> Accepted {
    let accepted = listener.accept();
    if stop.is_set() {
        return Accepted::Stop;
    }
    match accepted {
        Ok((stream, peer)) => Accepted::Connection(stream, peer),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Accepted::Idle,
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
            ) =>
        {
            Accepted::Again
        }
        Err(err) => {
            log.problem(format!("accepting {what} failed: {err}"));
            thread::sleep(ACCEPT_PAUSE);
            Accepted::Failed
        }
    }
}

/// What the agent port's threads do with a listener: check the allowlist and the in-flight
/// limits, then answer the connection on the thread that accepted it, or queue it for a slot
/// ([`super::limits`], "Waiting for a slot").
pub(super) struct Agent {
    pub(super) shared: Arc<Shared>,
    pub(super) stop: Stop,
    /// The listener in the log: "on ADDR".
    pub(super) what: String,
}

impl Accept for Agent {
    type Job = (Slot, Pending);

    // Nothing here waits for anything but `accept`: the slot and the refusal counts are in
    // memory, and the log only queues (see log.rs).
    fn turn(&self, listener: &TcpListener) -> Turn<(Slot, Pending)> {
        let shared = &self.shared;
        let (stream, peer) = match accept(listener, &self.stop, &shared.log, &self.what) {
            Accepted::Stop => return Turn::Stop,
            Accepted::Again => return Turn::Again,
            // Out of descriptors, say: one thread accepting is enough to retry (and to log).
            Accepted::Idle | Accepted::Failed => return Turn::Idle,
            Accepted::Connection(stream, peer) => (stream, peer),
        };
        if !cidr::allowed(&shared.live.get().config.allow, peer.ip()) {
            shared.refuse(peer, Refusal::NotAllowed);
            return Turn::Again;
        }
        let pending = Pending {
            stream,
            peer,
            accepted: Instant::now(),
        };
        let (admitted, expired) = Slots::take_or_wait(&shared.slots, pending, Instant::now());
        shared.refuse_expired(expired);
        match admitted {
            Admitted::Now(slot, pending) => Turn::Answer((slot, pending)),
            Admitted::Waits => Turn::Again,
            Admitted::Refused(why, pending) => {
                shared.refuse(pending.peer, why);
                Turn::Again
            }
        }
    }

    fn answer(&self, (slot, pending): (Slot, Pending)) {
        self.shared.answer(slot, pending);
    }

    fn unstaffed(&self, (slot, pending): (Slot, Pending)) {
        let peer = pending.peer;
        // The slot is freed and the connection closed before the refusal is told.
        drop((slot, pending));
        self.shared.refuse(peer, Refusal::NoThread);
    }
}
