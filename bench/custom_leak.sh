#!/usr/bin/env bash
# lb-feedback-service with a custom monitor whose command leaves a child running outside its
# process group ("setsid sleep 600 & echo 5", issue 20), sample_ms 200, polled every 200 ms
# for the whole run: the service's threads, descriptors and RSS at the start and the end, the
# polls answered other than with the command's 5 (90%), and the escaped children still
# running at the end.
#
# Usage: bench/custom_leak.sh [SECONDS]   (Linux; default 600; builds the release binary into
#                                          $CARGO_TARGET_DIR or target/)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh
duration=${1:-600}
cargo build --quiet --release --bin lb-feedback-service
service=${CARGO_TARGET_DIR:-target}/release/lb-feedback-service

script="setsid sleep 600 & echo \$! >> $work/escaped; echo 5"
cat >"$work/config.json" <<JSON
{"cpu": {"importance": 0}, "ram": {"importance": 0}, "recovery": "never", "sample_ms": 200,
 "state_dir": "$work/state",
 "custom": [{"name": "queue", "command": ["/bin/sh", "-c", $(printf '%s' "$script" | python3 -c 'import json, sys; print(json.dumps(sys.stdin.read()))')], "max": 50}]}
JSON
mkdir "$work/state"
env -i PATH=/usr/bin:/bin LB_FEEDBACK_CONFIG="$work/config.json" \
    "$service" run --verbose --listen 127.0.0.1:0 2>"$work/log" &
pid=$!
pids+=("$pid")
for _ in $(seq 100); do
    grep -q 'listening on' "$work/log" && break
    sleep 0.1
done
port=$(sed -n 's/.*listening on 127\.0\.0\.1://p' "$work/log" | head -1)

poll() { timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && cat <&3" 2>/dev/null || true; }
figures() {
    local threads fds rss
    threads=$(ls "/proc/$pid/task" | wc -l)
    fds=$(ls "/proc/$pid/fd" | wc -l)
    rss=$(awk '/^VmRSS/ {print $2 " " $3}' "/proc/$pid/status")
    printf '%-6s threads %s, fds %s, RSS %s\n' "$1" "$threads" "$fds" "$rss"
}

# A few windows first, so the start is the service in its working state.
for _ in $(seq 10); do poll >/dev/null; sleep 0.2; done
figures start
polls=0 failed=0
end=$((SECONDS + duration))
while ((SECONDS < end)); do
    reply=$(poll)
    polls=$((polls + 1))
    if [[ $reply != "90%" ]]; then
        failed=$((failed + 1))
        ((failed <= 5)) && echo "poll $polls answered ${reply:-nothing}"
    fi
    sleep 0.2
done
figures end
running=0
while read -r child; do
    # Only a "sleep 600" that is still that child: process ids are reused over a long run.
    [[ $(tr "\\0" " " 2>/dev/null <"/proc/$child/cmdline") == "sleep 600 " ]] && [[ $(awk "{print \$3}" "/proc/$child/stat" 2>/dev/null) != Z ]] && running=$((running + 1))
done <"$work/escaped"
echo "polls $polls in ${duration} s, failed $failed; command runs $(wc -l <"$work/escaped"), escaped children still running $running"
