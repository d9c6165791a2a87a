//! Unit tests of `metrics::cgroup` on v1 hierarchies: quotas, cpusets, limits up the tree,
//! containers without a cgroup namespace.

use super::*;

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

pub(crate) fn v1(name: &str, extra: &[(&str, &str)]) -> Tree {
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
    assert_eq!(
        cpu.described().to_string(),
        "cgroup v1 /lbf: 0.50 CPU quota"
    );
    assert_eq!(cpu.usage_us().unwrap(), 2_450_795_273);
    let memory = tree.memory().unwrap();
    assert_eq!(memory.limit, Some(2 << 30));
    assert_eq!(memory.used().unwrap(), 1_600_000_000);
    assert_eq!(
        memory.described(24 << 30).to_string(),
        "cgroup v1 /lbf: 2.0 GiB limit"
    );
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
    assert_eq!(cpu.millis, 1000);
    assert_eq!(cpu.at, "/");
    assert_eq!(cpu.described().to_string(), "cgroup v1 /: cpuset 1: 1 CPUs");
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
fn an_affinity_of_every_online_cpu_leaves_the_cpuset_unread() {
    // No CPU list: read, the cpuset is an error, so the answer shows whether it was read.
    let tree = v1(
        "v1-affinity",
        &[("root/sys/fs/cgroup/cpuset/cpuset.cpus", "lots\n")],
    );
    let placement = locate(tree.roots()).unwrap();
    let whole = cpu(&placement, Some(2)).unwrap();
    assert_eq!(
        whole.described().to_string(),
        "cgroup v1 /lbf: 0.50 CPU quota"
    );
    // Fewer CPUs than online (a cpuset or a taskset), or no count: the files are read.
    for allowed in [Some(1), None] {
        let err = cpu(&placement, allowed).unwrap_err();
        assert!(err.contains("is not a CPU list"), "{err}");
    }
    let tree = v1(
        "v1-affinity-cpuset",
        &[
            ("root/sys/fs/cgroup/cpu/lbf/cpu.cfs_quota_us", "-1\n"),
            ("root/sys/fs/cgroup/cpuset/cpuset.cpus", "1\n"),
        ],
    );
    let bound = cpu(&locate(tree.roots()).unwrap(), Some(1)).unwrap();
    assert_eq!(
        bound.described().to_string(),
        "cgroup v1 /: cpuset 1: 1 CPUs"
    );
}

#[test]
fn the_affinity_is_counted_for_a_live_process_only() {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let allowed = cpus_allowed(std::process::id()).unwrap();
    assert!((1..=count_cpus(&online).unwrap()).contains(&allowed));
    assert_eq!(cpus_allowed(u32::MAX), None);
}

#[test]
fn v1_cpuset_only_is_measured_on_its_cpus() {
    // The case: only a cpuset (CPU 1 of 0-1), cpu and cpuacct at the root, whose
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
        cpu.described().to_string(),
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
    assert_eq!(
        cpu.described().to_string(),
        "cgroup v1 /pod: cpuset 2-3: 2 CPUs"
    );
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
    assert_eq!((memory.limit, memory.at()), (Some(2 << 30), "/p"));
    assert_eq!(memory.used().unwrap(), 1_600_000_000);
    assert_eq!(
        memory.described(24 << 30).to_string(),
        "cgroup v1 /p: 2.0 GiB limit"
    );
    // The same limit on parent and child (a one-container pod): the parent binds first.
    let mut same = nested.to_vec();
    same.push((
        "root/sys/fs/cgroup/memory/p/a/memory.limit_in_bytes",
        "2147483648\n",
    ));
    let tree = v1("v1-memory-same", &same);
    assert_eq!(tree.memory().unwrap().at(), "/p");
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
    assert_eq!((memory.limit, memory.at()), (Some(2 << 30), "/p/a"));
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
    assert_eq!((memory.limit, memory.at()), (Some(2 << 30), "/p"));
    assert_eq!(memory.used().unwrap(), 1_600_000_000);
    // A smaller limit on the child binds there.
    let mut smaller = files.to_vec();
    smaller.push((
        "root/sys/fs/cgroup/memory/p/a/memory.limit_in_bytes",
        "1073741824\n",
    ));
    let tree = v1("v1-memory-levels-child", &smaller);
    let memory = tree.memory().unwrap();
    assert_eq!((memory.limit, memory.at()), (Some(1 << 30), "/p/a"));
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
    assert_eq!((memory.limit, memory.at()), (None, "/"));
    assert_eq!(
        memory.described(4 << 30).to_string(),
        "cgroup v1 /: no memory limit"
    );
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
    assert_eq!(
        cpu.described().to_string(),
        "cgroup v1 /docker/abc: 2.00 CPU quota"
    );
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
