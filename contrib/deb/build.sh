#!/usr/bin/env bash
# Builds the Debian package the way it is meant to ship: both programs linked statically
# against glibc (RUSTFLAGS="-C target-feature=+crt-static", which needs an explicit --target:
# without one the flag would also reach build scripts and proc macros), for the host's target
# triple. Prints the path of the .deb on stdout, as `cargo deb` does; progress goes to stderr.
#
# The static probe costs about a third of the dynamically linked one's instructions per poll
# (docs/BENCHMARKS.md, "The cost guard and its budgets"; bench/guard.sh measures both).
#
# cargo-deb does not build here (--no-build): the assets in Cargo.toml keep the
# `target/release/` prefix, which cargo-deb treats as a placeholder and resolves, given
# --target, to <target dir>/<triple>/release (CARGO_TARGET_DIR included), where the build
# below puts the binaries. The .deb is written to <target dir>/debian/.
#
# Usage: contrib/deb/build.sh [extra cargo-deb flags]     (needs cargo-deb 3.x)
set -euo pipefail
cd "$(dirname "$0")/../.."

host=$(rustc -vV | sed -n 's/^host: //p')
if [ -z "$host" ]; then
    echo "contrib/deb/build.sh: cannot read the host triple from rustc -vV" >&2
    exit 1
fi

RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$host" --bins >&2
cargo deb --target "$host" --no-build "$@"
