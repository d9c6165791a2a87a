#!/usr/bin/env bash
# Builds the Debian package, installs it with dpkg -i, runs the end-to-end test against the
# installed files (tests/e2e_installed.rs: the packaged xinetd entry enabled, port 3333, a real
# HAProxy) and purges the package again, also when a step fails; then checks that the purge
# took back what postinst added.
#
# Run as root on a Debian machine with haproxy and xinetd (`.ci/run` installs them). Refuses
# to run where lb-feedback is already installed, since it purges the package at the end.
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

# cargo deb builds the release binaries and prints the package's path on stdout.
deb=$(cargo deb)
echo "built $deb"

trap 'dpkg --purge lb-feedback >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb"
LB_FEEDBACK_INSTALLED=1 LB_FEEDBACK_E2E=1 cargo test --test e2e_installed

dpkg --purge lb-feedback
trap - EXIT
left=""
grep -q '^lb-feedback[[:space:]]' /etc/services && left="$left /etc/services line;"
[ -e /var/lib/lb-feedback ] && left="$left /var/lib/lb-feedback;"
[ -e /etc/xinetd.d/lb-feedback ] && left="$left /etc/xinetd.d/lb-feedback;"
if [ -n "$left" ]; then
    echo "contrib/deb/ci.sh: the purge left:$left" >&2
    exit 1
fi
echo "contrib/deb/ci.sh: built, installed, tested and purged $deb"
