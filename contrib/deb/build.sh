#!/usr/bin/env bash
# Builds the Debian package the way it is meant to ship: both programs linked statically
# against glibc by contrib/static-bins.sh, for the host's target triple or the one in
# LB_FEEDBACK_TARGET (aarch64-unknown-linux-gnu makes the arm64 package, cross-built as
# docs/cross-arm64.md says). Prints the path of the .deb on stdout, as `cargo deb` does;
# progress goes to stderr.
#
# The static probe costs about a third of the dynamically linked one's instructions per poll
# (docs/BENCHMARKS.md, "The cost guard and its budgets"; bench/guard.sh measures both).
#
# cargo-deb does not build here (--no-build): the assets in Cargo.toml keep the
# `target/release/` prefix, which cargo-deb treats as a placeholder and resolves, given
# --target, to <target dir>/<triple>/release (CARGO_TARGET_DIR included), where
# static-bins.sh puts the binaries; --target also sets the package's architecture.
#
# Usage: [LB_FEEDBACK_TARGET=TRIPLE] contrib/deb/build.sh [extra cargo-deb flags]
#        (needs cargo-deb 3.x)
set -euo pipefail
cd "$(dirname "$0")/../.."

bins=$(bash contrib/static-bins.sh ${LB_FEEDBACK_TARGET:+"$LB_FEEDBACK_TARGET"})
triple=$(basename "$(dirname "$bins")")
cargo deb --target "$triple" --no-build "$@"
