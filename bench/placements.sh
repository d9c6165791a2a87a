# Sourced by bench/guard.sh and bench/hot-order.sh: the three placements a probe is measured
# in, as real cgroups (cgroup v1 or v2 mounted writable at /sys/fs/cgroup; needs root):
#   root     the root cgroup of every hierarchy the probe reads (cpu, cpuacct, cpuset, memory)
#   child    a child cgroup without limits (as systemd puts xinetd.service)
#   limited  a child cgroup with a 0.5 CPU quota and a 1 GiB memory limit (a container)
# start_placements NAME checks for root, makes the scratch directory `work` and the placements
# (make_placements), and removes both on exit, whatever happens. make_placements NAME creates
# NAME and NAME-limited and sets version, root_dirs, child_dirs and limited_dirs (the
# directories whose cgroup.procs a probe's shell joins); it appends what it created to the
# array `created`. Both call the caller's `fail MESSAGE`. in_placement runs a probe in one of
# them.

start_placements() {
    [ "$(id -u)" = 0 ] || fail "needs root (it creates cgroups)"
    work=$(mktemp -d)
    created=()
    trap remove_placements EXIT
    make_placements "$1"
}

# Child cgroups first (their processes, the probes, have exited), then the scratch directory.
remove_placements() {
    local dir
    for dir in "${created[@]}"; do rmdir "$dir" 2>/dev/null || true; done
    rm -rf "$work"
}

make_placements() {
    local name=$1 cg=/sys/fs/cgroup controller top dir
    if [ -e "$cg/cgroup.controllers" ]; then
        version=2
        root_dirs=("$cg")
        for controller in cpu memory; do
            grep -qw "$controller" "$cg/cgroup.subtree_control" ||
                fail "the $controller controller is not enabled in $cg/cgroup.subtree_control"
        done
        mkdir "$cg/$name" "$cg/$name-limited"
        created+=("$cg/$name" "$cg/$name-limited")
        child_dirs=("$cg/$name")
        limited_dirs=("$cg/$name-limited")
        echo "50000 100000" >"$cg/$name-limited/cpu.max"
        echo $((1 << 30)) >"$cg/$name-limited/memory.max"
        return
    fi
    version=1
    root_dirs=() child_dirs=() limited_dirs=()
    for controller in cpu cpuacct cpuset memory; do
        top=$(realpath "$cg/$controller" 2>/dev/null) || fail "no cgroup v1 $controller hierarchy at $cg/$controller"
        [ -w "$top/cgroup.procs" ] || fail "$top is not writable"
        # cpu and cpuacct may be one hierarchy (cpu,cpuacct): join it once.
        if [[ " ${root_dirs[*]} " == *" $top "* ]]; then continue; fi
        root_dirs+=("$top")
        if [ "$controller" = cpuset ]; then
            # A cpuset child needs its CPUs and memory nodes set; the probe reads the root's.
            child_dirs+=("$top") limited_dirs+=("$top")
            continue
        fi
        mkdir "$top/$name" "$top/$name-limited"
        created+=("$top/$name" "$top/$name-limited")
        child_dirs+=("$top/$name") limited_dirs+=("$top/$name-limited")
    done
    for dir in "${limited_dirs[@]}"; do
        if [ -e "$dir/cpu.cfs_quota_us" ]; then echo 50000 >"$dir/cpu.cfs_quota_us"; fi
        if [ -e "$dir/memory.limit_in_bytes" ]; then echo $((1 << 30)) >"$dir/memory.limit_in_bytes"; fi
    done
}

# Runs a command in cgroups: in_placement DIR... -- COMMAND [ARG...] joins each DIR's
# cgroup.procs, then becomes the command.
in_placement() {
    local joins=0 arg
    for arg; do
        [ "$arg" = -- ] && break
        joins=$((joins + 1))
    done
    sh -c 'joins=$1; shift
        while [ "$joins" -gt 0 ]; do
            echo $$ >"$1/cgroup.procs" || exit 1
            shift
            joins=$((joins - 1))
        done
        shift
        exec "$@"' sh "$joins" "$@"
}

# The directories of placement $1 (root, child or limited), into the array `dirs`.
placement_dirs() {
    case $1 in
        root) dirs=("${root_dirs[@]}") ;;
        child) dirs=("${child_dirs[@]}") ;;
        limited) dirs=("${limited_dirs[@]}") ;;
        *) fail "no placement $1" ;;
    esac
}
