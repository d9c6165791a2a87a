#!/usr/bin/env bash
# What each custom monitor source costs one probe (issue 12): the agent process's own
# instructions (callgrind, whole process; the command a source runs is a process of its own
# and not counted) and the wall time of a whole probe (median of 21), for a config with CPU
# and RAM off and nothing else, then with one source of each kind. The HTTP source is served
# on 127.0.0.1 by python3's http.server, the file is in a temporary directory.
#
# Usage: bench/custom.sh           (Linux; needs valgrind and python3; builds the release
#                                   binary into $CARGO_TARGET_DIR or target/)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
for tool in valgrind python3; do
    command -v "$tool" >/dev/null || { echo "bench/custom.sh: needs $tool" >&2; exit 1; }
done
cargo build --quiet --release --bin lb-feedback
binary=${CARGO_TARGET_DIR:-target}/release/lb-feedback

work=$(mktemp -d)
server=
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
printf '30\n' >"$work/queue-depth"
printf '{"load": 20}' >"$work/load"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work" "$port" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null && break
    sleep 0.1
done

base='"cpu": {"importance": 0}, "ram": {"importance": 0}, "recovery": "never"'
cases=(
    "none|[]"
    "command|[{\"name\": \"c\", \"command\": [\"/bin/echo\", \"20\"], \"max\": 50}]"
    "file|[{\"name\": \"f\", \"file\": \"$work/queue-depth\", \"max_age_seconds\": 30}]"
    "http|[{\"name\": \"h\", \"http\": \"http://127.0.0.1:$port/load\", \"json_pointer\": \"/load\"}]"
    "all three|[{\"name\": \"c\", \"command\": [\"/bin/echo\", \"20\"], \"max\": 50}, {\"name\": \"f\", \"file\": \"$work/queue-depth\"}, {\"name\": \"h\", \"http\": \"http://127.0.0.1:$port/load\", \"json_pointer\": \"/load\"}]"
)

printf '| %s | %s | %s | %s |\n' sources reply instructions "wall (ms, median of 21)"
echo "|---|---|---|---|"
for case in "${cases[@]}"; do
    name=${case%%|*} custom=${case#*|}
    printf '{%s, "custom": %s}' "$base" "$custom" >"$work/config.json"
    run=(env -i PATH=/usr/bin:/bin "LB_FEEDBACK_CONFIG=$work/config.json"
        "LB_FEEDBACK_STATE_DIR=$work/state" LB_FEEDBACK_SAMPLE_MS=1000)
    reply=$("${run[@]}" "$binary")
    instructions=$("${run[@]}" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$binary" 2>&1 >/dev/null | awk '/Collected :/ { print $NF }')
    wall=$(for _ in $(seq 21); do
        start=$(date +%s%N)
        "${run[@]}" "$binary" >/dev/null
        echo $((($(date +%s%N) - start) / 1000))
    done | sort -n | sed -n 11p)
    printf '| %s | `%s` | %s | %s |\n' "$name" "$reply" "$instructions" \
        "$(awk -v us="$wall" 'BEGIN { printf "%.2f", us / 1000 }')"
done
