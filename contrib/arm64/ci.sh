#!/usr/bin/env bash
# CI for the arm64 packages: cross-builds the static aarch64 binaries (docs/cross-arm64.md),
# the arm64 .deb (contrib/deb/build.sh) and the aarch64 .rpm (contrib/rpm/build.sh), lints
# both, checks that they carry the same binaries, and runs the .deb's binaries under
# qemu-user (qemu-aarch64-static: they are static, so no -L sysroot is needed):
#   1. the one-shot with the built-in defaults answers one percentage line;
#   2. a tcp monitor counts 5 real loopback connections (3 IPv4, 2 IPv6) of 10;
#   3. `lb-feedback mode drain` makes the next reply "drain", `mode normal` undoes it;
#   4. lb-feedback-service answers polls on a loopback ephemeral port, answers "drain" while
#      drained, and stops with exit code 0 on SIGTERM.
# Nothing is installed; traffic stays on loopback. The packages' scriptlets and file lists
# are checked on amd64 by contrib/rpm/ci.sh and contrib/deb/ci.sh (the same spec and
# Cargo.toml metadata).
#
# Needs (Debian 12): gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static rpm
# rpmlint lintian socat, and `rustup target add aarch64-unknown-linux-gnu`.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf 'arm64-ci: [%3d s] %s\n' "$SECONDS" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
pass() { say "ok: $*"; }

triple=aarch64-unknown-linux-gnu
qemu=qemu-aarch64-static
for tool in "$qemu" aarch64-linux-gnu-gcc rpmbuild rpmlint rpm2cpio cpio lintian dpkg-deb socat ss file; do
    command -v "$tool" >/dev/null || fail "needs $tool"
done

deb=$(LB_FEEDBACK_TARGET=$triple bash contrib/deb/build.sh)
rpm_file=$(LB_FEEDBACK_TARGET=$triple bash contrib/rpm/build.sh)
say "built $deb ($(stat -c %s "$deb") bytes), $rpm_file ($(stat -c %s "$rpm_file") bytes)"

[ "$(dpkg-deb -f "$deb" Architecture)" = arm64 ] || fail "$deb is not Architecture: arm64"
[ "$(rpm -qp --qf '%{ARCH}' "$rpm_file")" = aarch64 ] || fail "$rpm_file is not aarch64"

work=$(mktemp -d /tmp/lbf-arm64-ci.XXXXXX)
pids=()
groups=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for group in "${groups[@]}"; do kill -- "-$group" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# free_port, hold_five_connections.
. contrib/lib/connections.sh

lintian --fail-on error,warning "$deb" || fail "lintian $deb"
# rpmlint reads one rpmlintrc: the shared filters and the aarch64 one together.
cat contrib/rpm/rpmlintrc contrib/arm64/rpmlintrc >"$work/rpmlintrc"
lint=$(rpmlint -r "$work/rpmlintrc" "$rpm_file" 2>&1) || true
printf '%s\n' "$lint" | grep -q ' 0 errors, 0 warnings' || { printf '%s\n' "$lint" >&2; fail "rpmlint"; }
pass "arm64 .deb and aarch64 .rpm: lintian and rpmlint clean"

dpkg-deb -x "$deb" "$work/deb"
mkdir "$work/rpm"
rpm2cpio "$rpm_file" | (cd "$work/rpm" && cpio -idm --quiet)
bin=$work/deb/usr/bin
for prog in lb-feedback lb-feedback-service; do
    cmp -s "$bin/$prog" "$work/rpm/usr/bin/$prog" || fail "the .deb's and the .rpm's $prog differ"
    description=$(file -b "$bin/$prog")
    [[ $description == *"ARM aarch64"*"statically linked"* ]] || fail "$prog: $description"
done
pass "both packages carry the same static aarch64 binaries"

# A config of its own (built-in defaults), a state directory of its own.
echo '{}' >"$work/config.json"
export LB_FEEDBACK_CONFIG=$work/config.json LB_FEEDBACK_STATE_DIR=$work/state
run() { timeout 60 "$qemu" "$@"; }
percent_line='^[0-9]{1,3}%$'
reply_line='^(up ready )?[0-9]{1,3}%$'

# --- 1. the one-shot, built-in defaults ----------------------------------------------------
line=$(run "$bin/lb-feedback") || fail "lb-feedback under qemu: $line"
[[ $line =~ $percent_line ]] || fail "lb-feedback under qemu printed '$line'"
explain=$(run "$bin/lb-feedback" --explain) || fail "--explain under qemu: $explain"
grep -q '^mode *normal (built-in default)' <<<"$explain" || fail "no built-in mode: $explain"
grep -Eq '^cpu +busy [0-9.]+% over 1000 ms' <<<"$explain" || fail "no CPU figure: $explain"
grep -Eq '^ram +[0-9.]+ [KMG]iB of [0-9.]+ [KMG]iB in use' <<<"$explain" || fail "no RAM figure: $explain"
pass "lb-feedback (aarch64, qemu): '$line' from the built-in defaults"

# --- 2. a tcp monitor counting real connections -------------------------------------------------
tcp_port=$(free_port)
hold_five_connections "$tcp_port"
explain=$(run "$bin/lb-feedback" --tcp "$tcp_port:10" --explain) || fail "--tcp under qemu: $explain"
grep -Eq "^tcp:$tcp_port +5 of 10 established" <<<"$explain" || fail "the tcp monitor did not count 5 of 10: $explain"
line=$(run "$bin/lb-feedback" --tcp "$tcp_port:10") || fail "lb-feedback --tcp: $line"
[[ $line =~ $percent_line ]] || fail "lb-feedback --tcp printed '$line'"
pass "tcp monitor (aarch64, qemu): 5 of 10 established on $tcp_port (IPv4 and IPv6), '$line'"

# --- 3. mode -----------------------------------------------------------------------------------
run "$bin/lb-feedback" mode drain >/dev/null 2>&1 || fail "mode drain under qemu"
line=$(run "$bin/lb-feedback")
[[ $line =~ ^drain( |$) ]] || fail "after mode drain the reply is '$line'"
run "$bin/lb-feedback" mode normal >/dev/null 2>&1 || fail "mode normal under qemu"
after=$(run "$bin/lb-feedback")
[[ $after =~ $reply_line ]] || fail "after mode normal the reply is '$after'"
pass "mode drain -> '$line', mode normal -> '$after'"

# --- 4. lb-feedback-service ---------------------------------------------------------------------
probe() { timeout 20 socat -t 10 - "TCP:127.0.0.1:$1" </dev/null || true; }
"$qemu" "$bin/lb-feedback-service" run --listen 127.0.0.1:0 --verbose 2>"$work/service.log" &
service_pid=$!
pids+=("$service_pid")
for _ in $(seq 100); do
    port=$(sed -n 's/^lb-feedback-service: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/service.log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || fail "lb-feedback-service logged no listening port: $(cat "$work/service.log")"
for poll in 1 2 3; do
    reply=$(probe "$port")
    [[ $reply =~ $reply_line ]] || fail "poll $poll of lb-feedback-service: '$reply'"
done
run "$bin/lb-feedback" mode drain >/dev/null 2>&1
reply=$(probe "$port")
[[ $reply =~ ^drain( |$) ]] || fail "lb-feedback-service while drained: '$reply'"
run "$bin/lb-feedback" mode normal >/dev/null 2>&1
kill -TERM "$service_pid"
status=0
wait "$service_pid" || status=$?
[ "$status" = 0 ] || fail "lb-feedback-service exited $status on SIGTERM: $(cat "$work/service.log")"
pass "lb-feedback-service (aarch64, qemu): 3 polls on 127.0.0.1:$port, '$reply' while drained, exit 0 on SIGTERM"
say "contrib/arm64/ci.sh: $deb and $rpm_file checked"
