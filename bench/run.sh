#!/usr/bin/env bash
# Every figure of issue 5's targets, measured side by side with /bin/true (the floor of
# starting a process), `sleep 1` (the floor of a one-second sample) and the seed's shell agent
# (`vmstat 1 2 | tail -1 | awk '{print $15"%"}'`). Method and results: docs/BENCHMARKS.md.
#
# Usage: bench/run.sh            (from anywhere in a clone; Linux, about three minutes)
#
# Builds the release binaries itself: the static build that the figures are for (glibc linked
# in, RUSTFLAGS="-C target-feature=+crt-static" with an explicit --target, which is how they
# are meant to be shipped) and, for comparison, the plain `cargo build --release` that
# `cargo run --release` and `cargo install` give. Installs nothing: it names the Debian
# packages of any tool that is missing and stops.
#
# Loopback only: 20,000 connections to two ports on 127.0.0.1, held by child processes of
# examples/bench_helper.rs, and lb-feedback-service on a free 127.0.0.1 port.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $(uname -s) != Linux ]]; then
    echo "bench/run.sh: Linux only (it reads /proc and runs callgrind)" >&2
    exit 1
fi
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v valgrind >/dev/null || missing+=(valgrind)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v ss >/dev/null || missing+=(iproute2)
command -v vmstat >/dev/null || missing+=(procps)
command -v awk >/dev/null || missing+=(gawk)
if ((${#missing[@]})); then
    echo "bench/run.sh: missing tools; install them with:" >&2
    echo "    apt-get install -y ${missing[*]}" >&2
    exit 1
fi
command -v cargo >/dev/null || { echo "bench/run.sh: needs cargo (https://rustup.rs)" >&2; exit 1; }

source bench/lib.sh
echo "== building (static: --target $(rustc -vV | sed -n 's/^host: //p') with +crt-static; dynamic: plain --release)"
build_static
cargo build --quiet --release --bins --example bench_helper
service=$PWD/target/$host/release/lb-feedback-service
dynamic=$PWD/target/release/lb-feedback
helper=$PWD/target/release/examples/bench_helper

echo '{}' >"$work/config.json"
# Default settings; a state directory of our own; the environment an inetd gives (tiny): the
# same for every command compared, since glibc's start-up scans it.
export LB_FEEDBACK_CONFIG=$work/config.json LB_FEEDBACK_STATE_DIR=$work/state
clean_env=(env -i PATH=/usr/bin:/bin "LB_FEEDBACK_CONFIG=$LB_FEEDBACK_CONFIG"
    "LB_FEEDBACK_STATE_DIR=$LB_FEEDBACK_STATE_DIR")
# shellcheck disable=SC2016 # $15 is awk's, not the shell's
seed='vmstat 1 2 | tail -1 | awk '"'"'{print $15"%"}'"'"

echo "== machine"
machine="$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
echo "$machine"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- helpers -----------------------------------------------------------------------------

# Instructions of a whole command, every process it starts included (callgrind).
instructions() {
    "${clean_env[@]}" valgrind --tool=callgrind --trace-children=yes \
        --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
        awk '/Collected :/ { n += $NF } END { print n }'
}

# Median peak RSS in KiB over 7 runs (GNU time reports the largest of a process and the
# children it waited for, so a pipeline's figure is its largest process).
peak_rss() {
    for _ in 1 2 3 4 5 6 7; do
        "${clean_env[@]}" /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1
    done | sort -n | sed -n 4p
}

# hyperfine, then "median_seconds" per command from its CSV, one per line.
medians() {
    hyperfine --style none --export-csv "$work/h.csv" "$@" >/dev/null
    awk -F, 'NR > 1 { print $4 }' "$work/h.csv"
}

# Sets $busy and $total, the jiffies of all CPUs, with no process started (so no delay).
stat_now() {
    local user nice system idle iowait irq softirq steal rest
    read -r _ user nice system idle iowait irq softirq steal rest </proc/stat
    busy=$((user + nice + system + irq + softirq + steal))
    total=$((busy + idle + iowait))
}

busy_between() { # busy1 total1 busy2 total2
    awk -v b1="$1" -v t1="$2" -v b2="$3" -v t2="$4" 'BEGIN { printf "%.1f", (b2 - b1) * 100 / (t2 - t1) }'
}

kb() { awk -v n="$1" 'BEGIN { printf "%.2f MB", n * 1024 / 1e6 }'; }
ki() { awk -v n="$1" 'BEGIN { printf "%.0f k", n / 1000 }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.2f ms", s * 1000 }'; }
verdict() { awk "BEGIN { exit !($1) }" && echo met || echo MISSED; }

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); }

# --- start-up cost: instructions, peak RSS, size ---------------------------------------------

echo "== instructions per probe (callgrind, whole process, default config, sample mode)"
i_probe=$(instructions "$probe")
i_dynamic=$(instructions "$dynamic")
i_true=$(instructions /bin/true)
i_sleep=$(instructions sleep 1)
i_seed=$(instructions sh -c "$seed")
echo "static $i_probe, dynamic $i_dynamic, /bin/true $i_true, sleep 1 $i_sleep, seed $i_seed"

echo "== peak RSS (/usr/bin/time -v, median of 7)"
r_probe=$(peak_rss "$probe")
r_dynamic=$(peak_rss "$dynamic")
r_true=$(peak_rss /bin/true)
r_sleep=$(peak_rss sleep 1)
r_seed=$(peak_rss sh -c "$seed")
echo "static $r_probe KiB, dynamic $r_dynamic KiB, /bin/true $r_true KiB, sleep 1 $r_sleep KiB, seed $r_seed KiB"

s_probe=$(stat -c %s "$probe")
s_dynamic=$(stat -c %s "$dynamic")
echo "== stripped size: static $s_probe bytes, dynamic $s_dynamic bytes"

row "instructions per probe" "≤ 200 k (stretch: < /bin/true)" \
    "$(ki "$i_probe") (plain cargo build: $(ki "$i_dynamic"))" \
    "/bin/true $(ki "$i_true"), sleep 1 $(ki "$i_sleep"), seed $(ki "$i_seed")" \
    "$(verdict "$i_probe <= 200000"); stretch $(verdict "$i_probe < $i_true")"
row "peak RSS" "≤ 1.5 MB" "$(kb "$r_probe") (plain: $(kb "$r_dynamic"))" \
    "/bin/true $(kb "$r_true"), sleep 1 $(kb "$r_sleep"), seed $(kb "$r_seed")" \
    "$(verdict "$r_probe * 1024 <= 1500000")"
row "stripped binary" "≤ 1.5 MiB" \
    "$(awk -v n="$s_probe" 'BEGIN { printf "%.2f MiB", n / 1048576 }') (plain: $(awk -v n="$s_dynamic" 'BEGIN { printf "%.2f MiB", n / 1048576 }'))" \
    "—" "$(verdict "$s_probe <= 1572864")"

# --- wall time ---------------------------------------------------------------------------------

echo "== overhead beyond the sample window (hyperfine, 10 runs each)"
mapfile -t t < <(medians -N --warmup 1 --runs 10 "$probe" "sleep 1")
overhead=$(awk -v p="${t[0]}" -v s="${t[1]}" 'BEGIN { print (p / s - 1) * 1 }')
echo "probe ${t[0]} s, sleep 1 ${t[1]} s"
row "overhead beyond the sample window" "≤ 1 ms" "$(ms "$overhead") (probe $(ms "${t[0]}"))" \
    "sleep 1 $(ms "${t[1]}")" "$(verdict "$overhead <= 0.001")"

echo "== since-last wall time vs /bin/true (hyperfine; 20 ms between runs so the counters move)"
"$probe" --cpu-mode since-last >/dev/null
sleep 0.05
how=$("$probe" --cpu-mode since-last --explain | sed -n 's/^cpu *\(busy.* ago\) .*/\1/p')
echo "a since-last probe 50 ms after another says: ${how:-(no since-last figure)}"
mapfile -t t < <(medians -N --warmup 5 --runs 200 --prepare "sleep 0.02" \
    "$probe --cpu-mode since-last" /bin/true)
ratio=$(awk -v p="${t[0]}" -v b="${t[1]}" 'BEGIN { printf "%.2f", p / b }')
echo "since-last ${t[0]} s, /bin/true ${t[1]} s: ${ratio}x"
row "since-last wall" "≤ 1.5 × /bin/true" "$(ms "${t[0]}") = ${ratio} × /bin/true" \
    "/bin/true $(ms "${t[1]}")" "$(verdict "$ratio <= 1.5")"

# --- CPU accuracy ------------------------------------------------------------------------------

echo "== CPU accuracy, one core of $(nproc) kept busy"
sh -c 'while :; do :; done' &
pids+=($!)
sleep 1
worst_since=0 worst_sample=0 since_pairs="" sample_pairs=""
"$probe" --cpu-mode since-last >/dev/null
for _ in 1 2 3 4 5; do
    stat_now; b0=$busy t0=$total
    sleep 2 # HAProxy's default agent-inter
    stat_now; b1=$busy t1=$total
    got=$("$probe" --cpu-mode since-last --explain | sed -n 's/^cpu *busy \([0-9.]*\)% since.*/\1/p')
    truth=$(busy_between "$b0" "$t0" "$b1" "$t1")
    since_pairs+=" ${got:-none}/$truth"
    worst_since=$(awk -v g="${got:--1000}" -v t="$truth" -v w="$worst_since" \
        'BEGIN { d = g - t; if (d < 0) d = -d; print (d > w ? d : w) }')
done
for _ in 1 2 3 4 5; do
    stat_now; b0=$busy t0=$total
    got=$("$probe" --explain | sed -n 's/^cpu *busy \([0-9.]*\)% over.*/\1/p')
    stat_now; b1=$busy t1=$total
    truth=$(busy_between "$b0" "$t0" "$b1" "$t1")
    sample_pairs+=" ${got:-none}/$truth"
    worst_sample=$(awk -v g="${got:--1000}" -v t="$truth" -v w="$worst_sample" \
        'BEGIN { d = g - t; if (d < 0) d = -d; print (d > w ? d : w) }')
done
kill "${pids[-1]}"
echo "since-last (probe/truth %):$since_pairs; worst ±$worst_since"
echo "sample (probe/truth %):$sample_pairs; worst ±$worst_sample"
row "since-last CPU accuracy (2 s apart)" "±3 points of /proc/stat" "worst ±$worst_since" \
    "probe/truth %:$since_pairs" "$(verdict "$worst_since <= 3")"
row "sample-mode CPU accuracy (1 s)" "±3 points of /proc/stat" "worst ±$worst_sample" \
    "probe/truth %:$sample_pairs" "$(verdict "$worst_sample <= 3")"

# --- TCP ---------------------------------------------------------------------------------------

echo "== 10,000 connections on the watched port + 10,000 on another (8 client processes)"
coproc HOLD { "$helper" hold 10000 10000 2500; }
pids+=("$HOLD_PID")
read -r ready watched other <&"${HOLD[0]}"
[[ $ready == ready ]] || { echo "bench_helper hold failed" >&2; exit 1; }
tcp_only=("$probe" --cpu-importance 0 --ram-importance 0 --tcp "$watched:20000")
ss_count=$(ss -Htn state established "( sport = :$watched )" | wc -l)
ss_other=$(ss -Htn state established "( sport = :$other )" | wc -l)
probe_count=$("${tcp_only[@]}" --explain | sed -n "s/^tcp:$watched *\([0-9]*\) of.*/\1/p")
probe_other=$("$probe" --cpu-importance 0 --ram-importance 0 --tcp "$other:20000" --explain |
    sed -n "s/^tcp:$other *\([0-9]*\) of.*/\1/p")
echo "watched :$watched probe $probe_count ss $ss_count; other :$other probe $probe_other ss $ss_other"
echo "counting in-process, median of 11:"
"$helper" paths 11 "$watched" | sed 's/^/    /'
mapfile -t t < <(medians --warmup 3 --runs 30 "${tcp_only[*]}" \
    "ss -Htn state established '( sport = :$watched )' | wc -l")
ratio=$(awk -v p="${t[0]}" -v s="${t[1]}" 'BEGIN { printf "%.2f", p / s }')
echo "tcp-only probe ${t[0]} s, ss pipeline ${t[1]} s: ${ratio}x"
hold_stdin=${HOLD[1]}
exec {hold_stdin}>&- # bench_helper lets the connections go when its stdin closes
wait "$HOLD_PID" || true
exact=$([[ $probe_count == 10000 && $probe_other == 10000 ]] && echo met || echo MISSED)
row "exact count, 10,000 + 10,000 established" "exact" \
    "$probe_count on :$watched, $probe_other on :$other" "ss: $ss_count, $ss_other" "$exact"
row "tcp-only probe wall vs ss" "≤ 0.5 × ss" "$(ms "${t[0]}") = $ratio × ss" \
    "ss -Htn … \| wc -l: $(ms "${t[1]}")" "$(verdict "$ratio <= 0.5")"

# --- the wrapper service -----------------------------------------------------------------------

echo "== 500 concurrent probes against lb-feedback-service (sample 1000 ms)"
port=0
for candidate in $(shuf -i 20000-30000 -n 20); do
    if [[ -z $(ss -Htan "( sport = :$candidate )") ]]; then port=$candidate; break; fi
done
"$service" run --listen "127.0.0.1:$port" --max-in-flight 600 --max-in-flight-per-source 600 2>"$work/service.log" &
pids+=($!)
for _ in $(seq 50); do
    [[ -n $(ss -Hltn "( sport = :$port )") ]] && break
    sleep 0.1
done
polled=$("$helper" poll "127.0.0.1:$port" 500)
kill "${pids[-1]}"
wait "${pids[-1]}" 2>/dev/null || true
echo "$polled"
answered=$(sed -n 's/^answered \([0-9]*\) of.*/\1/p' <<<"$polled")
slowest=$(sed -n 's/.*slowest \([0-9.]*\) ms.*/\1/p' <<<"$polled")
row "500 concurrent probes (lb-feedback-service)" "all answered within sample + 100 ms" \
    "$answered answered, slowest $slowest ms" "sample 1000 ms" \
    "$(verdict "$answered == 500 && $slowest <= 1100")"

# --- the table ---------------------------------------------------------------------------------

echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $machine"
echo
echo "| figure | target | lb-feedback | side by side | |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
