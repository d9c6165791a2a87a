#!/usr/bin/env bash
# What the dynamic loader costs the plain `cargo build --release` probe, and what link choices
# give: instructions (valgrind's callgrind, whole process, env -i PATH=/usr/bin:/bin) of
#   - the floor: /bin/true, C programs importing 0 to 122 of the probe's libc functions with
#     libgcc_s and libm linked or not (the cost per imported symbol and per library), a Rust
#     hello world in the release profile, with std's main and with a C main as src/main.rs has;
#   - one probe (built-in defaults: LB_FEEDBACK_CONFIG names a file holding {}, a fresh state
#     directory, the shell's own cgroup placement) of the release build as it is, and relinked
#     with each extra linker flag below.
# Results and method: docs/BENCHMARKS.md, "The plain build's loader". Needs valgrind and gcc.
#
# Usage: bench/plain-loader.sh      (about 6 minutes: one relink per flag, 35 s each here)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "bench/plain-loader.sh: needs valgrind" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo '{}' >"$work/config.json"

# Instructions of one run of "$@", env -i, stdout discarded.
count() {
    env -i PATH=/usr/bin:/bin LB_FEEDBACK_CONFIG="$work/config.json" \
        LB_FEEDBACK_STATE_DIR="$(mktemp -u -p "$work" state.XXXXXX)" \
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
        awk '/Collected :/ { n += $NF } END { print n }'
}
needed() { readelf -d "$1" | awk '/NEEDED/ { gsub(/[][]/, "", $NF); printf "%s ", $NF }'; }
imports() { nm -D --undefined-only "$1" | wc -l; }
row() { printf '%-58s %9s %8s  %s\n' "$1" "$(count "$2")" "$(imports "$2")" "$(needed "$2")"; }

release=${CARGO_TARGET_DIR:-target}/release
cargo build --quiet --release --locked --bin lb-feedback
probe=$release/lb-feedback

printf '%-58s %9s %8s  %s\n' program instructions imports NEEDED
row /bin/true /bin/true

# The probe's own libc imports, called through the GOT as rustc calls them (-fno-plt), bound at
# start (-z now), behind a branch never taken.
nm -D --undefined-only "$probe" | awk '{ print $NF }' | grep '@GLIBC' | sed 's/@.*//' |
    grep -vx 'environ\|__libc_start_main\|__cxa_finalize' >"$work/symbols"
total=$(wc -l <"$work/symbols")
for n in 0 64 "$total"; do
    {
        head -n "$n" "$work/symbols" | sed 's/.*/extern void &(void);/'
        echo 'int main(int argc, char **argv) { (void)argv; if (argc > 1000) {'
        head -n "$n" "$work/symbols" | sed 's/.*/&();/'
        echo '} return 0; }'
    } >"$work/imports.c"
    for libs in "" "-lgcc_s" "-lm" "-lgcc_s -lm"; do
        # shellcheck disable=SC2086 # libs are words
        gcc -O2 -fno-builtin -fno-plt -Wl,-z,now -o "$work/c" "$work/imports.c" -Wl,--no-as-needed $libs
        row "C, $n libc functions imported${libs:+, $libs}" "$work/c"
    done
done

# Hello world in this package's release profile, linked as build.rs links the plain build.
for entry in std C; do
    dir=$work/hello-$entry
    mkdir -p "$dir/src"
    sed -n '/^\[profile.release\]/,/^$/p' Cargo.toml >"$dir/profile"
    printf '[package]\nname = "hello"\nversion = "0.0.0"\nedition = "2024"\n\n' | cat - "$dir/profile" >"$dir/Cargo.toml"
    cp build.rs "$dir/build.rs"
    mkdir -p "$dir/contrib/windows" && touch "$dir/contrib/windows/messages.mc"
    if [ "$entry" = std ]; then
        echo 'fn main() { println!("Hello, world!"); }' >"$dir/src/main.rs"
    else
        printf '#![no_main]\n#[unsafe(no_mangle)]\nextern "C" fn main(_: i32, _: *const *const u8) -> i32 {\n    println!("Hello, world!");\n    0\n}\n' >"$dir/src/main.rs"
    fi
    cargo build --quiet --release --manifest-path "$dir/Cargo.toml" --target-dir "$work/hello-target"
    row "Rust hello world, $entry main" "$work/hello-target/release/hello"
done

row "the probe (cargo build --release)" "$probe"
for flag in -Wl,--hash-style=sysv -Wl,--hash-style=both -Wl,-O2 -Wl,-z,nodlopen -Wl,-z,lazy \
    -Wl,-z,pack-relative-relocs -no-pie; do
    cargo rustc --quiet --release --locked --bin lb-feedback -- -C "link-arg=$flag"
    row "the probe, $flag" "$probe"
done
# (cargo's fingerprint holds the extra flag: the next cargo build relinks without it.)
