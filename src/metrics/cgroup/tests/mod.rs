//! Unit tests of `metrics::cgroup`: placement, capacity and memory read from fixture trees of
//! v2 hierarchies here, of v1 ones in `v1`; the fixture trees, which `metrics::scope_tests`
//! uses too.

use super::*;

mod v1;

pub(crate) use v1::v1;

/// A fixture tree: a procfs and a root with the files given, removed when dropped.
pub(crate) struct Tree(pub(crate) PathBuf);

impl Tree {
    pub(crate) fn new(name: &str, files: &[(&str, &str)]) -> Tree {
        let dir = std::env::temp_dir().join(format!("lbf-cgroup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Tree(dir)
    }

    pub(crate) fn roots(&self) -> Roots {
        Roots {
            procfs: self.0.join("proc"),
            root: self.0.join("root"),
        }
    }

    fn cpu(&self) -> Result<CpuCapacity, String> {
        let placement = locate(self.roots())?;
        cpu(&placement, None)?.with_usage(&placement)
    }

    fn memory(&self) -> Result<MemoryUse, String> {
        memory(&locate(self.roots())?)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ONLINE: (&str, &str) = ("root/sys/devices/system/cpu/online", "0-7\n");

/// A systemd host on cgroup v2 (as Debian 12 mounts it), the probe in x.service.
const V2_MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

fn v2(name: &str, extra: &[(&str, &str)]) -> Tree {
    let mut files = vec![
        ONLINE,
        ("proc/self/cgroup", "0::/system.slice/x.service\n"),
        ("proc/self/mountinfo", V2_MOUNTINFO),
        (
            "root/sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        ),
        ("root/sys/fs/cgroup/cpu.stat", "usage_usec 99999999\n"),
        ("root/sys/fs/cgroup/system.slice/cpu.max", "max 100000\n"),
        (
            "root/sys/fs/cgroup/system.slice/x.service/cpu.stat",
            "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 0\n",
        ),
        (
            "root/sys/fs/cgroup/system.slice/x.service/memory.current",
            "734003200\n",
        ),
        (
            "root/sys/fs/cgroup/system.slice/x.service/memory.stat",
            "anon 500000000\nfile 234003200\nactive_anon 0\ninactive_anon 0\nactive_file 0\ninactive_file 209715200\n",
        ),
    ];
    files.extend_from_slice(extra);
    Tree::new(name, &files)
}

#[test]
fn v2_quota_of_the_service() {
    let tree = v2(
        "v2-quota",
        &[
            (
                "root/sys/fs/cgroup/system.slice/x.service/cpu.max",
                "50000 100000\n",
            ),
            (
                "root/sys/fs/cgroup/system.slice/x.service/memory.max",
                "max\n",
            ),
        ],
    );
    let cpu = tree.cpu().unwrap();
    assert_eq!(cpu.millis, 500);
    assert!(cpu.limited);
    assert_eq!(
        cpu.described().to_string(),
        "cgroup v2 /system.slice/x.service: 0.50 CPU quota"
    );
    assert_eq!(cpu.usage_us().unwrap(), 1_234_567);
    let memory = tree.memory().unwrap();
    assert_eq!(memory.limit, None);
    assert_eq!(memory.used().unwrap(), 734_003_200 - 209_715_200);
}

#[test]
fn v2_smallest_limit_up_the_tree_binds_and_is_measured_there() {
    let tree = v2(
        "v2-nested",
        &[
            ("root/sys/fs/cgroup/system.slice/cpu.max", "150000 100000\n"),
            (
                "root/sys/fs/cgroup/system.slice/cpu.stat",
                "usage_usec 42\n",
            ),
            (
                "root/sys/fs/cgroup/system.slice/x.service/cpu.max",
                "max 100000\n",
            ),
            ("root/sys/fs/cgroup/system.slice/memory.max", "2147483648\n"),
            (
                "root/sys/fs/cgroup/system.slice/memory.current",
                "1610612736\n",
            ),
            (
                "root/sys/fs/cgroup/system.slice/memory.stat",
                "inactive_file 0\n",
            ),
            (
                "root/sys/fs/cgroup/system.slice/x.service/memory.max",
                "4294967296\n",
            ),
        ],
    );
    let cpu = tree.cpu().unwrap();
    assert_eq!((cpu.millis, cpu.at.as_str()), (1500, "/system.slice"));
    assert_eq!(cpu.usage_us().unwrap(), 42);
    let memory = tree.memory().unwrap();
    assert_eq!(memory.limit, Some(2 << 30));
    assert_eq!(memory.at(), "/system.slice");
    assert_eq!(memory.used().unwrap(), 1_610_612_736);
    assert_eq!(
        memory.described(16 << 30).to_string(),
        "cgroup v2 /system.slice: 2.0 GiB limit"
    );
    // A limit at or above the host's memory is none.
    assert_eq!(
        memory.described(1 << 30).to_string(),
        "cgroup v2 /system.slice: no memory limit"
    );
}

#[test]
fn v2_cpuset_caps_the_capacity() {
    let tree = v2(
        "v2-cpuset",
        &[
            (
                "root/sys/fs/cgroup/system.slice/x.service/cpu.max",
                "300000 100000\n",
            ),
            (
                "root/sys/fs/cgroup/system.slice/x.service/cpuset.cpus.effective",
                "2-3\n",
            ),
        ],
    );
    let cpu = tree.cpu().unwrap();
    assert_eq!(cpu.millis, 2000);
    assert_eq!(
        cpu.described().to_string(),
        "cgroup v2 /system.slice/x.service: cpuset 2-3: 2 CPUs"
    );
    // Set on the slice, the cpuset applies there: its tasks all share the two CPUs.
    let tree = v2(
        "v2-cpuset-slice",
        &[
            ("root/sys/fs/cgroup/cpuset.cpus.effective", "0-7\n"),
            (
                "root/sys/fs/cgroup/system.slice/cpuset.cpus.effective",
                "2-3\n",
            ),
            (
                "root/sys/fs/cgroup/system.slice/cpu.stat",
                "usage_usec 42\n",
            ),
            (
                "root/sys/fs/cgroup/system.slice/x.service/cpuset.cpus.effective",
                "2-3\n",
            ),
        ],
    );
    let cpu = tree.cpu().unwrap();
    assert_eq!(
        cpu.described().to_string(),
        "cgroup v2 /system.slice: cpuset 2-3: 2 CPUs"
    );
    assert_eq!(cpu.usage_us().unwrap(), 42);
    // No quota, no cpuset: the online CPUs, and not limited.
    let tree = v2("v2-none", &[]);
    let cpu = tree.cpu().unwrap();
    assert_eq!((cpu.millis, cpu.limited), (8000, false));
    assert_eq!(
        cpu.described().to_string(),
        "cgroup v2 /system.slice/x.service: no CPU quota, 8 online CPUs"
    );
}

#[test]
fn v2_in_a_cgroup_namespace() {
    // A container with its own cgroup namespace: it sees itself as the root.
    let tree = Tree::new(
        "v2-ns",
        &[
            ONLINE,
            ("proc/self/cgroup", "0::/\n"),
            (
                "proc/self/mountinfo",
                "700 650 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate\n",
            ),
            ("root/sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n"),
            ("root/sys/fs/cgroup/cpu.max", "50000 100000\n"),
            ("root/sys/fs/cgroup/cpu.stat", "usage_usec 7\n"),
            ("root/sys/fs/cgroup/memory.max", "2147483648\n"),
            ("root/sys/fs/cgroup/memory.current", "1000\n"),
            ("root/sys/fs/cgroup/memory.stat", "inactive_file 10\n"),
        ],
    );
    let cpu = tree.cpu().unwrap();
    assert_eq!((cpu.millis, cpu.at.as_str()), (500, "/"));
    let memory = tree.memory().unwrap();
    assert_eq!((memory.limit, memory.used().unwrap()), (Some(2 << 30), 990));
}

#[test]
fn v2_missing_or_disabled_controller_is_an_error() {
    let tree = v2(
        "v2-disabled",
        &[("root/sys/fs/cgroup/cgroup.controllers", "pids io\n")],
    );
    assert!(
        tree.cpu()
            .unwrap_err()
            .contains("cpu controller is not enabled")
    );
    let tree = Tree::new("v2-nofile", &[("proc/self/cgroup", "0::/\n")]);
    assert!(tree.cpu().unwrap_err().contains("self/mountinfo"));
    let tree = v2(
        "v2-garbage",
        &[(
            "root/sys/fs/cgroup/system.slice/x.service/cpu.max",
            "lots\n",
        )],
    );
    assert!(tree.cpu().unwrap_err().contains("is not QUOTA PERIOD"));
}

/// The usual v1 layout with the files that prove it: each hierarchy's own file at its
/// top and this process in its cgroup's `cgroup.procs`; no mountinfo at all.
fn usual_v1(name: &str, procs: &str, extra: &[(&str, &str)]) -> Tree {
    let mut files = vec![
        ("root/sys/devices/system/cpu/online", "0-1\n"),
        (
            "proc/self/cgroup",
            "4:memory:/lbf\n3:cpuset:/\n1:cpu,cpuacct:/\n0::/\n",
        ),
        ("root/sys/fs/cgroup/cpu,cpuacct/cpu.shares", "1024\n"),
        ("root/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n"),
        ("root/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", "5000000\n"),
        ("root/sys/fs/cgroup/cpuset/cpuset.cpus", "0-1\n"),
        ("root/sys/fs/cgroup/memory/memory.usage_in_bytes", "1\n"),
        ("root/sys/fs/cgroup/memory/lbf/cgroup.procs", procs),
        (
            "root/sys/fs/cgroup/memory/lbf/memory.usage_in_bytes",
            "300\n",
        ),
        (
            "root/sys/fs/cgroup/memory/lbf/memory.stat",
            "cache 1\nhierarchical_memory_limit 1073741824\ntotal_inactive_file 100\n",
        ),
    ];
    files.extend_from_slice(extra);
    Tree::new(name, &files)
}

#[test]
fn the_usual_mount_points_need_no_mountinfo_when_they_show_this_process() {
    let pid = format!("1\n{}\n77\n", std::process::id());
    let tree = usual_v1("usual-v1", &pid, &[]);
    assert!(!tree.0.join("proc/self/mountinfo").exists());
    let memory = tree.memory().unwrap();
    assert_eq!(
        memory.described(4 << 30).to_string(),
        "cgroup v1 /lbf: 1.0 GiB limit"
    );
    assert_eq!(memory.used().unwrap(), 200);
    let cpu = tree.cpu().unwrap();
    assert_eq!(
        cpu.described().to_string(),
        "cgroup v1 /: no CPU quota, 2 online CPUs"
    );
    assert_eq!(cpu.usage_us().unwrap(), 5000);
    // v2 in a cgroup namespace (the container's cgroup is its `/`).
    let tree = Tree::new(
        "usual-v2",
        &[
            ONLINE,
            ("proc/self/cgroup", "0::/\n"),
            ("root/sys/fs/cgroup/cgroup.controllers", "cpu memory\n"),
            ("root/sys/fs/cgroup/cpu.max", "50000 100000\n"),
            ("root/sys/fs/cgroup/cpu.stat", "usage_usec 7\n"),
        ],
    );
    assert_eq!(
        tree.cpu().unwrap().described().to_string(),
        "cgroup v2 /: 0.50 CPU quota"
    );
}

#[test]
fn a_usual_mount_point_that_does_not_show_this_process_is_looked_up() {
    // The memory mount is a sub-tree (a container without a cgroup namespace): its
    // directory `lbf` is another cgroup, without this process, so mountinfo says where
    // this one is: at the mount point itself.
    let mountinfo = "35 31 0:32 /lbf /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    let tree = usual_v1(
        "usual-other",
        "1\n2\n",
        &[
            ("proc/self/mountinfo", mountinfo),
            (
                "root/sys/fs/cgroup/memory/memory.stat",
                "hierarchical_memory_limit 2147483648\ntotal_inactive_file 0\n",
            ),
        ],
    );
    let memory = tree.memory().unwrap();
    assert_eq!((memory.limit, memory.used().unwrap()), (Some(2 << 30), 1));
    assert!(!is_number(b"", 0) && is_number(b"42", 42) && !is_number(b"4x", 4));
}

#[test]
fn cpu_lists_and_escapes() {
    assert_eq!(count_cpus("0-3,8,10-11\n"), Some(7));
    assert_eq!(count_cpus(""), Some(0));
    assert_eq!(count_cpus("3-1"), None);
    assert_eq!(count_cpus("x"), None);
    // Read as `str::parse` reads each number: a `+` is allowed, a sign or overflow is not.
    assert_eq!(count_cpus(",0-1,,+4,"), Some(3));
    assert_eq!(count_cpus("1-2-3"), None);
    assert_eq!(count_cpus("-1"), None);
    assert_eq!(count_cpus("0-18446744073709551616"), None);
    assert_eq!(count_cpus("0- 1"), None);
    assert!(lists_cpu("0-3,8\n", 8) && lists_cpu("0-3,8", 0) && lists_cpu("2-3", 3));
    assert!(!lists_cpu("0-3,8", 4) && !lists_cpu("2-3", 1) && !lists_cpu("", 0));
    assert_eq!(unescape(r"/mnt/a\040b\\"), r"/mnt/a b\\");
    assert_eq!(unescape(r"/a\134b"), r"/a\b");
}

#[test]
fn the_top_quota_file_proves_the_v1_cpu_hierarchy_and_counts_as_its_quota() {
    // A container's own cgroup mounted as its cpu hierarchy, `/` in its namespace: the
    // quota at the mount point, read once as the proof, binds.
    let pid = format!("{}\n", std::process::id());
    let top = "root/sys/fs/cgroup/cpu,cpuacct";
    let tree = usual_v1(
        "usual-top-quota",
        &pid,
        &[
            (&format!("{top}/cpu.cfs_quota_us"), "150000\n"),
            (&format!("{top}/cpu.cfs_period_us"), "100000\n"),
        ],
    );
    let cpu = tree.cpu().unwrap();
    assert_eq!(cpu.described().to_string(), "cgroup v1 /: 1.50 CPU quota");
    assert_eq!(cpu.usage_us().unwrap(), 5000);
    // Without it (a kernel without CFS bandwidth control) the directory proves nothing, and
    // mountinfo, absent here, is asked.
    std::fs::remove_file(tree.0.join(top).join("cpu.cfs_quota_us")).unwrap();
    assert!(tree.cpu().unwrap_err().contains("mountinfo"));
}

#[test]
fn the_live_system_is_readable() {
    let roots = Roots::system();
    if let Ok(placement) = locate(roots) {
        // Whatever the machine, reading must not panic and a found cgroup has a size.
        if let Ok(cpu) = cpu(&placement, cpus_allowed(std::process::id())) {
            assert!(cpu.millis > 0);
        }
        let _ = memory(&placement);
    }
}

/// A v1 `memory.stat` as kernel 6.18 writes it.
const V1_STAT: &str = "cache 729088\nrss 0\nrss_huge 0\nshmem 0\nmapped_file 0\ndirty 4096\n\
writeback 0\nworkingset_refault_anon 0\nworkingset_refault_file 438\nswap 0\nswapcached 0\n\
pgpgin 153127\npgpgout 153033\npgfault 157776\npgmajfault 5\ninactive_anon 0\nactive_anon 0\n\
inactive_file 516096\nactive_file 212992\nunevictable 0\n\
hierarchical_memory_limit 1073741824\nhierarchical_memsw_limit 9223372036854771712\n\
total_cache 729088\ntotal_rss 0\ntotal_rss_huge 0\ntotal_shmem 0\ntotal_mapped_file 0\n\
total_dirty 4096\ntotal_writeback 0\ntotal_workingset_refault_anon 0\n\
total_workingset_refault_file 438\ntotal_swap 0\ntotal_swapcached 0\ntotal_pgpgin 153127\n\
total_pgpgout 153033\ntotal_pgfault 157776\ntotal_pgmajfault 5\ntotal_inactive_anon 0\n\
total_active_anon 0\ntotal_inactive_file 516096\ntotal_active_file 212992\n\
total_unevictable 0\n";

#[test]
fn every_line_of_a_stat_file_is_found_by_its_key() {
    // Whatever the lines' lengths put a line start at in a word, and the last line with
    // and without its newline.
    for text in [V1_STAT, V1_STAT.trim_end(), &V1_STAT[1..]] {
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap();
            let first = text
                .lines()
                .find(|l| l.starts_with(&format!("{key} ")))
                .unwrap();
            assert_eq!(first, line, "{key} is found at its first line");
            assert_eq!(
                values(text.as_bytes(), [key]),
                [Some(value.as_bytes())],
                "{key}"
            );
        }
    }
    let keys = [
        "total_inactive_file",
        "hierarchical_memory_limit",
        "rss",
        "x",
    ];
    assert_eq!(
        values(V1_STAT.as_bytes(), keys),
        [Some(&b"516096"[..]), Some(b"1073741824"), Some(b"0"), None]
    );
    // Keys shorter than a word, and a text shorter than one.
    assert_eq!(
        values(b"a 1\nab 2\n", ["ab", "a"]),
        [Some(&b"2"[..]), Some(b"1")]
    );
    assert_eq!(values(b"a 1", ["a", "b"]), [Some(&b"1"[..]), None]);
    assert_eq!(values(b"", ["a"]), [None]);
}

#[test]
fn a_block_of_bytes_is_matched_bit_by_bit_by_either_way() {
    let bytes = b"a\nbb\n\nccc\ndddd\ne\n\n\nxyz";
    for at in 0..bytes.len() + 1 {
        for byte in [b'\n', b'c', b'x', 0xff] {
            let expected = (0..16).fold(0, |bits, i| match bytes.get(at + i) {
                Some(b) if *b == byte && at + 16 <= bytes.len() => bits | 1 << i,
                _ => bits,
            });
            assert_eq!(matches(bytes, at, &needle(byte)), expected, "{at} {byte}");
            let by_words = matches_by_words(bytes, at, &word_needle(byte));
            assert_eq!(by_words, expected, "{at} {byte}");
        }
    }
}

#[test]
fn numbers_are_read_as_str_parse_reads_them() {
    let path = Path::new("/cg/f");
    for text in [
        "0",
        "42\n",
        " 7 ",
        "+5",
        "18446744073709551615",
        "",
        "+",
        "-1",
        "1x",
        "18446744073709551616",
    ] {
        assert_eq!(
            number(text, path).ok(),
            text.trim().parse::<u64>().ok(),
            "{text:?}"
        );
    }
}

#[test]
fn keyed_values_are_found_only_at_the_start_of_a_line() {
    let path = Path::new("/cg/memory.stat");
    let stat = "inactive_file 7\nactive_file 8\ntotal_inactive_file 70\ntotal_active_file 80";
    assert_eq!(keyed(stat, "inactive_file", path), Ok(7));
    assert_eq!(keyed(stat, "total_inactive_file", path), Ok(70));
    // The last line, with no newline after it; "active_file" also ends other keys.
    assert_eq!(keyed(stat, "total_active_file", path), Ok(80));
    assert_eq!(keyed(stat, "active_file", path), Ok(8));
    // Only inside another key, or a prefix of one: not there.
    assert_eq!(
        keyed("total_cache 1\n", "cache", path),
        Err("/cg/memory.stat: no cache line".to_string())
    );
    assert_eq!(
        keyed("usage_usec_x 1\n", "usage_usec", path),
        Err("/cg/memory.stat: no usage_usec line".to_string())
    );
    assert_eq!(
        keyed("usage_usec x\n", "usage_usec", path),
        Err("/cg/memory.stat: \"x\" is not a number".to_string())
    );
}
