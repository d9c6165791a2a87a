//! Linux's sock_diag netlink interface (`linux/sock_diag.h`, `linux/inet_diag.h`): dump
//! requests for TCP sockets in ESTABLISHED whose local port is watched, answered with one
//! `inet_diag_msg` per matching socket. Building and parsing the messages is plain byte work,
//! kept apart from the three syscalls so that it is tested without a kernel.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::Netlink;

// linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x01;
/// NLM_F_ROOT | NLM_F_MATCH: every entry that matches, not just one.
const NLM_F_DUMP: u16 = 0x300;
// linux/sock_diag.h and linux/inet_diag.h
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const TCPDIAG_GETSOCK: u16 = 18;
// linux/inet_diag.h and linux/tcp_states.h
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_COND: u8 = 7;
const TCP_ESTABLISHED: u8 = 1;
const IPPROTO_TCP: u8 = 6;
/// `struct inet_diag_req_v2`: family, protocol, extensions, pad, the state mask, then a
/// 48-byte `inet_diag_sockid`.
const REQ_V2_LEN: usize = 56;
/// `struct inet_diag_req`: family, source and destination prefix lengths, extensions, the
/// 48-byte sockid, the state mask, then a table mask the kernel ignores.
const REQ_LEN: usize = 60;
/// `struct inet_diag_msg` starts with family, state, timer, retrans, then the sockid,
/// whose first field is the local port in network byte order.
const MSG_STATE: usize = 1;
const MSG_SPORT: usize = 4;
/// A port condition: `inet_diag_bc_op` (4 bytes) and `inet_diag_hostcond` (8 bytes).
const COND_LEN: usize = 12;
/// A jump: a bare `inet_diag_bc_op`.
const JMP_LEN: usize = 4;
/// Ports per request, so that the bytecode (16 bytes a port) stays within the u16 jump
/// offsets and attribute length: 1024 ports make 16 KiB.
pub const PORTS_PER_REQUEST: usize = 1024;
/// The kernel fills a dump datagram up to 32 KiB at most (`netlink_dump` caps its
/// buffer there), so one always fits; `MSG_TRUNC` would reveal it if not.
const RECV_LEN: usize = 32 * 1024;

/// One dump request, for both families or for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dump {
    BothFamilies,
    Family(u8),
}

impl Dump {
    /// The message type of the request, which the kernel also gives its socket records.
    fn message_type(self) -> u16 {
        match self {
            Dump::BothFamilies => TCPDIAG_GETSOCK,
            Dump::Family(_) => SOCK_DIAG_BY_FAMILY,
        }
    }
}

/// Established sockets on each of `ports` (sorted, no duplicates), IPv4 and IPv6.
pub fn count(ports: &[u16], how: Netlink) -> io::Result<Vec<u64>> {
    let mut counts = vec![0; ports.len()];
    if ports.is_empty() {
        return Ok(counts);
    }
    // An IPv6 socket carrying IPv4 (v4-mapped) is an AF_INET6 socket, so each socket is in
    // exactly one per-family dump.
    let dumps = match how {
        Netlink::OneDump => vec![Dump::BothFamilies],
        Netlink::PerFamily => vec![
            Dump::Family(libc::AF_INET as u8),
            Dump::Family(libc::AF_INET6 as u8),
        ],
    };
    let socket = open()?;
    let mut buffer = vec![0; RECV_LEN];
    let mut seq = 0;
    for dump in dumps {
        for chunk in ports.chunks(PORTS_PER_REQUEST) {
            seq += 1;
            send(&socket, &request(dump, chunk, seq))?;
            loop {
                let datagram = recv(&socket, &mut buffer)?;
                // The kernel already filtered by state and port; checking again here
                // keeps the count exact whatever a kernel makes of the filter.
                let progress = parse(datagram, seq, dump, &mut |state, port| {
                    if state == TCP_ESTABLISHED
                        && let Ok(i) = ports.binary_search(&port)
                        && let Some(count) = counts.get_mut(i)
                    {
                        *count += 1;
                    }
                })?;
                if progress == Progress::Done {
                    break;
                }
            }
        }
    }
    Ok(counts)
}

/// The request `dump` for TCP sockets in ESTABLISHED whose local port is one of `ports`
/// (at least one).
pub fn request(dump: Dump, ports: &[u16], seq: u32) -> Vec<u8> {
    let code = bytecode(ports);
    let attr_len = 4 + code.len();
    let body_len = match dump {
        Dump::BothFamilies => REQ_LEN,
        Dump::Family(_) => REQ_V2_LEN,
    };
    let len = NLMSG_HDRLEN + body_len + attr_len;
    let mut message = Vec::with_capacity(len);
    // struct nlmsghdr; port id 0: the kernel knows who asks.
    message.extend_from_slice(&(len as u32).to_ne_bytes());
    message.extend_from_slice(&dump.message_type().to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    message.extend_from_slice(&seq.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    // No extensions (the base record has the port), only ESTABLISHED, any socket id (the
    // bytecode does the matching).
    let states = (1u32 << TCP_ESTABLISHED).to_ne_bytes();
    match dump {
        // struct inet_diag_req: its family is not used by a dump, which takes both.
        Dump::BothFamilies => {
            message.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
            message.extend_from_slice(&[0; 48]);
            message.extend_from_slice(&states);
            message.extend_from_slice(&[0; 4]);
        }
        // struct inet_diag_req_v2
        Dump::Family(family) => {
            message.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]);
            message.extend_from_slice(&states);
            message.extend_from_slice(&[0; 48]);
        }
    }
    // struct rtattr, then the bytecode.
    message.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    message.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    message.extend_from_slice(&code);
    message
}

/// Bytecode accepting a socket whose local port is any of `ports` (at least one).
///
/// The kernel runs it over each socket: an op moves ahead `yes` bytes when it holds and
/// `no` bytes when not; landing exactly on the end accepts, landing 4 bytes past it
/// rejects. Each port is a source condition with family AF_UNSPEC and prefix 0 (any
/// address, IPv4, IPv6 or v4-mapped: only the port counts) followed, but for the last, by
/// a jump to the end; a jump moves by its u16 `no`, so the distance is not held to the u8
/// `yes`:
///
/// `cond(p1) [yes: JMP, no: cond(p2)]  JMP [end]  cond(p2) ...  cond(pn) [yes: end, no: end+4]`
pub fn bytecode(ports: &[u16]) -> Vec<u8> {
    let len = ports.len() * (COND_LEN + JMP_LEN) - JMP_LEN;
    let mut code = Vec::with_capacity(len);
    for (i, port) in ports.iter().enumerate() {
        let last = i + 1 == ports.len();
        let no = match last {
            true => COND_LEN + 4,
            false => COND_LEN + JMP_LEN,
        };
        op(&mut code, INET_DIAG_BC_S_COND, COND_LEN, no);
        // family AF_UNSPEC, prefix_len 0, padding, then the port as an int in host order
        // (the kernel compares it with the socket's host-order port number).
        code.extend_from_slice(&[0, 0, 0, 0]);
        code.extend_from_slice(&i32::from(*port).to_ne_bytes());
        if !last {
            let to_end = len - code.len();
            op(&mut code, INET_DIAG_BC_JMP, JMP_LEN, to_end);
        }
    }
    code
}

/// `struct inet_diag_bc_op`: code, yes (u8), no (u16).
fn op(code: &mut Vec<u8>, kind: u8, yes: usize, no: usize) {
    code.extend_from_slice(&[kind, yes as u8]);
    code.extend_from_slice(&(no as u16).to_ne_bytes());
}

/// How far a dump has got.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    More,
    Done,
}

/// Reads one datagram of the answer to request `seq` (a `dump`), calling `found(state,
/// local_port)` for each socket in it.
pub fn parse(
    datagram: &[u8],
    seq: u32,
    dump: Dump,
    found: &mut dyn FnMut(u8, u16),
) -> io::Result<Progress> {
    let malformed = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut rest = datagram;
    while !rest.is_empty() {
        let (Some(len), Some(kind), Some(message_seq)) =
            (ne_u32(rest, 0), ne_u16(rest, 4), ne_u32(rest, 8))
        else {
            return Err(malformed("a netlink header cut short"));
        };
        let len = len as usize;
        let Some(payload) = rest.get(NLMSG_HDRLEN..len) else {
            return Err(malformed("a netlink message length out of bounds"));
        };
        if message_seq == seq {
            match kind {
                // DONE carries the dump's own result: an error means it stopped short.
                NLMSG_DONE => {
                    return match ne_i32(payload, 0) {
                        Some(errno) if errno < 0 => Err(io::Error::from_raw_os_error(-errno)),
                        _ => Ok(Progress::Done),
                    };
                }
                NLMSG_ERROR => match ne_i32(payload, 0) {
                    Some(0) => {}
                    Some(errno) => return Err(io::Error::from_raw_os_error(-errno)),
                    None => return Err(malformed("a netlink error cut short")),
                },
                kind if kind == dump.message_type() => {
                    let (Some(state), Some(port)) =
                        (payload.get(MSG_STATE), be_u16(payload, MSG_SPORT))
                    else {
                        return Err(malformed("an inet_diag_msg cut short"));
                    };
                    found(*state, port);
                }
                _ => {}
            }
        }
        // Messages are padded to 4 bytes; the last one's padding may be missing.
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    Ok(Progress::More)
}

fn ne_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn ne_i32(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn ne_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn open() -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall on constant arguments; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one request to the kernel (an unconnected netlink socket sends to port id 0,
/// the kernel).
fn send(socket: &OwnedFd, message: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: `message` is readable for `message.len()` bytes for the whole call.
        let sent = unsafe {
            libc::send(
                socket.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
            )
        };
        if sent >= 0 {
            // A netlink datagram goes whole or not at all.
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Receives one datagram into `buffer`.
fn recv<'a>(socket: &OwnedFd, buffer: &'a mut [u8]) -> io::Result<&'a [u8]> {
    loop {
        // SAFETY: `buffer` is writable for `buffer.len()` bytes for the whole call.
        // MSG_TRUNC makes the call return the datagram's full length, so one larger than
        // the buffer is an error here rather than silently cut (and a short count).
        let got = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_TRUNC,
            )
        };
        if got >= 0 {
            return buffer
                .get(..got as usize)
                .ok_or_else(|| io::Error::other("a netlink datagram larger than the buffer"));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's `inet_diag_bc_run` for the two ops used, on a socket with local port
    /// `sport`; it also checks what `inet_diag_bc_audit` checks of the offsets.
    fn run(code: &[u8], sport: u16) -> bool {
        let mut at = 0;
        let mut left = code.len() as isize;
        while left > 0 {
            let (kind, yes, no) = (
                code[at],
                code[at + 1] as usize,
                ne_u16(code, at + 2).unwrap() as usize,
            );
            let len = if kind == INET_DIAG_BC_S_COND {
                COND_LEN
            } else {
                JMP_LEN
            };
            assert!(yes >= len && yes % 4 == 0 && yes as isize <= left + 4);
            assert!(no >= len && no % 4 == 0 && no as isize <= left + 4);
            let holds = match kind {
                INET_DIAG_BC_S_COND => {
                    assert_eq!(&code[at + 4..at + 8], &[0, 0, 0, 0]);
                    ne_i32(code, at + 8).unwrap() == i32::from(sport)
                }
                INET_DIAG_BC_JMP => false,
                other => panic!("unexpected op {other}"),
            };
            let step = if holds { yes } else { no };
            at += step;
            left -= step as isize;
        }
        left == 0
    }

    #[test]
    fn bytecode_accepts_exactly_the_watched_ports() {
        for ports in [
            vec![3389],
            vec![80, 443, 3389],
            (1..=300).map(|p| p * 7).collect(),
        ] {
            let code = bytecode(&ports);
            assert_eq!(code.len(), ports.len() * 16 - 4);
            for sport in 0..=2200 {
                assert_eq!(run(&code, sport), ports.contains(&sport), "port {sport}");
            }
        }
    }

    #[test]
    fn one_port_is_one_condition() {
        let mut expected = vec![INET_DIAG_BC_S_COND, 12];
        expected.extend_from_slice(&16u16.to_ne_bytes());
        expected.extend_from_slice(&[0, 0, 0, 0]);
        expected.extend_from_slice(&3389i32.to_ne_bytes());
        assert_eq!(bytecode(&[3389]), expected);
    }

    #[test]
    fn the_largest_request_keeps_its_offsets_in_range() {
        let ports: Vec<u16> = (1..=PORTS_PER_REQUEST as u16).collect();
        for (dump, body) in [
            (Dump::BothFamilies, REQ_LEN),
            (Dump::Family(10), REQ_V2_LEN),
        ] {
            let message = request(dump, &ports, 1);
            let attr_len = ne_u16(&message, NLMSG_HDRLEN + body).unwrap() as usize;
            assert_eq!(attr_len, 4 + PORTS_PER_REQUEST * 16 - 4);
            let code = &message[NLMSG_HDRLEN + body + 4..];
            assert!(run(code, 1) && run(code, PORTS_PER_REQUEST as u16));
            assert!(!run(code, PORTS_PER_REQUEST as u16 + 1));
        }
    }

    fn header_is(message: &[u8], kind: u16, seq: u32) {
        assert_eq!(ne_u32(message, 0), Some(message.len() as u32));
        assert_eq!(ne_u16(message, 4), Some(kind));
        assert_eq!(ne_u16(message, 6), Some(0x301));
        assert_eq!(ne_u32(message, 8), Some(seq));
        assert_eq!(ne_u32(message, 12), Some(0));
    }

    #[test]
    fn per_family_request_layout() {
        let message = request(Dump::Family(libc::AF_INET as u8), &[80, 443], 7);
        assert_eq!(message.len(), 16 + 56 + 4 + 28);
        header_is(&message, SOCK_DIAG_BY_FAMILY, 7);
        assert_eq!(&message[16..20], &[libc::AF_INET as u8, 6, 0, 0]);
        assert_eq!(ne_u32(&message, 20), Some(1 << 1));
        assert!(message[24..72].iter().all(|b| *b == 0));
        assert_eq!(ne_u16(&message, 72), Some(32));
        assert_eq!(ne_u16(&message, 74), Some(INET_DIAG_REQ_BYTECODE));
        assert_eq!(&message[76..], &bytecode(&[80, 443])[..]);
    }

    #[test]
    fn both_families_request_layout() {
        let message = request(Dump::BothFamilies, &[80, 443], 8);
        assert_eq!(message.len(), 16 + 60 + 4 + 28);
        header_is(&message, TCPDIAG_GETSOCK, 8);
        assert_eq!(&message[16..20], &[libc::AF_INET as u8, 0, 0, 0]);
        assert!(message[20..68].iter().all(|b| *b == 0));
        assert_eq!(ne_u32(&message, 68), Some(1 << 1));
        assert_eq!(ne_u32(&message, 72), Some(0));
        assert_eq!(ne_u16(&message, 76), Some(32));
        assert_eq!(ne_u16(&message, 78), Some(INET_DIAG_REQ_BYTECODE));
        assert_eq!(&message[80..], &bytecode(&[80, 443])[..]);
    }

    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&2u16.to_ne_bytes());
        bytes.extend_from_slice(&seq.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(payload);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes
    }

    fn diag_msg(state: u8, sport: u16) -> Vec<u8> {
        let mut payload = vec![libc::AF_INET6 as u8, state, 0, 0];
        payload.extend_from_slice(&sport.to_be_bytes());
        payload.resize(72, 0xAA);
        payload
    }

    const V2: Dump = Dump::Family(10);

    fn collect(datagram: &[u8], seq: u32) -> (io::Result<Progress>, Vec<(u8, u16)>) {
        collect_for(V2, datagram, seq)
    }

    fn collect_for(
        dump: Dump,
        datagram: &[u8],
        seq: u32,
    ) -> (io::Result<Progress>, Vec<(u8, u16)>) {
        let mut found = Vec::new();
        let progress = parse(datagram, seq, dump, &mut |state, port| {
            found.push((state, port))
        });
        (progress, found)
    }

    #[test]
    fn records_carry_the_request_type() {
        let mut datagram = message(TCPDIAG_GETSOCK, 4, &diag_msg(1, 80));
        datagram.extend(message(SOCK_DIAG_BY_FAMILY, 4, &diag_msg(1, 81)));
        datagram.extend(message(NLMSG_DONE, 4, &0i32.to_ne_bytes()));
        let (progress, found) = collect_for(Dump::BothFamilies, &datagram, 4);
        assert_eq!(progress.unwrap(), Progress::Done);
        assert_eq!(found, vec![(1, 80)]);
        let (_, found) = collect_for(V2, &datagram, 4);
        assert_eq!(found, vec![(1, 81)]);
    }

    #[test]
    fn parses_sockets_then_done() {
        let mut datagram = message(SOCK_DIAG_BY_FAMILY, 3, &diag_msg(1, 3389));
        datagram.extend(message(SOCK_DIAG_BY_FAMILY, 3, &diag_msg(1, 0x1234)));
        let (progress, found) = collect(&datagram, 3);
        assert_eq!(progress.unwrap(), Progress::More);
        assert_eq!(found, vec![(1, 3389), (1, 0x1234)]);

        let mut datagram = message(SOCK_DIAG_BY_FAMILY, 3, &diag_msg(1, 80));
        datagram.extend(message(NLMSG_DONE, 3, &0i32.to_ne_bytes()));
        datagram.extend(message(SOCK_DIAG_BY_FAMILY, 3, &diag_msg(1, 81)));
        let (progress, found) = collect(&datagram, 3);
        assert_eq!(progress.unwrap(), Progress::Done);
        assert_eq!(found, vec![(1, 80)]);
    }

    #[test]
    fn other_requests_and_unknown_types_are_skipped() {
        let mut datagram = message(SOCK_DIAG_BY_FAMILY, 2, &diag_msg(1, 80));
        datagram.extend(message(99, 3, &[1, 2, 3]));
        datagram.extend(message(NLMSG_ERROR, 3, &0i32.to_ne_bytes()));
        let (progress, found) = collect(&datagram, 3);
        assert_eq!(progress.unwrap(), Progress::More);
        assert!(found.is_empty());
    }

    #[test]
    fn errors_carry_the_errno() {
        let datagram = message(NLMSG_ERROR, 1, &(-libc::ENOENT).to_ne_bytes());
        let err = collect(&datagram, 1).0.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        // A dump that stopped short says so in its DONE.
        let datagram = message(NLMSG_DONE, 1, &(-libc::ENOBUFS).to_ne_bytes());
        let err = collect(&datagram, 1).0.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOBUFS));
    }

    #[test]
    fn cut_short_messages_are_errors_not_counts() {
        let whole = message(SOCK_DIAG_BY_FAMILY, 1, &diag_msg(1, 80));
        for cut in [3, 15, 20, whole.len() - 1] {
            let (progress, found) = collect(&whole[..cut], 1);
            assert!(progress.is_err(), "cut at {cut}");
            assert!(found.is_empty());
        }
        let tiny = message(SOCK_DIAG_BY_FAMILY, 1, &[0, 1, 0]);
        assert!(collect(&tiny, 1).0.is_err());
        let mut zero = message(SOCK_DIAG_BY_FAMILY, 1, &diag_msg(1, 80));
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(collect(&zero, 1).0.is_err());
    }
}
