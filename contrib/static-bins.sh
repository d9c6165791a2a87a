#!/usr/bin/env bash
# Builds both programs linked statically against glibc (RUSTFLAGS="-C target-feature=+crt-static",
# which needs an explicit --target: without one the flag would also reach build scripts and
# proc macros; on x86_64 also packed relative relocations, below) for one target triple, and prints the directory holding them on stdout
# (<target dir>/<triple>/release); cargo's progress goes to stderr. The .deb and .rpm
# builders (contrib/deb/build.sh, contrib/rpm/build.sh) package what this builds.
#
# Usage: [EXTRA_RUSTFLAGS=...] contrib/static-bins.sh [TRIPLE]   (default: the host's, rustc -vV)
#   aarch64-unknown-linux-gnu is cross-built with Debian's gcc-aarch64-linux-gnu as the
#   linker and libc6-dev-arm64-cross's static glibc (docs/cross-arm64.md).
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
if [ -z "$host" ]; then
    echo "contrib/static-bins.sh: cannot read the host triple from rustc -vV" >&2
    exit 1
fi
triple=${1:-$host}

if [ "$triple" = aarch64-unknown-linux-gnu ] && [ "$host" != "$triple" ]; then
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}
    if ! command -v "$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER" >/dev/null; then
        echo "contrib/static-bins.sh: no $CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER" \
            "(apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)" >&2
        exit 1
    fi
    if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
        echo "contrib/static-bins.sh: no Rust standard library for $triple" \
            "(rustup target add $triple)" >&2
        exit 1
    fi
fi

flags="-C target-feature=+crt-static"
# x86_64 links a static PIE, which relocates itself before main: packed relative relocations
# (RELR, binutils 2.38 and glibc 2.36 up; the decoder is linked into the binary, so any kernel
# runs it) cost that 7 k instructions less per probe than 2,900 RELA entries
# (docs/BENCHMARKS.md). aarch64's static build is no PIE (docs/cross-arm64.md): nothing to pack.
case $triple in
x86_64-*) flags="$flags -C link-arg=-Wl,-z,pack-relative-relocs" ;;
esac
# On x86_64 build.rs also has the linker lay out lb-feedback's hot code side by side
# (contrib/hot-functions.txt). EXTRA_RUSTFLAGS come last: bench/hot-order.sh keeps the symbols
# with -C strip=none, which leaves the names as they are (a profile setting would not).
flags="$flags ${EXTRA_RUSTFLAGS:-}"
RUSTFLAGS=$flags cargo build --release --locked --target "$triple" --bins >&2
echo "${CARGO_TARGET_DIR:-$PWD/target}/$triple/release"
