//! Unit tests of `metrics::tcp`: counting established connections from `/proc/net/tcp` text.

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
