#!/usr/bin/env bash
# Cross-build the package's Windows binaries (x86_64-pc-windows-gnu, release).
#
# Why it looks like this: rustup on these Debian machines has no Windows target
# (its rust-std for x86_64-pc-windows-gnu cannot be downloaded here). Debian's
# own Rust 1.96 (rustc-web, cargo-web, from bookworm-security) ships the std
# sources (rust-web-src), so std is rebuilt for the target with -Zbuild-std
# (RUSTC_BOOTSTRAP=1 unlocks that on a stable compiler) and linked with
# mingw-w64's gcc. rustup's rustc/cargo stay first on PATH, so Debian's are
# called by full path. Output goes to a separate target dir (target/windows by
# default) so the native target/ is never disturbed.
#
# Needs: apt-get install -t bookworm-security rustc-web cargo-web rust-web-src \
#          gcc-mingw-w64-x86-64      (plus wine64 for wine-run.sh)
#
# Usage: contrib/windows/build.sh [--manifest-path PATH] [--with-wine-shim] [-- CARGO_ARGS...]
#   --manifest-path  crate to build (default: this repo's Cargo.toml)
#   --with-wine-shim also build the Wine-only bcryptprimitives.dll into the output
#                    dir, for running the exes under some other Wine setup. Off by
#                    default: it is a test fixture, never to be shipped (wine-run.sh
#                    installs it into its own Wine prefix and needs no copy here).
#   CARGO_ARGS       extra cargo arguments, e.g. -- --features X or -- -v
# Env: WIN_TARGET_DIR overrides the target dir (default: <crate>/target/windows).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
manifest="$here/../../Cargo.toml"
shim=0
extra=()
while (($#)); do
    case "$1" in
        --manifest-path) (($# > 1)) || { echo "build.sh: --manifest-path needs a value" >&2; exit 2; }
                         manifest=$2; shift 2 ;;
        --manifest-path=*) manifest=${1#*=}; shift ;;
        --with-wine-shim) shim=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "build.sh: unknown argument: $1 (cargo arguments go after --)" >&2; exit 2 ;;
    esac
done

triple=x86_64-pc-windows-gnu
cc=x86_64-w64-mingw32-gcc
for tool in /usr/bin/rustc /usr/bin/cargo /usr/lib/rustlib/src/rust/library "$(command -v "$cc" || echo "$cc")"; do
    [[ -e $tool ]] || { echo "build.sh: missing $tool; see the apt-get line in this script's header" >&2; exit 1; }
done

manifest=$(realpath "$manifest")
crate_dir=$(dirname "$manifest")
target_dir=${WIN_TARGET_DIR:-$crate_dir/target/windows}
out="$target_dir/$triple/release"

# A release build must use the committed lock file; --locked also guarantees
# this cargo (a different version from rustup's) never rewrites it.
locked=()
[[ -f $crate_dir/Cargo.lock ]] && locked=(--locked)

# std,panic_abort: std pulls in panic_unwind itself, so with panic_abort named
# too the build works whether [profile.release] says panic = "abort" or not
# (both were tried). The manifest's setting is kept, so Windows panics behave
# as on Linux; CARGO_PROFILE_RELEASE_PANIC=abort in the env forces abort.
start=$SECONDS
env RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER="$cc" \
    CARGO_TARGET_DIR="$target_dir" \
    /usr/bin/cargo build --release --bins --target "$triple" \
        -Zbuild-std=std,panic_abort --manifest-path "$manifest" \
        ${locked[@]+"${locked[@]}"} ${extra[@]+"${extra[@]}"}
echo "build.sh: cargo finished in $((SECONDS - start)) s" >&2

if ((shim)); then
    "$cc" -shared -O2 -s -o "$out/bcryptprimitives.dll" "$here/bcryptprimitives.c" -ladvapi32
fi

shopt -s nullglob
files=("$out"/*.exe "$out"/bcryptprimitives*.dll)
((${#files[@]})) || { echo "build.sh: no .exe produced in $out" >&2; exit 1; }
for f in "${files[@]}"; do
    printf '%10d bytes  %s\n' "$(stat -c %s "$f")" "$f"
done
