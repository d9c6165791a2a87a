#!/usr/bin/env bash
# lb-feedback-service's CPU per 1,000 polls, this tree's build against another revision's, side
# by side in one run: each service in a cpuacct cgroup of its own (cgroup v1), both polled
# RATE times a second at once the way HAProxy's agent-check polls (connect, read one line,
# close; examples/bench_helper.rs `lines`), CPU seconds per 1,000 polls from the cgroups'
# cpuacct.usage over each round, and their medians; then the RSS of each before and after
# RSS_POLLS more polls (those at RSS_RATE a second), every quarter of them. Method and
# results: docs/BENCHMARKS.md ("lb-feedback-service's CPU per poll").
#
# Usage: bench/service-cost.sh [REV]   (Linux, root, cgroup v1 cpuacct at /sys/fs/cgroup/cpuacct)
#   REV: the "before" build, 248554e (before issue 21's service work) by default; it is built
#   from a git worktree in a scratch directory, into target/service-cost/ (kept, so a second
#   run does not build it again).
#   Environment: ROUNDS (5), POLLS per round (2000), RATE (100 a second), RSS_POLLS (100000),
#   RSS_RATE (1000 a second). Loopback only; both services use the shipped defaults (an
#   empty config file) and state directories of their own.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
rev=${1:-248554e}
rounds=${ROUNDS:-5} polls=${POLLS:-2000} rate=${RATE:-100}
rss_polls=${RSS_POLLS:-100000} rss_rate=${RSS_RATE:-1000}
cpuacct=/sys/fs/cgroup/cpuacct
if [[ ! -w $cpuacct ]]; then
    echo "bench/service-cost.sh: needs root and cgroup v1's cpuacct at $cpuacct" >&2
    exit 1
fi

source bench/lib.sh
groups=$cpuacct/lbf-service-cost-$$
finish() {
    cleanup
    git worktree remove --force "$work/before-src" 2>/dev/null || true
    # The services are gone once cleanup has killed them; an emptied cgroup can be removed.
    for group in "$groups"/*/; do rmdir "$group" 2>/dev/null || true; done
    rmdir "$groups" 2>/dev/null || true
}
trap finish EXIT

cargo build --quiet --release --bin lb-feedback-service --example bench_helper
helper=$PWD/target/release/examples/bench_helper
after=$PWD/target/release/lb-feedback-service
git worktree add --quiet --detach "$work/before-src" "$rev"
(cd "$work/before-src" && CARGO_TARGET_DIR=$OLDPWD/target/service-cost \
    cargo build --quiet --release --bin lb-feedback-service)
before=$PWD/target/service-cost/release/lb-feedback-service

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
echo '{}' >"$work/config.json"
mkdir "$groups"

# Starts service $2 in cgroup $1 on a free loopback port; sets port and pid.
start() {
    local group=$groups/$1 binary=$2
    mkdir "$group"
    port=$(free_port)
    # The shell joins the cgroup, then becomes the service: every thread it starts is counted.
    LB_FEEDBACK_STATE_DIR=$work/state-$1 sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' \
        sh "$group" "$binary" run --listen "127.0.0.1:$port" --config "$work/config.json" \
        >/dev/null 2>>"$work/$1.log" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
        sleep 0.05
    done
    echo "bench/service-cost.sh: the $1 service did not listen on $port" >&2
    exit 1
}

start before "$before"
before_port=$port before_pid=$pid
start after "$after"
after_port=$port after_pid=$pid
targets=("127.0.0.1:$before_port" "127.0.0.1:$after_port")

usage() { cat "$groups/$1/cpuacct.usage"; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# Polls both at once; fails unless every poll was answered.
drive() {
    local out
    out=$("$helper" lines "$1" "$2" "${targets[@]}")
    if [[ $(grep -c "answered $2 of $2\$" <<<"$out") != 2 ]]; then
        echo "bench/service-cost.sh: not every poll was answered: $out" >&2
        exit 1
    fi
}

echo "lb-feedback-service, CPU seconds per 1,000 polls ($polls polls a round at $rate/s, both at once)"
echo "before: $rev ($before)"
echo "after:  $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' + changes') ($after)"
echo "placement: each in its own cpuacct cgroup under $groups (children of the root cgroup)"
drive "$rate" 200
rss_start=("$(rss "$before_pid")" "$(rss "$after_pid")")
befores=() afters=()
printf '%-8s %10s %10s %8s\n' round before after ratio
for round in $(seq "$rounds"); do
    b0=$(usage before) a0=$(usage after)
    drive "$rate" "$polls"
    b=$(((($(usage before) - b0)) * 1000 / polls)) a=$(((($(usage after) - a0)) * 1000 / polls))
    befores+=("$b") afters+=("$a")
    awk -v r="$round" -v b="$b" -v a="$a" \
        'BEGIN { printf "%-8s %10.3f %10.3f %8.2f\n", r, b / 1e9, a / 1e9, a / b }'
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
b=$(median "${befores[@]}") a=$(median "${afters[@]}")
awk -v b="$b" -v a="$a" 'BEGIN { printf "%-8s %10.3f %10.3f %8.2f\n", "median", b / 1e9, a / 1e9, a / b }'

# RSS after the warm-up, after the rounds, then after each quarter of RSS_POLLS more.
rss_before=("${rss_start[0]}" "$(rss "$before_pid")") rss_after=("${rss_start[1]}" "$(rss "$after_pid")")
for _ in 1 2 3 4; do
    drive "$rss_rate" "$((rss_polls / 4))"
    rss_before+=("$(rss "$before_pid")") rss_after+=("$(rss "$after_pid")")
done
echo "RSS in kB: after 200 polls, after $((rounds * polls + 200)), then every $((rss_polls / 4)) more at $rss_rate/s"
echo "before  ${rss_before[*]}"
echo "after   ${rss_after[*]}"
