#!/usr/bin/env bash
# A container starved by its host, measured (issue 22): a cgroup v1 with a 0.5 CPU quota
# (cpu, cpuacct) whose tasks are also in a cgroup2 cgroup of their own (the kernel counts a
# task's pressure stalls in its v2 cgroup, so a v1 container has per-cgroup PSI only there).
#   starving: two busy loops inside, host load well above the cores outside (2 × cores + 1 loops);
#   light:    one loop inside busy 30 ms of every 100 ms (0.3 CPU), nothing added outside;
#   v1 only:  starving again, the tasks left out of the cgroup2 cgroup (the agent's pressure
#             monitor then reads the run-queue wait of the v1 cgroup's tasks).
# Per round, over the same window (the agent's whole run, sample_ms 1000): the agent's CPU
# figure, its pressure:cpu:some figure and its reply (lb-feedback --explain, scope auto,
# inside the cgroup, with docs/monitors.md's suggested cpu:some:1:60), cpuacct.usage over the
# quota, the periods throttled (cpu.stat), the run-queue wait of the cgroup's tasks
# (/proc/PID/schedstat, second field, in CPU-seconds per second), the cgroup2 cgroup's
# cpu.pressure some and full from total deltas (and its avg10 at the end), and the host's
# /proc/pressure/cpu some. Everything it starts ends by itself within 2 minutes. Results:
# docs/BENCHMARKS.md ("A starving container").
#
# Usage: bench/starving.sh [ROUNDS]   (Linux, root, cgroup v1 cpu and cpuacct mounted at
#                                      /sys/fs/cgroup/{cpu,cpuacct}, cgroup2 at
#                                      /sys/fs/cgroup/unified; ROUNDS per case, default 5)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-5}
v1=/sys/fs/cgroup
v2=/sys/fs/cgroup/unified
for dir in "$v1/cpu" "$v1/cpuacct" "$v2"; do
    [[ -w $dir/cgroup.procs ]] || { echo "bench/starving.sh: $dir is not writable" >&2; exit 1; }
done
[[ -r /proc/pressure/cpu ]] || { echo "bench/starving.sh: no /proc/pressure (PSI)" >&2; exit 1; }

cargo build --quiet --release --bin lb-feedback
probe=$PWD/target/release/lb-feedback
from=
name=lbf-starve-$$
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for dir in "$v1/cpu/$name" "$v1/cpuacct/$name" "$v2/$name"; do
        for _ in $(seq 50); do rmdir "$dir" 2>/dev/null && break; [[ -d $dir ]] || break; sleep 0.1; done
    done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir "$v1/cpu/$name" "$v1/cpuacct/$name" "$v2/$name"
echo 100000 >"$v1/cpu/$name/cpu.cfs_period_us"
echo 50000 >"$v1/cpu/$name/cpu.cfs_quota_us"
join="echo \$\$ > $v1/cpu/$name/cgroup.procs; echo \$\$ > $v1/cpuacct/$name/cgroup.procs; echo \$\$ > $v2/$name/cgroup.procs"
burn='while ((SECONDS < 120)); do :; done'
# 30 ms busy in every 100 ms, for at most 2 minutes.
light='import time
end = time.monotonic() + 120
while time.monotonic() < end:
    start = time.monotonic()
    while time.monotonic() - start < 0.03:
        pass
    time.sleep(0.07)'

inside=()
start_inside() {
    sh -c "$join; exec $*" &
    pids+=($!)
    inside+=($!)
}

# Every counter in one read (one cat), timed by the shell's own clock on either side of it:
# "µs cpuacct.usage nr_periods nr_throttled run-queue-wait-ns some-µs full-µs host-some-µs".
read_all() {
    local files=("$v1/cpuacct/$name/cpuacct.usage" "$v1/cpu/$name/cpu.stat" "$v2/$name/cpu.pressure" /proc/pressure/cpu)
    local pid
    for pid in "${inside[@]}"; do files+=("/proc/$pid/schedstat"); done
    local t0=$EPOCHREALTIME raw t1
    raw=$(cat "${files[@]}")
    t1=$EPOCHREALTIME
    awk -v t0="${t0/./}" -v t1="${t1/./}" '
        NR == 1 { usage = $1 }
        $1 == "nr_periods" { periods = $2 }
        $1 == "nr_throttled" { throttled = $2 }
        ($1 == "some" || $1 == "full") { sub("total=", "", $5); psi[++n] = $5 }
        NF == 3 && $1 ~ /^[0-9]+$/ { wait += $2 }
        END { printf "%.0f %s %s %s %.0f %s %s %s\n", (t0 + t1) / 2, usage, periods, throttled, wait, psi[1], psi[2], psi[3] }
    ' <<<"$raw"
}
avg10() { awk '$1 == "some" { sub("avg10=", "", $2); print $2 }' "$1"; }

round() {
    local before after explain agent stalled reply
    read -r -a before <<<"$(read_all)"
    explain=$(sh -c "$join; exec env -i LB_FEEDBACK_STATE_DIR=$work LB_FEEDBACK_SAMPLE_MS=1000 \
        LB_FEEDBACK_RAM_IMPORTANCE=0 LB_FEEDBACK_PRESSURE=cpu:some:1:60 $probe --explain")
    read -r -a after <<<"$(read_all)"
    agent=$(sed -n 's/^cpu *busy \([0-9.]*\)%.*/\1/p' <<<"$explain")
    stalled=$(sed -n 's/^pressure:cpu:some *stalled (some) \([0-9.]*\)%.*/\1/p' <<<"$explain")
    reply=$(sed -n 's/^reply *\([^ ]*\).*/\1/p' <<<"$explain")
    from=$(sed -n 's/^pressure:cpu:some [^;]*; \([^ ]\+\( [^ ]\+\)*\)  .*/\1/p' <<<"$explain")
    awk -v agent="$agent" -v stalled="$stalled" -v reply="$reply" -v a="${after[*]}" -v b="${before[*]}" \
        -v avg="$(avg10 "$v2/$name/cpu.pressure")" 'BEGIN {
        split(a, x); split(b, y); us = x[1] - y[1]
        printf "| %s %% | %s %% | %s | %.1f %% | %d of %d | %.2f | %.1f %% | %.1f %% | %s | %.1f %% |\n",
            agent, stalled, reply, (x[2] - y[2]) / 1000 / (us * 0.5) * 100, x[4] - y[4], x[3] - y[3],
            (x[5] - y[5]) / 1000 / us, (x[6] - y[6]) / us * 100, (x[7] - y[7]) / us * 100,
            avg, (x[8] - y[8]) / us * 100
    }'
}

header() {
    echo
    echo "$1 (load average $(cut -d' ' -f1 /proc/loadavg) at start)"
    echo
    echo "| agent CPU | agent pressure:cpu:some | reply | cpuacct.usage of the quota | periods throttled | run-queue wait (CPU-s/s) | cgroup2 cpu.pressure some | full | avg10 at end | host /proc/pressure/cpu some |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
}

cores=$(nproc)
# Each in a session of its own: with autogroup scheduling (on here) the loops of one session
# share one entity's weight, and together weigh no more than the cgroup.
outside() {
    for _ in $(seq $((2 * cores + 1))); do
        setsid bash -c "$burn" &
        pids+=($!)
    done
}
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
    inside=()
}
rounds() {
    for _ in $(seq "$rounds"); do round; done
    echo
    echo "(the agent's pressure read from: $from)"
}

outside
start_inside bash -c "'$burn'"
start_inside bash -c "'$burn'"
sleep 2
header "starving: 2 loops inside the 0.5 CPU quota, $((2 * cores + 1)) outside on $cores cores"
rounds
stop

start_inside python3 -c "'$light'"
sleep 12
header "light: 0.3 CPU inside, nothing added outside"
rounds
stop

# The same starving container without a cgroup2 cgroup of its own (its tasks and the agent
# stay at the top of the unified tree, as a cgroup made only in v1 leaves them): the monitor
# reads the run-queue wait of the v1 cgroup's tasks; the cgroup2 columns are of an empty
# cgroup.
join=${join%; echo * > $v2/$name/cgroup.procs}
outside
start_inside bash -c "'$burn'"
start_inside bash -c "'$burn'"
sleep 2
header "starving, v1 only: as the first, the tasks left at the unified tree's top"
rounds
