#!/usr/bin/env bash
# Allocations per poll in lb-feedback-service against a config of agent-send profiles (1,000
# by default): the service runs under valgrind's DHAT twice, answering FEW and then MANY polls (each a
# loopback connection sending a profile's name, as HAProxy's agent-send does, and reading the
# reply), and the difference of the two runs' totals divided by MANY - FEW is the cost of one
# poll, start-up and shutdown cancelling out. Method and results: docs/BENCHMARKS.md
# ("Allocations per poll").
#
# Usage: bench/poll_allocs.sh [BINARY]   (Linux; needs valgrind and python3; a few minutes)
#   BINARY: an lb-feedback-service to measure; by default the release build of this tree.
#   FEW and MANY (environment) change the poll counts, 200 and 1200 by default; SPREAD how
#   many of the profiles the polls name in turn, 1000 by default (each profile polled from
#   127.0.0.1 is one more poller in the state directory's table, which every poll reads and
#   writes; SPREAD=1 keeps the table at one entry); PROFILES the config's profile count.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
for tool in valgrind python3; do
    command -v "$tool" >/dev/null || { echo "bench/poll_allocs.sh: needs $tool (apt-get install -y valgrind python3)" >&2; exit 1; }
done
few=${FEW:-200} many=${MANY:-1200} spread=${SPREAD:-1000} profiles=${PROFILES:-1000}

source bench/lib.sh
if (($#)); then
    service=$1
else
    cargo build --quiet --release --bin lb-feedback-service
    service=$PWD/target/release/lb-feedback-service
fi

# PROFILES profiles, each with its own TCP monitor; CPU and RAM sampled once a window (10 s, the
# longest, so the sampler's own allocations are a handful of windows in either run).
python3 - "$work/config.json" "$profiles" <<'PY'
import json, sys
count = int(sys.argv[2])
profiles = {f"p{i}": {"tcp": [{"port": 1024 + i, "max_connections": 100}]} for i in range(count)}
json.dump({"sample_ms": 10000, "profiles": profiles}, open(sys.argv[1], "w"))
PY

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Runs the service under DHAT, answers $1 polls, stops it; prints "BLOCKS BYTES" allocated.
measure() {
    local polls=$1 port out pid
    port=$(free_port)
    out=$work/dhat-$polls
    LB_FEEDBACK_STATE_DIR=$work/state-$polls valgrind --tool=dhat --dhat-out-file=/dev/null \
        --log-file="$out" "$service" run --listen "127.0.0.1:$port" --config "$work/config.json" \
        >/dev/null 2>&1 &
    pid=$!
    pids+=("$pid")
    python3 - "$port" "$polls" "$spread" <<'PY'
import socket, sys, time
port, polls, spread = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def poll(i):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(f"p{i % spread}\n".encode())
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            reply += chunk
        return reply
for _ in range(600):
    try:
        first = poll(0)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the service did not listen")
if first.startswith(b"error"):
    sys.exit(f"unexpected reply {first!r}")
for i in range(1, polls):
    poll(i)
PY
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/Total:/ { gsub(",", ""); print $6, $3 }' "$out"
}

read -r few_blocks few_bytes < <(measure "$few")
read -r many_blocks many_bytes < <(measure "$many")
polls=$((many - few))
echo "service: $service"
echo "$few polls: $few_blocks allocations, $few_bytes bytes"
echo "$many polls: $many_blocks allocations, $many_bytes bytes"
awk -v b=$((many_blocks - few_blocks)) -v y=$((many_bytes - few_bytes)) -v n=$polls \
    -v s="$spread" -v p="$profiles" 'BEGIN { printf "per poll (%d-profile config, %d profiles polled): %.1f allocations, %.0f bytes\n", p, s, b / n, y / n }'
