//! TCP load: ESTABLISHED connections whose local port is the watched one, IPv4 and IPv6
//! (Linux: the kernel's `/proc/net/tcp` and `tcp6` tables; Windows: `GetExtendedTcpTable`).

use super::MetricError;

fn error(message: impl Into<String>) -> MetricError {
    MetricError {
        monitor: "tcp",
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

/// Established connections on each of `ports`, in the same order.
#[cfg(target_os = "linux")]
pub fn count_established(ports: &[u16]) -> Result<Vec<u64>, MetricError> {
    let mut counts = vec![0; ports.len()];
    for (path, required) in [("/proc/net/tcp", true), ("/proc/net/tcp6", false)] {
        match std::fs::read_to_string(path) {
            Ok(text) => count_in_proc_table(&text, ports, &mut counts),
            // A kernel without IPv6 has no tcp6 table, and so no IPv6 connections.
            Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(error(format!("{path}: {}", crate::config::io_reason(&err))));
            }
        }
    }
    Ok(counts)
}

/// Established connections on each of `ports`, in the same order.
#[cfg(windows)]
pub fn count_established(ports: &[u16]) -> Result<Vec<u64>, MetricError> {
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        MIB_TCP_STATE_ESTAB, MIB_TCP6ROW_OWNER_PID, MIB_TCPROW_OWNER_PID,
    };
    use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};

    let mut counts = vec![0; ports.len()];
    let mut tally = |state: u32, port_field: u32| {
        if state == MIB_TCP_STATE_ESTAB as u32 {
            // The port sits in the low 16 bits, in network byte order.
            let port = u16::from_be(port_field as u16);
            for (watched, count) in ports.iter().zip(counts.iter_mut()) {
                if *watched == port {
                    *count += 1;
                }
            }
        }
    };
    let v4 = extended_table(u32::from(AF_INET))?;
    for row in rows::<MIB_TCPROW_OWNER_PID>(&v4) {
        tally(row.dwState, row.dwLocalPort);
    }
    let v6 = extended_table(u32::from(AF_INET6))?;
    for row in rows::<MIB_TCP6ROW_OWNER_PID>(&v6) {
        tally(row.dwState, row.dwLocalPort);
    }
    Ok(counts)
}

/// The raw table for one address family, as `u64`s so its rows are aligned.
#[cfg(windows)]
fn extended_table(family: u32) -> Result<Vec<u64>, MetricError> {
    use windows_sys::Win32::Foundation::{ERROR_INSUFFICIENT_BUFFER, NO_ERROR};
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GetExtendedTcpTable, TCP_TABLE_OWNER_PID_ALL,
    };
    let mut buffer: Vec<u64> = Vec::new();
    let mut size: u32 = 0;
    // The table can grow between the sizing call and the real one, so retry a few times.
    for _ in 0..8 {
        // SAFETY: `buffer` holds at least `size` writable bytes (or is empty with size 0).
        let rc = unsafe {
            GetExtendedTcpTable(
                buffer.as_mut_ptr().cast(),
                &mut size,
                0,
                family,
                TCP_TABLE_OWNER_PID_ALL,
                0,
            )
        };
        match rc {
            NO_ERROR => return Ok(buffer),
            ERROR_INSUFFICIENT_BUFFER => buffer = vec![0; (size as usize).div_ceil(8) + 1],
            rc => {
                return Err(error(format!(
                    "GetExtendedTcpTable failed: {}",
                    std::io::Error::from_raw_os_error(rc as i32)
                )));
            }
        }
    }
    Err(error("GetExtendedTcpTable: the table kept growing"))
}

/// The rows of a `MIB_TCP*TABLE_OWNER_PID`: a `u32` count, then the rows (aligned as `u32`).
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
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0D05 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0D05 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:C350 0100007F:0D05 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:0D05 0100007F:C351 06 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:0D3D 0100007F:C352 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
";

    const TABLE6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0D05 00000000000000000000000001000000:D431 01 00000000:00000000 00:00000000 00000000     0        0 9 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn counts_only_established_on_the_local_port() {
        // 0x0D05 = 3333: one listener (0A), one established, one TIME_WAIT (06) do not all
        // count; the client side (local port 0xC350) does not count either.
        let mut counts = vec![0; 2];
        count_in_proc_table(TABLE, &[3333, 3389], &mut counts);
        assert_eq!(counts, vec![1, 1]);
        count_in_proc_table(TABLE6, &[3333, 3389], &mut counts);
        assert_eq!(counts, vec![2, 1]);
    }

    #[test]
    fn same_port_twice_counts_for_both() {
        let mut counts = vec![0; 2];
        count_in_proc_table(TABLE, &[3333, 3333], &mut counts);
        assert_eq!(counts, vec![1, 1]);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let mut counts = vec![0];
        count_in_proc_table(
            "\n x\n 1: nope 0 01\n 2: 0:ZZZZ 0 01\n",
            &[3333],
            &mut counts,
        );
        assert_eq!(counts, vec![0]);
    }
}
