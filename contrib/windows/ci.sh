#!/usr/bin/env bash
# CI for the Windows binaries: cross-build both .exe with build.sh, then smoke-run them under
# Wine 8 in a private, throw-away prefix (wine-run.sh puts the Wine-only bcryptprimitives.dll
# shim in that prefix; WINEDEBUG=-all). Exits non-zero on the first failed check.
#
#   1. lb-feedback.exe --explain: CPU (GetSystemTimes), RAM and a tcp monitor on a loopback
#      port holding 3 IPv4 + 2 IPv6 established connections (GetTcpTable and GetTcp6Table
#      must count 5 of 10: Wine 8 reads the host's /proc/net/tcp*); then the plain reply is
#      one valid line.
#   2. lb-feedback-service.exe run --listen 127.0.0.1:P --http 127.0.0.1:H answers socat;
#      `lb-feedback.exe mode drain` changes the next reply and /load (102), `mode reset` undoes
#      it; /health and /metrics answer; SIGINT (Wine turns it into a console Ctrl-C) stops it
#      cleanly with exit code 0.
#   3. The Service Control Manager path: the service's own `install`, `start`, a probe,
#      `mode drain` seen by the running service, Wine's `sc query`, `stop`, `uninstall`.
#   4. The .msi (msi-check.sh): silent install with PORT/ALLOW/TCP, upgrade from an older
#      one, `mode drain` from cmd's PATH, the Event Log calls, msiexec /x.
#   5. The sessions monitor: `--sessions 50` through WTSEnumerateSessionsW (Wine 8's lists
#      none: 0 of 50, 100%).
#   6. Custom monitors: a command (cmd /c echo), a file and HTTP/JSON (python3 serves it
#      on 127.0.0.1) answer 70%; a hanging command is killed with its job object.
#   7. Steady steering: the service holds a threshold's drain until the release, through
#      the state directory's steady-steering memory (LockFileEx).
#
# Needs (Debian 12): apt-get install -y -t bookworm-security rustc-web cargo-web rust-web-src \
#   gcc-mingw-w64-x86-64 wine64 socat wixl msitools python3
# Env: KEEP_PREFIX=1 keeps the Wine prefix for a look afterwards (its path is printed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
wine_dir=/usr/lib/wine
out=${WIN_TARGET_DIR:-$repo/target/windows}/x86_64-pc-windows-gnu/release
agent=$out/lb-feedback.exe
service=$out/lb-feedback-service.exe

say() { printf 'windows-ci: [%3d s] %s\n' "$SECONDS" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
pass() { say "ok: $*"; }

command -v socat >/dev/null || fail "socat is needed (apt-get install socat)"

say "building (contrib/windows/build.sh)"
"$here/build.sh" >&2
[[ -x $agent && -x $service ]] || fail "build.sh did not produce both .exe in $out"

export WINEPREFIX=${WINEPREFIX:-$(mktemp -d /tmp/lbf-wine.XXXXXX)}
export WINEDEBUG=-all
work=$(mktemp -d /tmp/lbf-wine-work.XXXXXX)
pids=()
groups=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for group in "${groups[@]}"; do kill -- "-$group" 2>/dev/null || true; done
    # Stops services.exe and the service with it, then the server itself.
    WINEPREFIX=$WINEPREFIX "$wine_dir/wineserver" -k 2>/dev/null || true
    for pid in "${pids[@]}" "${groups[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${KEEP_PREFIX:-0} == 1 ]]; then
        say "kept $WINEPREFIX and $work"
    else
        rm -rf "$WINEPREFIX" "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
# free_port, hold_five_connections.
. "$here/../lib/connections.sh"

run() { timeout 120 "$here/wine-run.sh" "$@"; }

# The first run creates the prefix (wineboot, shim).
say "Wine prefix $WINEPREFIX"
run "$agent" --version >"$work/version" 2>&1 </dev/null || true
grep -q '^lb-feedback ' "$work/version" || fail "lb-feedback.exe does not run under Wine: $(cat "$work/version")"
# Services run only while the Wine server does: once the first server has gone (-w), start
# a persistent one (-p) that stays up between the commands below. The next run starts the
# session's own processes (services.exe, ...), which inherit its stdio and outlive it: they
# get /dev/null, or a later $(...) would wait for them forever.
"$wine_dir/wineserver" -w
"$wine_dir/wineserver" -p || fail "cannot start a persistent wineserver"
run "$agent" --version </dev/null >/dev/null 2>&1 || fail "lb-feedback.exe stopped running under Wine"

# Waits (at most 20 s) until FILE has a line matching PATTERN.
wait_for_line() {
    local file=$1 pattern=$2
    for _ in $(seq 200); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "no line matching '$pattern' in $file: $(cat "$file" 2>/dev/null)"
}

probe() { timeout 20 socat -t 10 - "TCP:127.0.0.1:$1" </dev/null || true; }
# GET PATH on port PORT: the whole response, CRs removed.
http_get() {
    printf 'GET %s HTTP/1.0\r\n\r\n' "$2" | { timeout 20 socat -t 10 - "TCP:127.0.0.1:$1" || true; } | tr -d '\r'
}

percent_line='^[0-9]{1,3}%$'
reply_line='^(up ready )?[0-9]{1,3}%$'

# --- 1. the one-shot binary: CPU, RAM, TCP ---------------------------------------------
tcp_port=$(free_port)
hold_five_connections "$tcp_port"

export LB_FEEDBACK_TCP="$tcp_port:10" LB_FEEDBACK_SAMPLE_MS=300
explain=$(run "$agent" --explain) || fail "lb-feedback.exe --explain failed: $explain"
printf '%s\n' "$explain" >&2
grep -Eq '^cpu +busy [0-9.]+% over 300 ms' <<<"$explain" || fail "no CPU figure"
grep -Eq '^ram +[0-9.]+ [KMG]iB of [0-9.]+ [KMG]iB in use' <<<"$explain" || fail "no RAM figure"
grep -Eq "^tcp:$tcp_port +5 of 10 established" <<<"$explain" \
    || fail "the TCP tables under Wine did not count the 5 connections on $tcp_port"
line=$(run "$agent") || fail "lb-feedback.exe failed: $line"
[[ $line =~ $percent_line ]] || fail "lb-feedback.exe printed '$line'"
pass "lb-feedback.exe: '$line' from CPU, RAM and 5 of 10 connections (IPv4 and IPv6)"

# --- 2. the foreground listener and `mode` ---------------------------------------------
# CPU and RAM only from here: Wine 8 reads the whole host TCP table per count, which takes
# seconds on a host with tens of thousands of sockets, and that is tested above.
unset LB_FEEDBACK_TCP
port=$(free_port)
hport=$(free_port)
timeout 120 "$here/wine-run.sh" "$service" run --listen "127.0.0.1:$port" --verbose \
    --http "127.0.0.1:$hport" 2>"$work/run.log" &
run_pid=$!
pids+=("$run_pid")
wait_for_line "$work/run.log" "listening on 127.0.0.1:$port"
wait_for_line "$work/run.log" "HTTP on 127.0.0.1:$hport"
line=$(probe "$port")
[[ $line =~ $reply_line ]] || fail "lb-feedback-service.exe run answered '$line'"
pass "lb-feedback-service.exe run: '$line'"
response=$(http_get "$hport" /health)
[[ $response == "HTTP/1.1 200 OK"*$'\n\nok' ]] || fail "/health answered '$response'"
response=$(http_get "$hport" /metrics)
grep -q '^lb_feedback_build_info{version=' <<<"$response" || fail "/metrics answered '$response'"
grep -q '^lb_feedback_polls_answered_total 1$' <<<"$response" || fail "/metrics: '$response'"
pass "HTTP /health and /metrics answer"
run "$agent" mode drain >&2 || fail "lb-feedback.exe mode drain failed"
line=$(probe "$port")
[[ $line == "drain #mode" ]] || fail "after mode drain the reply was '$line'"
pass "after lb-feedback.exe mode drain: '$line'"
response=$(http_get "$hport" /load)
[[ $response == *$'\n\n102' ]] || fail "after mode drain /load answered '$response'"
pass "after mode drain /load: 102"
run "$agent" mode reset >&2 || fail "lb-feedback.exe mode reset failed"
line=$(probe "$port")
[[ $line =~ $reply_line ]] || fail "after mode reset the reply was '$line'"
pass "after mode reset: '$line'"
# timeout's child is the Windows process (wine-run.sh execs Wine), and Wine makes SIGINT a
# console Ctrl-C event.
wine_pid=$(pgrep -P "$run_pid" | head -n 1)
[[ -n $wine_pid ]] || fail "cannot find the listener's process"
kill -INT "$wine_pid"
status=0
timeout 20 tail --pid="$run_pid" -f /dev/null || fail "the listener did not stop after Ctrl-C"
wait "$run_pid" || status=$?
((status == 0)) || fail "the listener exited with $status after Ctrl-C: $(cat "$work/run.log")"
grep -q "stopped (listened on 127.0.0.1:$port, 127.0.0.1:$hport)" "$work/run.log" ||
    fail "no clean stop logged"
pass "Ctrl-C stopped the listener cleanly (exit 0)"

# --- 3. the Service Control Manager ----------------------------------------------------
# Wine's services.exe gives services ProgramData=C:\users\Public, while a prompt has
# C:\ProgramData (on Windows both are C:\ProgramData), so the state directory is named here
# for `mode` and the service to meet; the log goes to the service's own %ProgramData%.
unset LB_FEEDBACK_SAMPLE_MS
state='C:\ProgramData\lb-feedback'
port=$(free_port)
# --service-log file: this step reads the log file (the default, the event log, is step 4's).
run "$service" install --listen "127.0.0.1:$port" --sample-ms 300 --state-dir "$state" \
    --verbose --service-log file >&2 || fail "install failed"
source_key='HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\lb-feedback'
timeout 60 "$wine_dir/wine64" reg query "$source_key" </dev/null 2>/dev/null | grep -q EventMessageFile ||
    fail "install did not register the Event Log source"
pass "install (and the Event Log source's key)"
run "$service" start >&2 || fail "start failed"
pass "start"
line=$(probe "$port")
[[ $line =~ $reply_line ]] || fail "the SCM-started service answered '$line'"
pass "probe of the SCM-started service: '$line'"
sc=$(timeout 60 "$wine_dir/wine64" sc query lb-feedback | tr -d '\r') || true
grep -q 'RUNNING' <<<"$sc" || fail "sc query does not show it running: $sc"
pass "sc query: $(grep STATE <<<"$sc" | xargs)"
run "$agent" mode drain --state-dir "$state" >&2 || fail "mode drain failed"
line=$(probe "$port")
[[ $line == "drain #mode" ]] || fail "the service did not see mode drain: '$line'"
pass "mode drain seen by the SCM-started service: '$line'"
run "$agent" mode reset --state-dir "$state" >&2 || fail "mode reset failed"
run "$service" stop >&2 || fail "stop failed"
pass "stop"
log=$(find "$WINEPREFIX/drive_c" -path '*lb-feedback/service.log' | head -n 1)
[[ -n $log ]] || fail "no service.log in the prefix"
grep -q "stopped (listened on 127.0.0.1:$port)" "$log" || fail "no clean stop in $log: $(cat "$log")"
pass "service.log ($log) shows the clean stop"
run "$service" uninstall >&2 || fail "uninstall failed"
if run "$service" start 2>/dev/null; then fail "start worked after uninstall"; fi
if timeout 60 "$wine_dir/wine64" reg query "$source_key" </dev/null 2>/dev/null | grep -q EventMessageFile; then
    fail "uninstall left the Event Log source's key"
fi
pass "uninstall (and the Event Log source's key gone)"

# --- 4. the .msi ------------------------------------------------------------------------
source "$here/msi-check.sh"

# --- 5. the sessions monitor ----------------------------------------------------------
# Wine 8.0's WTSEnumerateSessionsW is a stub ("fixme:wtsapi:WTSEnumerateSessionsW Stub" under
# WINEDEBUG=fixme+wtsapi): it succeeds and lists no session at all, not even its own. So the
# figure is exactly 0 of 50 from 0 listed, and the reply 100%; what runs here is the call,
# its success path and the figure's way to --explain, not the counting of real sessions.
sessions=$(LB_FEEDBACK_TCP= run "$agent" --cpu-importance 0 --ram-importance 0 --sessions 50 \
    --explain | tr -d '\r') || fail "lb-feedback.exe --sessions 50 --explain failed: $sessions"
printf '%s\n' "$sessions" >&2
grep -Eq '^sessions +0 of 50 \(0 active, 0 disconnected\); WTSEnumerateSessionsW: 0 listed; counted: active and disconnected, outside session 0 +0\.0 ' \
    <<<"$sessions" || fail "--sessions 50 under Wine: not the figure Wine's stub gives"
grep -q '^reply       100%$' <<<"$sessions" || fail "--sessions 50 under Wine did not reply 100%"
sessions=$(LB_FEEDBACK_TCP= run "$agent" --cpu-importance 0 --ram-importance 0 \
    --sessions 50:1:0:no --explain --json | tr -d '\r') || fail "--explain --json failed: $sessions"
grep -q '"figure": "0 of 50 active (0 disconnected not counted)"' <<<"$sessions" \
    || fail "--sessions 50:1:0:no --explain --json: $sessions"
grep -q '"source": "WTSEnumerateSessionsW: 0 listed; ' <<<"$sessions" || fail "no source: $sessions"
pass "lb-feedback.exe --sessions 50: 0 of 50 from WTSEnumerateSessionsW (Wine 8 lists none), 100%"

# --- 6. custom monitors: a command, a file and HTTP ------------------------------------
# (issue 12) cmd's echo gives 20 of 50, a file 30 of 100, JSON served from the Linux side on
# 127.0.0.1 20 of 100: a load of 30, 70%. Then a command that hangs (cmd starting a listener
# that never exits) is killed with its job at its timeout: error:hang, and nothing of it left.
winpath() { printf 'Z:%s' "${1//\//\\}"; }
custom_http=$(free_port)
python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"{\"load\": 20}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$custom_http" </dev/null >/dev/null 2>&1 &
pids+=($!)
printf '30\n' >"$work/queue-depth"
hang_port=$(free_port)
python3 - "$work" "$(winpath "$work/queue-depth")" "$custom_http" "$(winpath "$service")" "$hang_port" <<'PY'
import json, sys
work, queue, port, service, hang_port = sys.argv[1:]
base = {"cpu": {"importance": 0}, "ram": {"importance": 0}, "recovery": "never"}
ok = dict(base, custom=[
    {"name": "rds", "command": ["cmd", "/c", "echo 20"], "max": 50, "timeout_ms": 8000},
    {"name": "queue", "file": queue, "max_age_seconds": 60, "timeout_ms": 8000},
    {"name": "app", "http": f"http://127.0.0.1:{port}/load", "json_pointer": "/load", "timeout_ms": 8000},
])
flag = "Z:" + work.replace("/", "\\") + "\\hang.flag"
hang = dict(base, custom=[{"name": "hang", "timeout_ms": 4000, "command": [
    "cmd", "/c", f"echo x> {flag} && {service} run --listen 127.0.0.1:{hang_port}"]}])
json.dump(ok, open(f"{work}/custom.json", "w"))
json.dump(hang, open(f"{work}/hang.json", "w"))
PY
for _ in $(seq 50); do
    ss -Htln "( sport = :$custom_http )" | grep -q . && break
    sleep 0.1
done
line=$(run "$agent" --config "$(winpath "$work/custom.json")" </dev/null 2>"$work/custom.err" | tr -d '\r') || true
[[ $line == "70%" ]] || fail "custom monitors answered '$line': $(cat "$work/custom.err")"
pass "custom command (cmd /c echo 20), file and HTTP/JSON: '$line'"
run "$agent" --config "$(winpath "$work/custom.json")" --explain </dev/null >"$work/custom.explain" 2>&1 || true
grep -q 'rds .*20 of max 50; command \["cmd", "/c", "echo 20"\], took ' "$work/custom.explain" ||
    fail "--explain does not show the command's value: $(cat "$work/custom.explain")"
pass "--explain shows each custom value, its source and how long it took"
run "$agent" --config "$(winpath "$work/hang.json")" </dev/null >"$work/hang.out" 2>"$work/hang.err" &
hang_probe=$!
listened=0
while kill -0 "$hang_probe" 2>/dev/null; do
    ss -Htln "( sport = :$hang_port )" | grep -q . && listened=1
    sleep 0.1
done
wait "$hang_probe" || true
line=$(tr -d '\r' <"$work/hang.out")
[[ $line == "error:hang" ]] || fail "the hanging command answered '$line': $(cat "$work/hang.err")"
[[ -f $work/hang.flag ]] || fail "the hanging command never started"
((listened)) || fail "the hanging command's listener never listened on $hang_port"
sleep 1
if ss -Htln "( sport = :$hang_port )" | grep -q .; then
    fail "the hanging command's listener on $hang_port is still running"
fi
pass "a hanging command: error:hang, killed with its job (nothing listens on $hang_port)"

# --- 7. steady steering: a drain held in the state directory -----------------------------
# (issue 12) The service polled over its port (a poller, so it records): a custom file at 100
# of 100 with threshold 95 drains; at 90 the drain holds (release 85), which is the state
# directory's steady-steering memory written and read under Windows' LockFileEx; at 80 it
# ends. Each reply is waited for: the service reads the file once a 100 ms window.
steady_port=$(free_port)
printf '100\n' >"$work/gate"
printf '{"cpu": {"importance": 0}, "ram": {"importance": 0}, "recovery": "never",
  "sample_ms": 100, "custom": [{"name": "gate", "file": "%s", "threshold": 95}]}\n' \
    "$(winpath "$work/gate" | sed 's/\\/\\\\/g')" >"$work/steady.json"
timeout 120 "$here/wine-run.sh" "$service" run --verbose --listen "127.0.0.1:$steady_port" \
    --config "$(winpath "$work/steady.json")" --state-dir "$(winpath "$work/steady-state")" \
    2>"$work/steady.log" &
steady_pid=$!
pids+=("$steady_pid")
wait_for_line "$work/steady.log" "listening on 127.0.0.1:$steady_port"
# Polls until the reply is $1, for at most 10 s.
reply_becomes() {
    local line=
    for _ in $(seq 100); do
        line=$(probe "$steady_port" | tr -d '\r')
        [[ $line == "$1" ]] && return 0
        sleep 0.1
    done
    fail "the service answered '$line', not '$1': $(cat "$work/steady.log")"
}
reply_becomes "drain #gate:100>=95"
printf '90\n' >"$work/gate"
reply_becomes "drain #gate:90>85(release)"
for _ in 1 2 3; do
    line=$(probe "$steady_port" | tr -d '\r')
    [[ $line == "drain #gate:90>85(release)" ]] || fail "the held drain let go at 90: '$line'"
done
printf '80\n' >"$work/gate"
reply_becomes "20%"
pass "steady steering under Wine: drain at 100, held at 90 (release 85), 20% at 80"
kill "$steady_pid" 2>/dev/null || true

say "all Windows checks passed"
