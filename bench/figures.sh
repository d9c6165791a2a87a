#!/usr/bin/env bash
# The figures of issue 11: how true the agent's figures are where they used to be wrong.
#   1. In a cgroup v1 with a 0.5 CPU quota and a 200 MiB limit, saturated and holding
#      150 MiB: the agent's CPU and RAM against cpuacct.usage and memory.usage_in_bytes over
#      the same window (needs root and cgroup v1; skipped otherwise).
#   2. since-last probes in pairs 5, 20 and 50 ms apart under a steady load: the second's
#      error against the full window, and what the ticks in between would have said.
#   3. lb-feedback-service polled 100 times a second: poll latency p50 and p99.
#   4. What the kept sampler costs: the service's CPU time (% of one core) idle, polled once
#      a second on an idle host, and polled on a busy one.
# Results: docs/BENCHMARKS.md, "Truthful figures".
#
# Usage: bench/figures.sh       (from anywhere in a clone; Linux, about two minutes)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $(uname -s) != Linux ]]; then
    echo "bench/figures.sh: Linux only (it reads /proc and cgroups)" >&2
    exit 1
fi
cargo build --quiet --release --bins --example bench_helper
target=${CARGO_TARGET_DIR:-$PWD/target}/release
probe=$target/lb-feedback
service=$target/lb-feedback-service
helper=$target/examples/bench_helper

work=$(mktemp -d)
pids=()
cgroups=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for dir in "${cgroups[@]}"; do
        for _ in 1 2 3 4 5; do rmdir "$dir" 2>/dev/null && break; sleep 0.2; done
    done
    rm -rf "$work"
}
trap cleanup EXIT
echo '{}' >"$work/config.json"
export LB_FEEDBACK_CONFIG=$work/config.json LB_FEEDBACK_STATE_DIR=$work/state

echo "== machine"
echo "$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# The agent's load for one monitor, from --explain (the column before importance).
load_of() { awk -v m="$1" '$1 == m { print $(NF - 3) }'; }

echo "== 1. a saturated 0.5-CPU cgroup holding 150 MiB of 200 MiB"
name=lbf-bench-$$
if [[ $(id -u) == 0 ]] && mkdir "/sys/fs/cgroup/cpu/$name" 2>/dev/null; then
    cgroups+=("/sys/fs/cgroup/cpu/$name")
    mkdir "/sys/fs/cgroup/cpuacct/$name" "/sys/fs/cgroup/memory/$name"
    cgroups+=("/sys/fs/cgroup/cpuacct/$name" "/sys/fs/cgroup/memory/$name")
    echo 100000 >"/sys/fs/cgroup/cpu/$name/cpu.cfs_period_us"
    echo 50000 >"/sys/fs/cgroup/cpu/$name/cpu.cfs_quota_us"
    # A heavy weight: the burner gets its quota however busy the rest of the machine is.
    echo 8192 >"/sys/fs/cgroup/cpu/$name/cpu.shares"
    echo $((200 << 20)) >"/sys/fs/cgroup/memory/$name/memory.limit_in_bytes"
    join="for c in cpu cpuacct memory; do echo \$\$ > /sys/fs/cgroup/\$c/$name/cgroup.procs; done"
    sh -c "$join; exec sh -c 'while :; do :; done'" &
    pids+=($!)
    mkfifo "$work/hold"
    sh -c "$join; exec $helper hold-memory 150" <"$work/hold" >"$work/held" &
    pids+=($!)
    exec 3>"$work/hold"
    until grep -q held "$work/held" 2>/dev/null; do sleep 0.1; done
    sleep 1
    for round in 1 2 3 4 5; do
        acct=/sys/fs/cgroup/cpuacct/$name/cpuacct.usage
        before=$(cat "$acct") t0=$(date +%s%N)
        out=$(sh -c "$join; exec env LB_FEEDBACK_RAM_IMPORTANCE=0 $probe --explain")
        after=$(cat "$acct") t1=$(date +%s%N)
        cpu=$(load_of cpu <<<"$out")
        ref=$(awk -v u=$((after - before)) -v w=$((t1 - t0)) 'BEGIN { printf "%.1f", u / (w * 0.5) * 100 }')
        out=$(sh -c "$join; exec env LB_FEEDBACK_CPU_IMPORTANCE=0 $probe --explain")
        ram=$(load_of ram <<<"$out")
        usage=$(cat "/sys/fs/cgroup/memory/$name/memory.usage_in_bytes")
        inactive=$(awk '$1 == "total_inactive_file" { print $2 }' "/sys/fs/cgroup/memory/$name/memory.stat")
        echo "round $round: cpu $cpu% (cpuacct.usage over the probe's run: $ref%);" \
            "ram $ram% (memory.usage_in_bytes: $(awk -v u="$usage" 'BEGIN { printf "%.1f", u / (200 * 2^20) * 100 }')%," \
            "less inactive file: $(awk -v u="$usage" -v i="$inactive" 'BEGIN { printf "%.1f", (u - i) / (200 * 2^20) * 100 }')%)"
    done
    out=$(sh -c "$join; exec env LB_FEEDBACK_SCOPE=host LB_FEEDBACK_RAM_IMPORTANCE=0 $probe --explain")
    echo "the host's figure from inside, for comparison: cpu $(load_of cpu <<<"$out")%"
    exec 3>&-
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
else
    echo "skipped: needs root and cgroup v1 hierarchies at /sys/fs/cgroup/{cpu,cpuacct,memory}"
fi

echo "== 2. since-last probes in pairs, one core busy"
for gap in 5 20 50; do
    rm -rf "$work/state"
    env LB_FEEDBACK_CPU_MODE=since-last LB_FEEDBACK_RAM_IMPORTANCE=0 LB_FEEDBACK_SCOPE=host \
        "$helper" pairs "$probe" "$gap" 10
done

echo "== 3. lb-feedback-service polled 100 times a second"
port=$(awk 'BEGIN { srand(); print 20000 + int(rand() * 20000) }')
"$service" run --listen "127.0.0.1:$port" 2>"$work/service.log" &
service_pid=$!
pids+=("$service_pid")
sleep 0.5
"$helper" steady "127.0.0.1:$port" 100 10

echo "== 4. the kept sampler's cost (the service's CPU time, % of one core, over 10 s)"
# schedstat's first field: the time a thread ran, in ns (stat's is in 10 ms ticks, too coarse
# for this). The long-lived threads only (sampler, log, signals, refusals): the lbf-probe
# threads that accept and answer connections come and go, and their time goes with them.
cpu_time() {
    local total=0 task comm time
    for task in /proc/"$service_pid"/task/*; do
        comm=$(cat "$task/comm" 2>/dev/null) || continue
        [[ $comm == lbf-probe ]] && continue
        time=$(cut -d' ' -f1 "$task/schedstat" 2>/dev/null) || continue
        total=$((total + time))
    done
    echo "$total"
}
cost() {
    local before after
    before=$(cpu_time)
    "$@" >/dev/null
    after=$(cpu_time)
    awk -v d=$((after - before)) 'BEGIN { printf "%.3f%%\n", d / 1e9 / 10 * 100 }'
}
# Let the minute of keeping from part 3 run out first.
echo "(waiting 65 s for the sampler to go idle)"
sleep 65
echo "idle service, no polls: $(cost sleep 10)"
echo "polled once a second, idle host: $(cost "$helper" steady "127.0.0.1:$port" 1 10)"
sh -c 'while :; do :; done' &
burner=$!
pids+=("$burner")
echo "polled once a second, one core busy: $(cost "$helper" steady "127.0.0.1:$port" 1 10)"
echo "polled 100 times a second, one core busy: $(cost "$helper" steady "127.0.0.1:$port" 100 10)"
kill "$burner"
