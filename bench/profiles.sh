#!/usr/bin/env bash
# The measurements behind Cargo.toml's [profile.release] and the static build: one probe's
# instructions (callgrind, whole process, default config, sample mode), its peak RSS and the
# binary's size, for each build variant. The variants override the profile through cargo's
# CARGO_PROFILE_RELEASE_* variables, so Cargo.toml is not touched; each builds into
# target/bench-profiles/NAME (about a minute each the first time).
#
# Usage: bench/profiles.sh          (Linux; needs valgrind and /usr/bin/time, like run.sh)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
for tool in valgrind /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/profiles.sh: needs $tool (apt-get install -y valgrind time)" >&2; exit 1; }
done

host=$(rustc -vV | sed -n 's/^host: //p')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo '{}' >"$work/config.json"
clean_env=(env -i PATH=/usr/bin:/bin "LB_FEEDBACK_CONFIG=$work/config.json"
    "LB_FEEDBACK_STATE_DIR=$work/state")

# name, then KEY=VALUE settings: LINK=static|dynamic, RUSTFLAGS extra, and profile keys.
variants=(
    "dynamic-cargo-defaults LINK=dynamic OPT_LEVEL=3 LTO=false CODEGEN_UNITS=16 STRIP=false"
    "dynamic-as-configured LINK=dynamic"
    "static-cargo-defaults LINK=static OPT_LEVEL=3 LTO=false CODEGEN_UNITS=16 STRIP=false"
    "static-as-configured LINK=static"
    "static-unstripped LINK=static STRIP=false"
    "static-panic-abort LINK=static PANIC=abort"
    "static-thin-lto LINK=static LTO=thin"
    "static-opt-2 LINK=static OPT_LEVEL=2"
    "static-opt-3 LINK=static OPT_LEVEL=3"
    "static-opt-z LINK=static OPT_LEVEL=z"
    "static-non-pie LINK=static EXTRA=-Crelocation-model=static"
)

printf '| %s | %s | %s | %s |\n' variant instructions "peak RSS (KiB, median of 7)" "size (bytes)"
echo "|---|---|---|---|"
for variant in "${variants[@]}"; do
    read -r name settings <<<"$variant"
    link=dynamic extra="" profile=()
    for setting in $settings; do
        key=${setting%%=*} value=${setting#*=}
        case $key in
            LINK) link=$value ;;
            EXTRA) extra=$value ;;
            *) profile+=("CARGO_PROFILE_RELEASE_$key=$value") ;;
        esac
    done
    flags=$extra
    [[ $link == static ]] && flags="-C target-feature=+crt-static $extra"
    env "${profile[@]}" CARGO_TARGET_DIR="target/bench-profiles/$name" RUSTFLAGS="$flags" \
        cargo build --quiet --release --target "$host" --bin lb-feedback
    binary=target/bench-profiles/$name/$host/release/lb-feedback
    instructions=$("${clean_env[@]}" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$binary" 2>&1 >/dev/null | awk '/Collected :/ { print $NF }')
    rss=$(for _ in 1 2 3 4 5 6 7; do
        "${clean_env[@]}" LB_FEEDBACK_SAMPLE_MS=100 /usr/bin/time -f %M "$binary" 2>&1 >/dev/null | tail -1
    done | sort -n | sed -n 4p)
    printf '| %s | %s | %s | %s |\n' "$name" "$instructions" "$rss" "$(stat -c %s "$binary")"
done
