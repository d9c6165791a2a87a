#!/usr/bin/env bash
# What one poll of the PACKAGED probe costs: the /usr/bin/lb-feedback inside a .deb, unpacked
# to a temporary directory (nothing is installed). The method is bench/run.sh's, so the
# figures compare with docs/BENCHMARKS.md's table:
#   instructions  valgrind --tool=callgrind, whole process, built-in defaults (CPU and RAM,
#                 a 1000 ms sample), a state directory of its own, under
#                 env -i PATH=/usr/bin:/bin LB_FEEDBACK_CONFIG=... LB_FEEDBACK_STATE_DIR=...
#                 (an inetd's environment is that small; glibc's start-up reads all of it)
#   peak RSS      /usr/bin/time -f %M, median of 7 runs, same environment
#   size          the file in the package, bytes
#
# Usage: contrib/deb/measure.sh [path/to/lb-feedback_*.deb]
#        (default: the newest target/debian/*.deb; contrib/deb/build.sh makes one)
# Needs valgrind, time (GNU /usr/bin/time), dpkg-deb, file.
set -euo pipefail
cd "$(dirname "$0")/../.."

deb=${1:-$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/lb-feedback_*.deb | head -1)}
for tool in valgrind dpkg-deb file; do
    command -v "$tool" >/dev/null || { echo "contrib/deb/measure.sh: needs $tool" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "contrib/deb/measure.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/root"
probe=$work/root/usr/bin/lb-feedback
echo '{}' >"$work/config.json"
run=(env -i PATH=/usr/bin:/bin "LB_FEEDBACK_CONFIG=$work/config.json"
    "LB_FEEDBACK_STATE_DIR=$work/state")

echo "package:      $deb"
echo "file:         $(file -b "$probe")"
echo "size:         $(stat -c %s "$probe") bytes"
instructions=$("${run[@]}" valgrind --tool=callgrind --trace-children=yes \
    --callgrind-out-file=/dev/null "$probe" 2>&1 >/dev/null |
    awk '/Collected :/ { n += $NF } END { print n }')
echo "instructions: $instructions (callgrind, one probe, default config, sample mode)"
rss=$(for _ in 1 2 3 4 5 6 7; do
    "${run[@]}" /usr/bin/time -f %M "$probe" 2>&1 >/dev/null | tail -1
done | sort -n | sed -n 4p)
echo "peak RSS:     $rss KiB (GNU time, median of 7)"
echo "reply:        $("${run[@]}" "$probe")"
