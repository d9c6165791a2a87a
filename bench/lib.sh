# Sourced by the bench scripts (run from the repository's root): the static release build they
# measure, a scratch directory, and the background processes ended when the script exits.

# Builds both programs as the packages ship them (contrib/static-bins.sh: static, for this
# host); sets host, and probe to the static lb-feedback.
build_static() {
    host=$(rustc -vV | sed -n 's/^host: //p')
    probe=$(bash contrib/static-bins.sh "$host")/lb-feedback
}

# The scratch directory; add the PIDs of background processes to pids.
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
