//! TCP load: ESTABLISHED connections whose local port is the watched one, IPv4 and IPv6
//! (v4-mapped included).
//!
//! Linux asks the kernel over sock_diag netlink for only the matching sockets, filtered in
//! the kernel by state and local port (what `ss` does), so the cost follows the watched
//! connections rather than every socket on the host (but for one walk of the kernel's socket
//! hash table); where netlink is unavailable (a sandbox without it, a seccomp filter, a kernel
//! without `inet_diag`) it reads every line of `/proc/net/tcp` and `tcp6` instead. Windows: `GetTcpTable` and `GetTcp6Table`.

use super::MetricError;

mod monitor;

pub use monitor::Tcp;

fn error(message: impl Into<String>) -> MetricError {
    MetricError {
        monitor: crate::words::TCP.into(),
        message: message.into(),
    }
}

/// The kernel's code for ESTABLISHED in `/proc/net/tcp*`.
const PROC_ESTABLISHED: &str = "01";

/// Adds to `counts[i]` the ESTABLISHED sockets in a `/proc/net/tcp*` table whose local port is
/// `ports[i]`. Lines that do not parse (the header) are skipped.
pub fn count_in_proc_table(text: &str, ports: &[u16], counts: &mut [u64]) {
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(_slot), Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if state != PROC_ESTABLISHED {
            continue;
        }
        let Some(port) = local
            .rsplit_once(':')
            .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok())
        else {
            continue;
        };
        for (watched, count) in ports.iter().zip(counts.iter_mut()) {
            if *watched == port {
                *count += 1;
            }
        }
    }
}

/// Established connections on each of `ports`, in the same order: from sock_diag netlink,
/// or from `/proc/net/tcp*` when netlink fails.
#[cfg(target_os = "linux")]
pub fn count_established(ports: &[u16]) -> Result<Vec<u64>, MetricError> {
    count_established_netlink(ports).or_else(|netlink| {
        count_established_proc(ports).map_err(|proc| {
            error(format!(
                "{}; and the fallback failed: {}",
                netlink.message, proc.message
            ))
        })
    })
}

/// How sock_diag netlink is asked for the sockets.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Netlink {
    /// One dump for both families, with inet_diag's original request (`TCPDIAG_GETSOCK`,
    /// `struct inet_diag_req`), which the kernel still serves: it walks its hash of
    /// connected sockets once. That walk visits every bucket, empty or not (262,144 of them on
    /// a 24 GiB host, more with more memory), about 3 ms on the benchmark machine.
    OneDump,
    /// A `SOCK_DIAG_BY_FAMILY` dump (`struct inet_diag_req_v2`) per family, as `ss` does: the
    /// request that names a family, so two walks.
    PerFamily,
}

/// `count_established` from sock_diag netlink only: `Netlink::OneDump`, or `PerFamily` if
/// the kernel refuses that.
#[cfg(target_os = "linux")]
pub fn count_established_netlink(ports: &[u16]) -> Result<Vec<u64>, MetricError> {
    count_established_netlink_as(ports, Netlink::OneDump)
        .or_else(|_| count_established_netlink_as(ports, Netlink::PerFamily))
}

/// `count_established` from sock_diag netlink asked `how`, filtered in the kernel (one dump
/// per `sock_diag::PORTS_PER_REQUEST` watched ports); public so that both ways can be held to
/// the same sockets.
#[cfg(target_os = "linux")]
pub fn count_established_netlink_as(ports: &[u16], how: Netlink) -> Result<Vec<u64>, MetricError> {
    let mut distinct = ports.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let counts = sock_diag::count(&distinct, how)
        .map_err(|err| error(format!("sock_diag netlink: {err}")))?;
    // The same port watched twice gets the same count twice.
    Ok(ports
        .iter()
        .map(|port| {
            distinct
                .binary_search(port)
                .ok()
                .and_then(|i| counts.get(i).copied())
                .unwrap_or(0)
        })
        .collect())
}

/// `count_established` from `/proc/net/tcp` and `tcp6` only: the fallback, public so that it
/// can be checked against netlink on the same sockets.
#[cfg(target_os = "linux")]
pub fn count_established_proc(ports: &[u16]) -> Result<Vec<u64>, MetricError> {
    let mut counts = vec![0; ports.len()];
    for (path, required) in [("/proc/net/tcp", true), ("/proc/net/tcp6", false)] {
        match std::fs::read_to_string(path) {
            Ok(text) => count_in_proc_table(&text, ports, &mut counts),
            // A kernel without IPv6 has no tcp6 table, and so no IPv6 connections.
            Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(error(format!("{path}: {}", crate::ioerr::io_reason(&err))));
            }
        }
    }
    Ok(counts)
}

#[cfg(target_os = "linux")]
mod sock_diag;

/// Established connections on each of `ports`, in the same order.
///
/// The basic tables (`GetTcpTable`, `GetTcp6Table`, unsorted) are read, not
/// `GetExtendedTcpTable`'s owner-PID ones: the owning process is not needed here, and finding
/// it costs the system a lookup per socket. Under Wine 8 that lookup scans every process's
/// descriptors once per socket: with 85,000 sockets (mostly TIME_WAIT) on the host, one probe
/// took 4.5 minutes with the owner-PID tables and 3.7 s with these.
#[cfg(windows)]
pub fn count_established(ports: &[u16]) -> Result<Vec<u64>, MetricError> {
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GetTcp6Table, GetTcpTable, MIB_TCP_STATE, MIB_TCP_STATE_ESTAB, MIB_TCP6ROW, MIB_TCPROW_LH,
    };

    let mut counts = vec![0; ports.len()];
    let mut tally = |state: MIB_TCP_STATE, port_field: u32| {
        if state == MIB_TCP_STATE_ESTAB {
            // The port sits in the low 16 bits, in network byte order.
            let port = u16::from_be(port_field as u16);
            for (watched, count) in ports.iter().zip(counts.iter_mut()) {
                if *watched == port {
                    *count += 1;
                }
            }
        }
    };
    // 0: unsorted. `table` passes a buffer of at least `*size` writable bytes, or a null
    // pointer with `*size` 0, which is what both functions expect.
    let v4 = table("GetTcpTable", &mut |buffer, size| {
        // SAFETY: see above.
        unsafe { GetTcpTable(buffer.cast(), size, 0) }
    })?;
    for row in rows::<MIB_TCPROW_LH>(&v4) {
        // SAFETY: both members of this union are the same 4 bytes, the state code.
        tally(unsafe { row.Anonymous.State }, row.dwLocalPort);
    }
    let v6 = table("GetTcp6Table", &mut |buffer, size| {
        // SAFETY: see above.
        unsafe { GetTcp6Table(buffer.cast(), size, 0) }
    })?;
    for row in rows::<MIB_TCP6ROW>(&v6) {
        tally(row.State, row.dwLocalPort);
    }
    Ok(counts)
}

/// One raw table, as `u64`s so its rows are aligned; `call(buffer, size)` is the API call.
/// A system without IPv6 has no IPv6 table, and so no IPv6 connections: an empty table.
#[cfg(windows)]
fn table(
    name: &str,
    call: &mut dyn FnMut(*mut u8, &mut u32) -> u32,
) -> Result<Vec<u64>, MetricError> {
    use windows_sys::Win32::Foundation::{
        ERROR_INSUFFICIENT_BUFFER, ERROR_NOT_SUPPORTED, NO_ERROR,
    };
    let mut buffer: Vec<u64> = Vec::new();
    let mut size: u32 = 0;
    // The table can grow between the sizing call and the real one, so retry a few times.
    for _ in 0..8 {
        let pointer = match buffer.is_empty() {
            true => std::ptr::null_mut(),
            false => buffer.as_mut_ptr().cast(),
        };
        match call(pointer, &mut size) {
            NO_ERROR => return Ok(buffer),
            ERROR_INSUFFICIENT_BUFFER => buffer = vec![0; (size as usize).div_ceil(8) + 1],
            ERROR_NOT_SUPPORTED => return Ok(Vec::new()),
            rc => {
                return Err(error(format!(
                    "{name} failed: {}",
                    std::io::Error::from_raw_os_error(rc as i32)
                )));
            }
        }
    }
    Err(error(format!("{name}: the table kept growing")))
}

/// The rows of a `MIB_TCPTABLE` or `MIB_TCP6TABLE`: a `u32` count, then the rows (aligned as
/// `u32`).
#[cfg(windows)]
fn rows<Row: Copy>(table: &[u64]) -> Vec<Row> {
    if table.is_empty() {
        return Vec::new();
    }
    let base = table.as_ptr().cast::<u8>();
    let bytes = table.len() * 8;
    // SAFETY: the buffer is 8-aligned and at least 4 bytes long.
    let count = unsafe { base.cast::<u32>().read() } as usize;
    let offset = std::mem::align_of::<Row>().max(4);
    let room = bytes.saturating_sub(offset) / std::mem::size_of::<Row>();
    (0..count.min(room))
        // SAFETY: each row lies inside the buffer, at an offset aligned for `Row`.
        .map(|i| unsafe {
            base.add(offset + i * std::mem::size_of::<Row>())
                .cast::<Row>()
                .read()
        })
        .collect()
}

#[cfg(not(any(target_os = "linux", windows)))]
pub fn count_established(_ports: &[u16]) -> Result<Vec<u64>, MetricError> {
    Err(error(
        "counting TCP connections is not supported on this OS",
    ))
}

#[cfg(test)]
mod tests;
