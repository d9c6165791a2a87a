#!/usr/bin/env bash
# Steady steering's figures: (1) what the steady-steering memory (file `steady`: hysteresis and
# smoothing) costs a probe, in instructions (callgrind, whole process) per real loopback poll
# through systemd-socket-activate --inetd, for a TCP-only config without a threshold (the
# memory is not touched), with a threshold (hysteresis: one entry read and written under its
# lock), and with smoothing too; (2) the DRAIN/UP transitions a real HAProxy logs for a TCP load
# hovering at its threshold for 40 s, with the defaults and with hysteresis 0 (the rule before),
# by running that end-to-end test (tests/e2e_haproxy.rs). Results: docs/BENCHMARKS.md
# ("Steady steering").
#
# Usage: bench/steady.sh [ROUNDS]   (Linux; ROUNDS of the 40 s scenario, default 1; needs
#                                    valgrind, socat, systemd, haproxy)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-1}
for tool in valgrind socat systemd-socket-activate haproxy; do
    command -v "$tool" >/dev/null || { echo "bench/steady.sh: $tool is missing" >&2; exit 1; }
done

source bench/lib.sh
build_static

# A held loopback load on a port of its own: 5 established connections.
python3 - "$work/port" <<'PY' &
import socket, sys, time
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
open(sys.argv[1], "w").write(str(listener.getsockname()[1]))
held = []
for _ in range(5):
    client = socket.create_connection(listener.getsockname())
    held.append((client, listener.accept()[0]))
time.sleep(3600)
PY
pids+=($!)
while [[ ! -s $work/port ]]; do sleep 0.05; done
load_port=$(cat "$work/port")

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Median instructions of 5 polls of a callgrind-run probe with the config JSON $1.
instructions() {
    local name=$1 config=$2 port
    echo "$config" >"$work/$name.json"
    port=$(free_port)
    systemd-socket-activate -a --inetd -l "127.0.0.1:$port" \
        -E "LB_FEEDBACK_CONFIG=$work/$name.json" -E "LB_FEEDBACK_STATE_DIR=$work/state-$name" \
        valgrind --tool=callgrind --callgrind-out-file=/dev/null --log-file="$work/vg-$name.%p" \
        "$probe" >/dev/null 2>>"$work/inetd-$name.log" &
    pids+=($!)
    until grep -q "Listening on" "$work/inetd-$name.log" 2>/dev/null; do sleep 0.05; done
    # The first poll creates the state directory and files; the next five are measured.
    socat -t 5 - "TCP:127.0.0.1:$port" </dev/null >/dev/null
    sleep 0.5
    rm -f "$work"/vg-"$name".*
    for _ in 1 2 3 4 5; do reply=$(socat -t 5 - "TCP:127.0.0.1:$port" </dev/null); done
    sleep 0.5
    printf '%-34s %12s  (%s)\n' "$name" \
        "$(cat "$work"/vg-"$name".* | awk '/Collected :/ { print $NF }' | sort -n | sed -n 3p)" \
        "${reply%$'\n'}"
}

tcp='"cpu": {"importance": 0}, "ram": {"importance": 0}'
echo "instructions per poll (median of 5), TCP monitor on a port with 5 of 10 established:"
instructions no-threshold "{$tcp, \"tcp\": [{\"port\": $load_port, \"max_connections\": 10}]}"
instructions threshold-95 "{$tcp, \"tcp\": [{\"port\": $load_port, \"max_connections\": 10, \"threshold\": 95}]}"
instructions threshold-95+smoothing-10 "{$tcp, \"smoothing_seconds\": 10, \"tcp\": [{\"port\": $load_port, \"max_connections\": 10, \"threshold\": 95}]}"

echo
echo "DRAIN/UP transitions in 40 s of a TCP load hovering at its threshold (real HAProxy):"
for round in $(seq "$rounds"); do
    LB_FEEDBACK_E2E=1 cargo test --quiet --release --test e2e_haproxy \
        a_load_hovering_at_its_threshold -- --nocapture 2>&1 | grep '^over 40 s' |
        sed "s/^/round $round: /"
done
