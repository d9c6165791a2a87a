//! Unit tests of what `scope` picks for CPU and RAM (`cpu::Source::choose`,
//! `memory::read_scoped`) in the fixture trees of `cgroup`'s tests.

use super::cgroup::tests::{Tree, v1};
use super::{Cgroups, cpu, memory};

/// What the probe makes of a tree: the sources `scope` picks, in `--explain`'s words.
fn sources(tree: &Tree, scope: crate::config::Scope) -> (String, String) {
    let cgroups = Cgroups::at(tree.roots());
    let cpu = cpu::Source::choose(scope, &cgroups).map(|source| source.to_string());
    let ram = memory::read_scoped(scope, &cgroups).map(|(_, from)| from.to_string());
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
