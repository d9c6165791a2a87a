#!/usr/bin/env bash
# What the poller table costs a probe: instructions (callgrind, whole process) and wall time
# per poll, with 1 and with 1,000 pollers in the table, each poll a real loopback connection
# handed over by systemd-socket-activate --inetd (the model of the Accept=yes socket unit), as
# HAProxy's would be. Method and results: docs/BENCHMARKS.md ("The poller table").
#
# Usage: bench/pollers.sh          (Linux; about a minute; needs valgrind, socat, systemd)
#
# Builds the static release probe itself (as bench/run.sh does). Loopback only: 1,000 source
# addresses in 127.1.0.0/16 play 1,000 load balancers, one connection each.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
missing=()
command -v valgrind >/dev/null || missing+=(valgrind)
command -v socat >/dev/null || missing+=(socat)
command -v systemd-socket-activate >/dev/null || missing+=(systemd)
if ((${#missing[@]})); then
    echo "bench/pollers.sh: missing tools; install them with: apt-get install -y ${missing[*]}" >&2
    exit 1
fi

source bench/lib.sh
build_static

# The instructions are for the shipped defaults (a one-second CPU sample); the wall time is
# for a config that samples nothing, so the table's part is not lost in that second.
echo '{}' >"$work/default.json"
echo '{"cpu": {"importance": 0}, "ram": {"importance": 0}}' >"$work/fast.json"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# An inetd on a free port running "$@" per connection with config $1's settings; sets $port.
serve() {
    local config=$1
    shift
    port=$(free_port)
    systemd-socket-activate -a --inetd -l "127.0.0.1:$port" \
        -E "LB_FEEDBACK_CONFIG=$config" -E "LB_FEEDBACK_STATE_DIR=$work/state" \
        "$@" >/dev/null 2>>"$work/inetd.log" &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q "Listening on 127.0.0.1:$port" "$work/inetd.log" 2>/dev/null && return
        sleep 0.05
    done
    echo "bench/pollers.sh: systemd-socket-activate did not listen on $port" >&2
    exit 1
}

# One poll of port $1 from source address $2; prints the reply.
poll() { socat -t 5 - "TCP:127.0.0.1:$1,bind=$2" </dev/null; }

serve "$work/fast.json" "$probe"
fast=$port
serve "$work/default.json" valgrind --tool=callgrind \
    --callgrind-out-file=/dev/null --log-file="$work/vg.%p" "$probe"
counted=$port

# Median of 5 polls' instructions from 127.0.0.1.
instructions() {
    rm -f "$work"/vg.*
    for _ in 1 2 3 4 5; do poll "$counted" 127.0.0.1 >/dev/null; done
    sleep 0.5
    cat "$work"/vg.* | awk '/Collected :/ { print $NF }' | sort -n | sed -n 3p
}

# Instructions of the next single poll from 127.0.0.1.
one_poll() {
    rm -f "$work"/vg.*
    poll "$counted" 127.0.0.1 >/dev/null
    sleep 0.5
    cat "$work"/vg.* | awk '/Collected :/ { print $NF }'
}

# Milliseconds per poll over 200 sequential polls from 127.0.0.1 (socat's start included).
wall() {
    local start end
    start=$(date +%s%N)
    for _ in $(seq 200); do poll "$fast" 127.0.0.1 >/dev/null; done
    end=$(date +%s%N)
    awk -v ns="$((end - start))" 'BEGIN { printf "%.2f", ns / 200 / 1e6 }'
}

# One poller: 127.0.0.1, polled until it is owed nothing (steady state).
for _ in 1 2 3 4; do poll "$fast" 127.0.0.1 >/dev/null; done
sleep 10
poll "$fast" 127.0.0.1 >/dev/null
one_i=$(instructions)
one_w=$(wall)
one_size=$(stat -c %s "$work/state/pollers")

# 999 more, each from its own address.
for i in $(seq 999); do
    poll "$fast" "127.1.$((i / 200)).$((i % 200 + 1))" >/dev/null
done
count=$(($(wc -l <"$work/state/pollers") - 1))
thousand_i=$(instructions)
thousand_w=$(wall)
thousand_size=$(stat -c %s "$work/state/pollers")

# A change of what 127.0.0.1 is told (normal -> drain by the mode), which appends to the
# history, full by now (1,000 first polls made 1,000 events; it keeps 500).
mode() {
    env -i PATH=/usr/bin:/bin "LB_FEEDBACK_CONFIG=$work/default.json" \
        "LB_FEEDBACK_STATE_DIR=$work/state" "$probe" mode "$1" >/dev/null
}
events=$(($(wc -l <"$work/state/history") - 1))
mode drain
change_i=$(one_poll)
steady_i=$(one_poll)
mode normal

# For comparison: the same probe by hand, which reads and writes no table.
by_hand=$(env -i PATH=/usr/bin:/bin "LB_FEEDBACK_CONFIG=$work/default.json" \
    "LB_FEEDBACK_STATE_DIR=$work/state" valgrind --tool=callgrind \
    --callgrind-out-file=/dev/null "$probe" 2>&1 >/dev/null | awk '/Collected :/ { print $NF }')

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
echo
echo "| pollers in the table | table size | instructions per poll (median of 5) | wall time per poll, no sample (mean of 200) |"
echo "|---|---|---|---|"
echo "| 1 | $one_size bytes | $one_i | $one_w ms |"
echo "| $count | $thousand_size bytes | $thousand_i | $thousand_w ms |"
echo
echo "by hand (no table, no socket), same binary and defaults: $by_hand instructions"
echo
echo "history ($events events, the ring full): a poll that changes what it is told (normal -> drain) $change_i instructions; the next, unchanged, $steady_i"
