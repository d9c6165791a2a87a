#!/usr/bin/env bash
# The packages' sizes and what one poll of the arm64 probe costs under qemu-user.
#   sizes   each package built by contrib/deb/build.sh and contrib/rpm/build.sh for amd64
#           and arm64, in bytes, and the probe inside
#   arm64   the .deb's aarch64 /usr/bin/lb-feedback run by qemu-aarch64-static: wall time
#           and CPU time (user + sys, GNU time) per probe, mean of RUNS (default 20), with
#           the built-in defaults (CPU and RAM, a 1000 ms sample) and with --sample-ms 100;
#           the amd64 .deb's probe natively beside it. EMULATED: qemu translates every
#           instruction, so these say what CI's emulation costs, not what an arm64 host
#           spends. callgrind cannot run an aarch64 binary on amd64 (valgrind runs the host's
#           instruction set only), so there is no instruction count for arm64.
# Needs the cross toolchain of docs/cross-arm64.md, rpmbuild, qemu-user-static, time.
# Usage: bench/packages.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
[ -x /usr/bin/time ] || { echo "bench/packages.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
source bench/lib.sh

deb_amd64=$(bash contrib/deb/build.sh 2>/dev/null)
rpm_amd64=$(bash contrib/rpm/build.sh 2>/dev/null)
deb_arm64=$(LB_FEEDBACK_TARGET=aarch64-unknown-linux-gnu bash contrib/deb/build.sh 2>/dev/null)
rpm_arm64=$(LB_FEEDBACK_TARGET=aarch64-unknown-linux-gnu bash contrib/rpm/build.sh 2>/dev/null)
for package in "$deb_amd64" "$rpm_amd64" "$deb_arm64" "$rpm_arm64"; do
    printf '%-48s %9d bytes\n' "$(basename "$package")" "$(stat -c %s "$package")"
done

dpkg-deb -x "$deb_amd64" "$work/amd64"
dpkg-deb -x "$deb_arm64" "$work/arm64"
for arch in amd64 arm64; do
    printf '%-48s %9d bytes\n' "$arch /usr/bin/lb-feedback" "$(stat -c %s "$work/$arch/usr/bin/lb-feedback")"
done

echo '{}' >"$work/config.json"
# Prints "wall_ms cpu_ms" per probe: $runs probes of COMMAND... one after the other under
# one GNU time (whose CPU figures, of the waited-for children, tick in 10 ms), divided by
# $runs; each probe has a fresh state directory (a first poll, as bench/run.sh measures).
per_poll() {
    env -i PATH=/usr/bin:/bin "LB_FEEDBACK_CONFIG=$work/config.json" "STATE=$work/state.$RANDOM" \
        /usr/bin/time -f '%e %U %S' sh -c \
        'for i in $(seq '"$runs"'); do LB_FEEDBACK_STATE_DIR=$STATE/$i "$@" >/dev/null; done' sh "$@" \
        2>&1 | tail -1 | awk -v n="$runs" '{ printf "%.1f %.1f\n", $1 * 1000 / n, ($2 + $3) * 1000 / n }'
}
printf '%-48s %10s %10s\n' "probe, mean of $runs" "wall ms" "CPU ms"
for sample in 1000 100; do
    read -r wall cpu < <(per_poll "$work/amd64/usr/bin/lb-feedback" --sample-ms "$sample")
    printf '%-48s %10s %10s\n' "amd64 native, sample $sample ms" "$wall" "$cpu"
    read -r wall cpu < <(per_poll qemu-aarch64-static "$work/arm64/usr/bin/lb-feedback" --sample-ms "$sample")
    printf '%-48s %10s %10s\n' "arm64 under qemu (EMULATED), sample $sample ms" "$wall" "$cpu"
done
