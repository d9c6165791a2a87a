#!/usr/bin/env bash
# One since-last probe against /bin/true, wall time, in the same run (issue 21's target:
# at most 1.2 times): hyperfine without a shell, ROUNDS rounds of 200 runs each of the
# packaged probe (contrib/static-bins.sh) with `--cpu-mode since-last` and of /bin/true,
# 20 ms between runs so the kernel's CPU counters move (a probe that finds them unchanged
# samples instead), built-in defaults, a state directory of its own, env -i as an inetd runs
# it. Prints each round's medians and ratio, and the median ratio with its verdict.
# Results: docs/BENCHMARKS.md ("The cost guard and its budgets").
#
# Usage: bench/since_last.sh [ROUNDS]   (default 3; needs hyperfine)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-3}
command -v hyperfine >/dev/null || { echo "bench/since_last.sh: hyperfine is missing" >&2; exit 1; }

source bench/lib.sh
build_static

echo '{}' >"$work/config.json"
# hyperfine itself runs in the small environment, so both commands start with it and neither
# pays for an `env` in front.
clean_env=(env -i PATH=/usr/bin:/bin "LB_FEEDBACK_CONFIG=$work/config.json"
    "LB_FEEDBACK_STATE_DIR=$work/state")
# The first probe creates the state directory and samples; the ones measured compare.
"${clean_env[@]}" "$probe" --cpu-mode since-last >/dev/null

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
ratios=()
for round in $(seq "$rounds"); do
    "${clean_env[@]}" hyperfine -N --style none --warmup 5 --runs 200 --prepare "sleep 0.02" \
        --export-csv "$work/h.csv" "$probe --cpu-mode since-last" /bin/true >/dev/null
    mapfile -t t < <(awk -F, 'NR > 1 { print $4 }' "$work/h.csv")
    ratio=$(awk -v p="${t[0]}" -v b="${t[1]}" 'BEGIN { printf "%.2f", p / b }')
    ratios+=("$ratio")
    awk -v r="$round" -v p="${t[0]}" -v b="${t[1]}" -v q="$ratio" \
        'BEGIN { printf "round %d: since-last %.3f ms, /bin/true %.3f ms: %s x\n", r, p * 1000, b * 1000, q }'
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
verdict=MISSED
if awk -v m="$median" 'BEGIN { exit !(m <= 1.2) }'; then verdict=met; fi
echo "since-last / /bin/true, median of $rounds rounds: $median (target <= 1.2): $verdict"
