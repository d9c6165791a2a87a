//! Established connections counted on Linux against real loopback sockets: sock_diag netlink
//! (asked with one dump for both families, and with one per family), the `/proc/net/tcp*`
//! fallback and all combined must be exact, for IPv4, IPv6 and v4-mapped connections, with
//! thousands of sockets, and with more watched ports than one netlink request holds.
#![cfg(target_os = "linux")]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};

use lb_feedback::metrics::tcp::{
    Netlink, count_established, count_established_netlink, count_established_netlink_as,
    count_established_proc,
};

/// Whether this host has sock_diag netlink at all (gVisor and some seccomp profiles do not).
/// Where it is missing the netlink figures are skipped, unless `LB_FEEDBACK_E2E=1` says
/// they must be there.
fn netlink_available() -> bool {
    match count_established_netlink(&[1]) {
        Ok(_) => true,
        Err(err) => {
            assert!(!common::e2e_required(), "no sock_diag netlink here: {err}");
            eprintln!("note: no sock_diag netlink here ({err}); checking /proc only");
            false
        }
    }
}

/// Every way of counting gives `expected` for `ports`.
fn assert_counts(ports: &[u16], expected: &[u64]) {
    settle(ports, |_, counts| counts == expected);
}

/// Reads `ports` every way until every reading passes `check(way, counts)`; fails with the
/// readings after ten tries.
///
/// A read of the kernel's tables is not a snapshot: each `read` of `/proc` and each netlink
/// datagram resumes at a position in the socket hash table, and sockets that other programs
/// open or close meanwhile shift what comes after it, so one can be read twice or missed.
/// Other tests and programs run alongside these, so a reading gets a few tries; a count that
/// is wrong for another reason stays wrong and fails.
fn settle(ports: &[u16], check: impl Fn(&str, &[u64]) -> bool) {
    let netlink = netlink_available();
    let mut readings = Vec::new();
    for _ in 0..10 {
        readings = vec![
            ("/proc", count_established_proc(ports).unwrap()),
            ("combined", count_established(ports).unwrap()),
        ];
        if netlink {
            readings.push(("netlink", count_established_netlink(ports).unwrap()));
            for (way, how) in [
                ("one dump", Netlink::OneDump),
                ("per family", Netlink::PerFamily),
            ] {
                readings.push((way, count_established_netlink_as(ports, how).unwrap()));
            }
        }
        if readings.iter().all(|(way, counts)| check(way, counts)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no exact reading in ten tries; the last: {readings:?}");
}

/// Whether `[::1]` works here, and whether a listener on `[::]` also takes IPv4 (v4-mapped).
fn ipv6() -> (bool, bool) {
    let loopback = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
    let dual = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only")
        .is_ok_and(|text| text.trim() == "0");
    (loopback, loopback && dual)
}

/// A listener on a port no other socket uses, in any state, on any address.
///
/// Counts are by local port whatever the address, so another program's socket with the same
/// port number on another address would be counted too, and `bind` to port 0 only avoids
/// ports whose sockets clash with its own address. A port with no socket at all when bound
/// is also one that `connect` will not pick for its clients while the listener holds it.
fn fresh_listener(ip: IpAddr) -> TcpListener {
    for _ in 0..100 {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        // The listener's own LISTEN line is the one line allowed.
        if sockets_on(port(&listener)) == 1 {
            return listener;
        }
    }
    panic!("no port without other sockets found in 100 tries");
}

/// Sockets in any state with local port `port`, from the `/proc` tables.
fn sockets_on(port: u16) -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .map(|text| {
            text.lines()
                .skip(1)
                .filter(|line| {
                    line.split_ascii_whitespace()
                        .nth(1)
                        .and_then(|local| local.rsplit_once(':'))
                        .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok())
                        == Some(port)
                })
                .count()
        })
        .sum()
}

/// A listener and the addresses that reach it: IPv4 and IPv6 when it is dual-stack.
fn listener() -> (TcpListener, Vec<SocketAddr>) {
    let (_, dual) = ipv6();
    let listener = match dual {
        true => fresh_listener(Ipv6Addr::UNSPECIFIED.into()),
        false => fresh_listener(Ipv4Addr::LOCALHOST.into()),
    };
    let port = listener.local_addr().unwrap().port();
    let mut addresses = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))];
    if dual {
        addresses.push(SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
    }
    (listener, addresses)
}

/// Opens `n` connections to `listener` through `to` and returns both ends of each.
fn connect(listener: &TcpListener, to: SocketAddr, n: usize) -> Vec<(TcpStream, TcpStream)> {
    (0..n)
        .map(|_| {
            let client = TcpStream::connect(to).unwrap();
            let (server, _) = listener.accept().unwrap();
            (client, server)
        })
        .collect()
}

fn port(listener: &TcpListener) -> u16 {
    listener.local_addr().unwrap().port()
}

#[test]
fn ipv4_ipv6_and_v4_mapped_are_each_counted_once() {
    let (loopback6, dual) = ipv6();
    let v4 = fresh_listener(Ipv4Addr::LOCALHOST.into());
    let mut held = connect(&v4, v4.local_addr().unwrap(), 3);
    let idle = fresh_listener(Ipv4Addr::LOCALHOST.into());
    let mut ports = vec![port(&v4), port(&idle)];
    let mut expected = vec![3, 0];
    let v6 = loopback6.then(|| fresh_listener(Ipv6Addr::LOCALHOST.into()));
    if let Some(v6) = &v6 {
        held.extend(connect(v6, v6.local_addr().unwrap(), 4));
        ports.push(port(v6));
        expected.push(4);
    }
    let any = dual.then(|| fresh_listener(Ipv6Addr::UNSPECIFIED.into()));
    if let Some(any) = &any {
        // IPv4 clients of an IPv6 listener: v4-mapped sockets, in the IPv6 tables.
        let p = port(any);
        held.extend(connect(any, (Ipv4Addr::LOCALHOST, p).into(), 2));
        held.extend(connect(any, (Ipv6Addr::LOCALHOST, p).into(), 5));
        ports.push(p);
        expected.push(7);
    } else {
        eprintln!("note: no dual-stack listener here (IPv6 or bindv6only); v4-mapped skipped");
    }
    // The same port twice counts for both; the clients' own ends never count.
    ports.push(port(&v4));
    expected.push(3);
    assert_counts(&ports, &expected);

    // A connection the client closed leaves the server end in CLOSE_WAIT: not established.
    let (client, server) = held.remove(0);
    client.shutdown(Shutdown::Both).unwrap();
    drop(client);
    let mut server = server;
    // Reading the FIN makes sure the server end has left ESTABLISHED before counting.
    std::io::Read::read(&mut server, &mut [0; 1]).unwrap();
    expected[0] -= 1;
    *expected.last_mut().unwrap() -= 1;
    assert_counts(&ports, &expected);
}

#[test]
fn thousands_of_connections_spread_over_threads_are_counted_exactly() {
    // 3,400 connections, 6,800 descriptors: within the 20,000 open files allowed per process.
    const WATCHED: usize = 2400;
    const OTHER: usize = 1000;
    let (watched, watched_at) = listener();
    let (other, other_at) = listener();
    let held: Vec<Vec<(TcpStream, TcpStream)>> = std::thread::scope(|scope| {
        let mut threads = Vec::new();
        for (listener, addresses, total, threads_for) in [
            (&watched, &watched_at, WATCHED, 3),
            (&other, &other_at, OTHER, 2),
        ] {
            for thread in 0..threads_for {
                // Alternate the families when the listener takes both.
                let to = addresses[thread % addresses.len()];
                let n = total / threads_for;
                threads.push(scope.spawn(move || connect(listener, to, n)));
            }
        }
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(held.iter().map(Vec::len).sum::<usize>(), WATCHED + OTHER);
    let unused = fresh_listener(Ipv4Addr::LOCALHOST.into());
    assert_counts(
        &[port(&watched), port(&other), port(&unused)],
        &[WATCHED as u64, OTHER as u64, 0],
    );
}

#[test]
fn more_ports_than_one_request_holds() {
    let (a, a_at) = listener();
    let (b, b_at) = listener();
    let _held = (
        connect(&a, a_at[0], 6),
        connect(&b, b_at[b_at.len() - 1], 4),
    );
    let expected = |p: u16| if p == port(&a) { 6 } else { 4 };
    let (lo, hi) = (port(&a).min(port(&b)), port(&a).max(port(&b)));
    // Sorted, these 1,600-odd ports put `lo` last in the first netlink request (1,024 ports)
    // and `hi` first in the second; `lo` is also watched twice.
    let mut ports: Vec<u16> = (1..=1023).collect();
    ports.extend([lo, hi, lo]);
    ports.extend((hi + 1..=u16::MAX).take(600));
    let mine = |counts: &[u64]| (counts[1023], counts[1024], counts[1025]);
    let want = (expected(lo), expected(hi), expected(lo));
    // Other programs' sockets may be on the other ports: every way must agree with /proc.
    let proc = std::cell::RefCell::new(Vec::new());
    settle(&ports, |way, counts| {
        if way == "/proc" {
            *proc.borrow_mut() = counts.to_vec();
        }
        mine(counts) == want && counts == &proc.borrow()[..]
    });
}

#[test]
fn no_ports_no_counts() {
    assert_counts(&[], &[]);
}
