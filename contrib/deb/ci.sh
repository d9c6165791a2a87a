#!/usr/bin/env bash
# Builds the Debian package with contrib/deb/build.sh (the static probe), installs it with
# dpkg -i, runs the end-to-end tests against the installed files (tests/e2e_installed.rs: the
# system user lb-feedback and its state directory, `file` on the static binary, the packaged
# xinetd entry enabled on port 3333 with a real HAProxy, the contrib entry's limits under
# fan-in) and purges the package again, also when a step fails; then checks that the purge
# took back everything but the user (tests/e2e_installed.rs again).
#
# Run as root on a Debian machine with haproxy, xinetd and file (`.ci/run` installs them).
# Refuses to run where lb-feedback is already installed, since it purges the package at the
# end.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
    echo "contrib/deb/ci.sh: needs root (dpkg -i, dpkg --purge)" >&2
    exit 1
fi
if dpkg-query -W -f='${Status}' lb-feedback 2>/dev/null | grep -q 'ok installed'; then
    echo "contrib/deb/ci.sh: lb-feedback is installed here and this script would purge it;" \
        "remove it first (dpkg --purge lb-feedback)" >&2
    exit 1
fi

# The cargo-deb this metadata was written for; installed once per machine.
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked --version 3.8.0
fi

# build.sh builds the static release binaries, hands them to cargo deb and prints the
# package's path on stdout.
deb=$(bash contrib/deb/build.sh)
echo "built $deb"

# Lintian: no error and no warning; each override is justified in
# contrib/deb/lintian-overrides.
lintian --fail-on error,warning "$deb"

trap 'dpkg --purge lb-feedback >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb"
LB_FEEDBACK_INSTALLED=1 LB_FEEDBACK_E2E=1 cargo test --test e2e_installed

dpkg --purge lb-feedback
trap - EXIT
LB_FEEDBACK_PURGED=1 cargo test --test e2e_installed purged_package_leaves_only_its_user
echo "contrib/deb/ci.sh: built, installed, tested and purged $deb"
