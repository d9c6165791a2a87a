//! Unit tests of `metrics::cgroup`: placement, capacity and memory read from fixture trees of
//! v1 and v2 hierarchies.

use super::*;

/// A fixture tree: a procfs and a root with the files given, removed when dropped.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str, files: &[(&str, &str)]) -> Tree {
        let dir = std::env::temp_dir().join(format!("lbf-cgroup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Tree(dir)
    }

    fn roots(&self) -> Roots {
        Roots {
            procfs: self.0.join("proc"),
            root: self.0.join("root"),
        }
    }

    fn cpu(&self) -> Result<CpuCapacity, String> {
        let placement = locate(&self.roots())?;
        cpu(&placement)?.with_usage(&placement)
    }

    fn memory(&self) -> Result<MemoryUse, String> {
        memory(&locate(&self.roots())?)
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
        cpu.describe(),
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
    assert_eq!(memory.at, "/system.slice");
    assert_eq!(memory.used().unwrap(), 1_610_612_736);
    assert_eq!(
        memory.describe(16 << 30),
        "cgroup v2 /system.slice: 2.0 GiB limit"
    );
    // A limit at or above the host's memory is none.
    assert_eq!(
        memory.describe(1 << 30),
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
    assert_eq!(cpu.why, "cpuset 2-3: 2 CPUs");
    assert_eq!(cpu.at, "/system.slice/x.service");
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
        cpu.describe(),
        "cgroup v2 /system.slice: cpuset 2-3: 2 CPUs"
    );
    assert_eq!(cpu.usage_us().unwrap(), 42);
    // No quota, no cpuset: the online CPUs, and not limited.
    let tree = v2("v2-none", &[]);
    let cpu = tree.cpu().unwrap();
    assert_eq!((cpu.millis, cpu.limited), (8000, false));
    assert_eq!(cpu.why, "no CPU quota, 8 online CPUs");
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

/// This build machine's layout: cgroup v1, each controller on its own mount and a hybrid
/// cgroup2 with no controllers.
const V1_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

const V1_CGROUP: &str = "\
5:devices:/
4:memory:/lbf
3:cpuset:/
2:cpuacct:/lbf
1:cpu:/lbf
0::/
";

fn v1(name: &str, extra: &[(&str, &str)]) -> Tree {
    let mut files = vec![
        ("root/sys/devices/system/cpu/online", "0-1\n"),
        ("proc/self/cgroup", V1_CGROUP),
        ("proc/self/mountinfo", V1_MOUNTINFO),
        ("root/sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n"),
        ("root/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n"),
        ("root/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"),
        ("root/sys/fs/cgroup/cpu/lbf/cpu.cfs_quota_us", "50000\n"),
        ("root/sys/fs/cgroup/cpu/lbf/cpu.cfs_period_us", "100000\n"),
        (
            "root/sys/fs/cgroup/cpuacct/lbf/cpuacct.usage",
            "2450795273983\n",
        ),
        ("root/sys/fs/cgroup/cpuset/cpuset.cpus", "0-1\n"),
        (
            "root/sys/fs/cgroup/memory/lbf/memory.usage_in_bytes",
            "1700000000\n",
        ),
        (
            "root/sys/fs/cgroup/memory/lbf/memory.stat",
            "cache 9310208\nrss 3346432\nhierarchical_memory_limit 2147483648\n\
             hierarchical_memsw_limit 9223372036854771712\ntotal_cache 9310208\n\
             total_inactive_file 100000000\n",
        ),
    ];
    files.extend_from_slice(extra);
    Tree::new(name, &files)
}

#[test]
fn v1_quota_usage_and_limit() {
    let tree = v1("v1", &[]);
    let cpu = tree.cpu().unwrap();
    assert_eq!(cpu.describe(), "cgroup v1 /lbf: 0.50 CPU quota");
    assert_eq!(cpu.usage_us().unwrap(), 2_450_795_273);
    let memory = tree.memory().unwrap();
    assert_eq!(memory.limit, Some(2 << 30));
    assert_eq!(memory.used().unwrap(), 1_600_000_000);
    assert_eq!(memory.describe(24 << 30), "cgroup v1 /lbf: 2.0 GiB limit");
}

#[test]
fn v1_minus_one_and_the_unlimited_number_are_no_limit() {
    let tree = v1(
        "v1-none",
        &[
            ("root/sys/fs/cgroup/cpu/lbf/cpu.cfs_quota_us", "-1\n"),
            (
                "root/sys/fs/cgroup/memory/lbf/memory.stat",
                "hierarchical_memory_limit 9223372036854771712\ntotal_inactive_file 0\n",
            ),
        ],
    );
    let cpu = tree.cpu().unwrap();
    assert_eq!((cpu.millis, cpu.limited), (2000, false));
    assert_eq!(tree.memory().unwrap().limit, None);
}

#[test]
fn v1_cpuset_and_an_ancestor_quota() {
    let tree = v1(
        "v1-cpuset",
        &[
            ("root/sys/fs/cgroup/cpu/lbf/cpu.cfs_quota_us", "-1\n"),
            ("root/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "150000\n"),
            ("root/sys/fs/cgroup/cpuacct/cpuacct.usage", "5000\n"),
            (
                "root/sys/fs/cgroup/cpuacct/cpuacct.usage_percpu",
                "9000 4000 \n",
            ),
            ("root/sys/fs/cgroup/cpuset/cpuset.cpus", "1\n"),
        ],
    );
    let cpu = tree.cpu().unwrap();
    // The cpuset (1 CPU, the root's) binds before the 1.5 CPU quota at the root, and its
    // usage is CPU 1's at the cpuacct root.
    assert_eq!((cpu.millis, cpu.why.as_str()), (1000, "cpuset 1: 1 CPUs"));
    assert_eq!(cpu.at, "/");
    assert_eq!(cpu.describe(), "cgroup v1 /: cpuset 1: 1 CPUs");
    assert_eq!(cpu.usage_us().unwrap(), 4);
    let tree = v1(
        "v1-ancestor",
        &[
            ("root/sys/fs/cgroup/cpu/lbf/cpu.cfs_quota_us", "-1\n"),
            ("root/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "150000\n"),
            ("root/sys/fs/cgroup/cpuacct/cpuacct.usage", "5000\n"),
        ],
    );
    let cpu = tree.cpu().unwrap();
    assert_eq!((cpu.millis, cpu.at.as_str()), (1500, "/"));
    assert_eq!(cpu.usage_us().unwrap(), 5);
}

#[test]
fn v1_cpuset_only_is_measured_on_its_cpus() {
    // The issue's case: only a cpuset (CPU 1 of 0-1), cpu and cpuacct at the root, whose
    // total is every task's on both CPUs.
    let only_cpuset = [
        (
            "proc/self/cgroup",
            "4:memory:/\n3:cpuset:/cs\n2:cpuacct:/\n1:cpu:/\n0::/\n",
        ),
        ("root/sys/fs/cgroup/cpuset/cs/cpuset.cpus", "1\n"),
        ("root/sys/fs/cgroup/cpuacct/cpuacct.usage", "13000000\n"),
        (
            "root/sys/fs/cgroup/cpuacct/cpuacct.usage_percpu",
            "9000000 4000000 \n",
        ),
    ];
    let tree = v1("v1-cpuset-only", &only_cpuset);
    let cpu = tree.cpu().unwrap();
    assert_eq!(
        (cpu.millis, cpu.limited, cpu.at.as_str()),
        (1000, true, "/cs")
    );
    assert_eq!(
        cpu.describe(),
        "cgroup v1 /cs: cpuset 1: 1 CPUs, usage of CPUs 1 at cpuacct /"
    );
    assert_eq!(cpu.usage_us().unwrap(), 4000);
    // Nested: the pod's cpuset holds its containers to CPUs 2-3 of 0-7, where the limit
    // applies; this container's cpuacct cgroup is below the pod's, which counts them all.
    let tree = v1(
        "v1-cpuset-nested",
        &[
            ("root/sys/devices/system/cpu/online", "0-7\n"),
            (
                "proc/self/cgroup",
                "4:memory:/\n3:cpuset:/pod/c\n2:cpuacct:/pod/c\n1:cpu:/pod/c\n0::/\n",
            ),
            ("root/sys/fs/cgroup/cpuset/cpuset.cpus", "0-7\n"),
            ("root/sys/fs/cgroup/cpuset/pod/cpuset.cpus", "2-3\n"),
            ("root/sys/fs/cgroup/cpuset/pod/c/cpuset.cpus", "2-3\n"),
            ("root/sys/fs/cgroup/cpu/pod/c/cpu.cfs_quota_us", "-1\n"),
            (
                "root/sys/fs/cgroup/cpuacct/pod/cpuacct.usage_percpu",
                "1000 1000 2000000 3000000 1000 0 0 0\n",
            ),
            (
                "root/sys/fs/cgroup/cpuacct/pod/c/cpuacct.usage_percpu",
                "0 0 1000 1000 0 0 0 0\n",
            ),
        ],
    );
    let cpu = tree.cpu().unwrap();
    assert_eq!((cpu.millis, cpu.at.as_str()), (2000, "/pod"));
    assert_eq!(cpu.describe(), "cgroup v1 /pod: cpuset 2-3: 2 CPUs");
    assert_eq!(cpu.usage_us().unwrap(), 5000);
    // A quota in a cpu cgroup that cpuacct does not mirror has no usage of its own.
    let tree = v1(
        "v1-quota-elsewhere",
        &[
            ("proc/self/cgroup", "2:cpuacct:/\n1:cpu:/lbf\n0::/\n"),
            ("root/sys/fs/cgroup/cpuacct/cpuacct.usage", "13000000\n"),
        ],
    );
    let err = tree.cpu().unwrap_err();
    assert!(err.contains("quota is at cpu /lbf"), "{err}");
    assert!(
        err.contains("in cpuacct /, which has no cgroup /lbf"),
        "{err}"
    );
}

#[test]
fn v1_memory_is_read_where_an_ancestor_limit_binds() {
    // 2 GiB on the parent /p, none on the child /p/a this process is in; sibling /p/b
    // holds 1.5 GiB, which only the parent's figures show.
    let nested = [
        (
            "proc/self/cgroup",
            "4:memory:/p/a\n2:cpuacct:/lbf\n1:cpu:/lbf\n0::/\n",
        ),
        (
            "root/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        ),
        (
            "root/sys/fs/cgroup/memory/p/memory.limit_in_bytes",
            "2147483648\n",
        ),
        (
            "root/sys/fs/cgroup/memory/p/memory.usage_in_bytes",
            "1700000000\n",
        ),
        (
            "root/sys/fs/cgroup/memory/p/memory.stat",
            "hierarchical_memory_limit 2147483648\ntotal_inactive_file 100000000\n",
        ),
        (
            "root/sys/fs/cgroup/memory/p/a/memory.limit_in_bytes",
            "9223372036854771712\n",
        ),
        (
            "root/sys/fs/cgroup/memory/p/a/memory.usage_in_bytes",
            "1000\n",
        ),
        (
            "root/sys/fs/cgroup/memory/p/a/memory.stat",
            "hierarchical_memory_limit 2147483648\ntotal_inactive_file 0\n",
        ),
    ];
    let tree = v1("v1-memory-parent", &nested);
    let memory = tree.memory().unwrap();
    assert_eq!((memory.limit, memory.at.as_str()), (Some(2 << 30), "/p"));
    assert_eq!(memory.used().unwrap(), 1_600_000_000);
    assert_eq!(memory.describe(24 << 30), "cgroup v1 /p: 2.0 GiB limit");
    // The same limit on parent and child (a one-container pod): the parent binds first.
    let mut same = nested.to_vec();
    same.push((
        "root/sys/fs/cgroup/memory/p/a/memory.limit_in_bytes",
        "2147483648\n",
    ));
    let tree = v1("v1-memory-same", &same);
    assert_eq!(tree.memory().unwrap().at, "/p");
    // The limit of an ancestor out of sight (a container's mount shows only its own
    // cgroup): the cgroup's own use, against it.
    let tree = v1(
        "v1-memory-unseen",
        &[
            (
                "proc/self/cgroup",
                "4:memory:/p/a\n2:cpuacct:/lbf\n1:cpu:/lbf\n0::/\n",
            ),
            (
                "proc/self/mountinfo",
                "35 31 0:32 /p/a /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            ),
            (
                "root/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("root/sys/fs/cgroup/memory/memory.usage_in_bytes", "1000\n"),
            (
                "root/sys/fs/cgroup/memory/memory.stat",
                "hierarchical_memory_limit 2147483648\ntotal_inactive_file 0\n",
            ),
        ],
    );
    let memory = tree.memory().unwrap();
    assert_eq!((memory.limit, memory.at.as_str()), (Some(2 << 30), "/p/a"));
    assert_eq!(memory.used().unwrap(), 1000);
}

#[test]
fn v1_memory_limit_from_each_level_when_the_root_is_in_sight() {
    // `release_agent` shows the hierarchy's own root: the limits are read level by level,
    // and `memory.stat` (here without its hierarchical line) is not needed for them.
    let files = [
        (
            "proc/self/cgroup",
            "4:memory:/p/a\n2:cpuacct:/lbf\n1:cpu:/lbf\n0::/\n",
        ),
        ("root/sys/fs/cgroup/memory/release_agent", "\n"),
        (
            "root/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        ),
        (
            "root/sys/fs/cgroup/memory/p/memory.limit_in_bytes",
            "2147483648\n",
        ),
        (
            "root/sys/fs/cgroup/memory/p/memory.usage_in_bytes",
            "1700000000\n",
        ),
        (
            "root/sys/fs/cgroup/memory/p/memory.stat",
            "total_inactive_file 100000000\n",
        ),
        (
            "root/sys/fs/cgroup/memory/p/a/memory.limit_in_bytes",
            "2147483648\n",
        ),
    ];
    let tree = v1("v1-memory-levels", &files);
    let memory = tree.memory().unwrap();
    assert_eq!((memory.limit, memory.at.as_str()), (Some(2 << 30), "/p"));
    assert_eq!(memory.used().unwrap(), 1_600_000_000);
    // A smaller limit on the child binds there.
    let mut smaller = files.to_vec();
    smaller.push((
        "root/sys/fs/cgroup/memory/p/a/memory.limit_in_bytes",
        "1073741824\n",
    ));
    let tree = v1("v1-memory-levels-child", &smaller);
    let memory = tree.memory().unwrap();
    assert_eq!((memory.limit, memory.at.as_str()), (Some(1 << 30), "/p/a"));
    // In the root cgroup there is no limit, and nothing to read for it.
    let tree = v1(
        "v1-memory-root",
        &[
            (
                "proc/self/cgroup",
                "4:memory:/\n2:cpuacct:/lbf\n1:cpu:/lbf\n0::/\n",
            ),
            ("root/sys/fs/cgroup/memory/release_agent", "\n"),
        ],
    );
    let memory = tree.memory().unwrap();
    assert_eq!((memory.limit, memory.at.as_str()), (None, "/"));
    assert_eq!(memory.describe(4 << 30), "cgroup v1 /: no memory limit");
}

#[test]
fn v1_in_a_container_without_a_cgroup_namespace() {
    // Docker on v1: the container's cgroup is the root of each mount it sees.
    let tree = Tree::new(
        "v1-docker",
        &[
            ("root/sys/devices/system/cpu/online", "0-3\n"),
            (
                "proc/self/cgroup",
                "12:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
            ),
            (
                "proc/self/mountinfo",
                "900 890 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n\
                 901 890 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n",
            ),
            (
                "root/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
                "200000\n",
            ),
            (
                "root/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us",
                "100000\n",
            ),
            ("root/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", "3000000\n"),
            ("root/sys/fs/cgroup/memory/memory.usage_in_bytes", "100\n"),
            (
                "root/sys/fs/cgroup/memory/memory.stat",
                "hierarchical_memory_limit 1073741824\ntotal_inactive_file 0\n",
            ),
        ],
    );
    let cpu = tree.cpu().unwrap();
    assert_eq!(cpu.describe(), "cgroup v1 /docker/abc: 2.00 CPU quota");
    assert_eq!(cpu.usage_us().unwrap(), 3000);
    assert_eq!(tree.memory().unwrap().limit, Some(1 << 30));
}

#[test]
fn v1_unreadable_controller_is_an_error() {
    let tree = v1("v1-unreadable", &[]);
    let usage = tree
        .0
        .join("root/sys/fs/cgroup/memory/lbf/memory.usage_in_bytes");
    std::fs::remove_file(&usage).unwrap();
    std::fs::create_dir(&usage).unwrap();
    // The limit is read; the use, when asked for, is the error.
    let err = tree.memory().unwrap().used().unwrap_err();
    assert!(err.contains("memory.usage_in_bytes"), "{err}");
    let tree = v1("v1-nocpu", &[("proc/self/cgroup", "4:memory:/lbf\n")]);
    assert!(tree.cpu().unwrap_err().contains("no cpu controller"));
}

/// What the probe makes of a tree: the sources `scope` picks, in `--explain`'s words.
fn sources(tree: &Tree, scope: crate::config::Scope) -> (String, String) {
    use crate::metrics::{Cgroups, cpu, memory};
    let cgroups = Cgroups::at(tree.roots());
    let cpu = cpu::Source::choose(scope, &cgroups).map(|source| source.describe());
    let ram = memory::read_scoped(scope, &cgroups).map(|(_, from)| from);
    let text = |result: Result<String, crate::metrics::MetricError>| {
        result.unwrap_or_else(|err| format!("error: {err}"))
    };
    (text(cpu), text(ram))
}

#[test]
fn auto_takes_a_limited_cgroup_and_falls_back_to_the_host_saying_why() {
    use crate::config::Scope;
    // Limited: the cgroup's CPU figure. (Its RAM one depends on the host's MemTotal, a
    // limit at or above it being none, so it is left to the real-cgroup test.)
    let tree = v1("scope-limited", &[]);
    let (cpu, _) = sources(&tree, Scope::Auto);
    assert_eq!(cpu, "cgroup v1 /lbf: 0.50 CPU quota");
    // No quota: the host's, with the reason.
    let tree = v1(
        "scope-unlimited",
        &[
            ("root/sys/fs/cgroup/cpu/lbf/cpu.cfs_quota_us", "-1\n"),
            (
                "root/sys/fs/cgroup/memory/lbf/memory.stat",
                "hierarchical_memory_limit 9223372036854771712\ntotal_inactive_file 0\n",
            ),
        ],
    );
    let (cpu, ram) = sources(&tree, Scope::Auto);
    assert_eq!(
        cpu,
        "host /proc/stat (cgroup v1 /lbf: no CPU quota, 2 online CPUs)"
    );
    assert_eq!(ram, "host /proc/meminfo (cgroup v1 /lbf: no memory limit)");
    // Scope cgroup insists on the cgroup even without a limit.
    let (cpu, ram) = sources(&tree, Scope::Cgroup);
    assert_eq!(cpu, "cgroup v1 /lbf: no CPU quota, 2 online CPUs");
    assert_eq!(ram, "cgroup v1 /lbf: no memory limit");
    // A controller that cannot be read: the host's under auto, with why; an error under
    // cgroup; and host never looks.
    let tree = v1("scope-unreadable", &[]);
    std::fs::remove_file(tree.0.join("root/sys/fs/cgroup/memory/lbf/memory.stat")).unwrap();
    std::fs::remove_file(tree.0.join("root/sys/fs/cgroup/cpuacct/lbf/cpuacct.usage")).unwrap();
    std::fs::remove_file(tree.0.join("root/sys/devices/system/cpu/online")).unwrap();
    let (cpu, ram) = sources(&tree, Scope::Auto);
    assert!(cpu.starts_with("host /proc/stat (cgroup: "), "{cpu}");
    assert!(cpu.contains("cpu/online: No such file"), "{cpu}");
    assert!(ram.starts_with("host /proc/meminfo (cgroup: "), "{ram}");
    assert!(ram.contains("memory.stat: No such file"), "{ram}");
    let (cpu, ram) = sources(&tree, Scope::Cgroup);
    assert!(
        cpu.starts_with("error: cannot read cpu: scope cgroup: "),
        "{cpu}"
    );
    assert!(
        ram.starts_with("error: cannot read ram: scope cgroup: "),
        "{ram}"
    );
    assert_eq!(
        sources(&tree, Scope::Host),
        (
            "host /proc/stat".to_string(),
            "host /proc/meminfo".to_string()
        )
    );
    // No cgroup files at all (a chroot without /proc/self/cgroup).
    let tree = Tree::new("scope-none", &[]);
    let (cpu, _) = sources(&tree, Scope::Auto);
    assert!(cpu.starts_with("host /proc/stat (cgroup: "), "{cpu}");
    assert!(cpu.contains("self/cgroup: No such file"), "{cpu}");
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
    assert_eq!(memory.describe(4 << 30), "cgroup v1 /lbf: 1.0 GiB limit");
    assert_eq!(memory.used().unwrap(), 200);
    let cpu = tree.cpu().unwrap();
    assert_eq!(cpu.describe(), "cgroup v1 /: no CPU quota, 2 online CPUs");
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
        tree.cpu().unwrap().describe(),
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
    assert!(lists_cpu("0-3,8\n", 8) && lists_cpu("0-3,8", 0) && lists_cpu("2-3", 3));
    assert!(!lists_cpu("0-3,8", 4) && !lists_cpu("2-3", 1) && !lists_cpu("", 0));
    assert_eq!(unescape(r"/mnt/a\040b\\"), r"/mnt/a b\\");
    assert_eq!(unescape(r"/a\134b"), r"/a\b");
}

#[test]
fn the_live_system_is_readable() {
    let roots = Roots::system();
    if let Ok(placement) = locate(&roots) {
        // Whatever the machine, reading must not panic and a found cgroup has a size.
        if let Ok(cpu) = cpu(&placement) {
            assert!(cpu.millis > 0);
        }
        let _ = memory(&placement);
    }
}
