#!/usr/bin/env bash
# Writes contrib/hot-functions.txt, the order contrib/static-bins.sh asks the linker (lld's
# --symbol-ordering-file) to lay the packaged lb-feedback's code out in: every function a probe
# runs, first, side by side. The kernel maps a program's code 16 pages (64 KiB) at a time, each
# a page fault of about 10 us on a machine idle between polls (bench/cold-calls.sh); laid out
# as the compiler leaves it, a probe's code spreads over almost every 64 KiB of the 1.7 MiB,
# together it takes a few (docs/BENCHMARKS.md, "The probe's code, side by side").
#
# The functions are those callgrind sees run, by their symbol names, in an unstripped packaged
# build: probes with built-in defaults in the root, child and limited placements
# (bench/placements.sh), scope auto and host, a window probe and two since-last ones (the
# second after the counters moved), and an inetd probe answering over a TCP connection (socat)
# as xinetd runs it; then every variant glibc may pick at start-up for the CPU it runs on of
# the string functions they call (memcpy, strlen...). Most used first.
#
# Run it again when bench/guard.sh reports more page faults than bench/budgets allows: the
# names carry hashes that change with the crate's version, a renamed or moved function, and
# the Rust toolchain. Needs root, valgrind and socat; about two minutes after the build.
#
# Usage: bench/hot-order.sh
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "bench/hot-order.sh: $*" >&2
    exit 1
}
command -v valgrind >/dev/null || fail "needs valgrind"
command -v socat >/dev/null || fail "needs socat"
source bench/placements.sh
start_placements "lbf-hot-$$"

echo "building the packaged probe with its symbols (contrib/static-bins.sh)..." >&2
# The names carry a hash of the crate's build profile, so the profile stays the packages' and
# only rustc's own flag keeps the symbols.
probe=$(EXTRA_RUSTFLAGS="-C strip=none" CARGO_TARGET_DIR=target/hot-order bash contrib/static-bins.sh)/lb-feedback

echo '{}' >"$work/config.json"
runs=0
# One callgrind run of the probe in the cgroups of directories $3... with state directory $1
# and flags $2; the profile goes to $work/cg.N.
profile() {
    local state=$1 flags=$2
    shift 2
    runs=$((runs + 1))
    # shellcheck disable=SC2086 # flags are words
    in_placement "$@" -- env -i PATH=/usr/bin:/bin LB_FEEDBACK_CONFIG="$work/config.json" \
        LB_FEEDBACK_STATE_DIR="$state" valgrind --tool=callgrind --demangle=no \
        --callgrind-out-file="$work/cg.$runs" "$probe" $flags >"$work/reply" 2>"$work/err" ||
        fail "the probe failed: $(cat "$work/reply" "$work/err")"
    grep -q '%\|ready\|up\|drain' "$work/reply" || fail "no reply: $(cat "$work/reply")"
}

for placement in root child limited; do
    placement_dirs "$placement"
    for flags in "" "--scope host"; do
        profile "$(mktemp -u -p "$work" state.XXXXXX)" "$flags" "${dirs[@]}"
        state=$(mktemp -u -p "$work" state.XXXXXX)
        profile "$state" "--cpu-mode since-last $flags" "${dirs[@]}"
        sleep 0.05
        profile "$state" "--cpu-mode since-last $flags" "${dirs[@]}"
    done
done

# As xinetd runs it: the connection is stdin and stdout (socat's nofork), agent-send read.
port=$((20000 + RANDOM % 20000))
runs=$((runs + 1))
env -i PATH=/usr/bin:/bin LB_FEEDBACK_CONFIG="$work/config.json" LB_FEEDBACK_STATE_DIR="$work/inetd" \
    socat TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr \
    EXEC:"valgrind --tool=callgrind --demangle=no --callgrind-out-file=$work/cg.$runs $probe",nofork \
    2>"$work/err" &
listener=$!
for _ in $(seq 50); do
    reply=$(printf 'web\n' | socat -t 10 - TCP:127.0.0.1:$port 2>/dev/null) && break
    sleep 0.1
done
wait "$listener" || fail "the inetd probe failed: $(cat "$work/err")"
case $reply in *%* | *up* | *drain* | *ready*) ;; *) fail "no inetd reply: $reply" ;; esac

nm "$probe" | awk '{ print $NF }' >"$work/symbols"
# One name a line and nothing else: lld ignores the whole file when a line is a comment.
{
    # callgrind names a function once per file, where it first appears as fn= or cfn=.
    for n in $(seq "$runs"); do
        sed -nE 's/^c?fn=\([0-9]+\) ([^ ]+)$/\1/p' "$work/cg.$n" | sort -u
    done | sort | uniq -c | sort -k1,1nr -k2 | awk '$2 !~ /^0x/ { print $2 }' >"$work/ran"
    cat "$work/ran"
    # What glibc runs at start-up to set up the vDSO, which valgrind gives no program.
    printf '%s\n' _dl_new_object _dl_setup_hash _dl_add_to_namespace_list ___pthread_mutex_lock \
        __pthread_mutex_unlock _dl_lookup_symbol_x do_lookup_x check_match _dl_name_match_p \
        dl_vdso_vsym calloc | grep -xFf "$work/symbols" | grep -vxFf "$work/ran" || true
    # glibc's string functions are resolved at start-up to a variant for the CPU (memcpy to
    # __memcpy_avx512_unaligned_erms...); valgrind's CPU is not the one the package runs on.
    # Those of the newest CPUs first, as a server's is likely to be.
    # A family is named by a function called (strlen), its resolver (strcmp_ifunc), a variant
    # valgrind's CPU got (__memcmp_avx2_movbe); bcmp is memcmp's.
    {
        grep -v '^_' "$work/ran" | sed -e 's/_ifunc$//' -e 's/^bcmp$/memcmp/'
        sed -nE 's/^__([a-z0-9]+)_(avx|evex|sse|ssse|erms).*/\1/p' "$work/ran"
    } | sort -u | while read -r name; do
        grep -E "^__${name}_[a-z0-9_]+$" "$work/symbols" || true
    done | grep -vxFf "$work/ran" | sort -u | awk '{
        rank = 9
        if ($0 ~ /evex|avx512/) rank = 1
        else if ($0 ~ /avx2/) rank = 2
        else if ($0 ~ /avx/) rank = 3
        else if ($0 ~ /sse4|sse42/) rank = 4
        print rank, $0 }' | sort -k1,1n -k2 | cut -d' ' -f2
} >"$work/hot-functions.txt"
mv "$work/hot-functions.txt" contrib/hot-functions.txt
listed=$(wc -l <contrib/hot-functions.txt)
found=$(grep -cxFf "$work/symbols" contrib/hot-functions.txt)
echo "contrib/hot-functions.txt: $listed functions from $runs probes, $found of them in the build"
