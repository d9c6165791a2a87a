# Sourced by the bench scripts (run from the repository's root): the static release build they
# measure, a scratch directory, and the background processes ended when the script exits.

# Builds `cargo build --release` with +crt-static for this host, passing "$@" (e.g. --bins);
# sets host, and probe to the static lb-feedback.
build_static() {
    host=$(rustc -vV | sed -n 's/^host: //p')
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --target "$host" "$@"
    probe=$PWD/target/$host/release/lb-feedback
}

# The scratch directory; add the PIDs of background processes to pids.
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
