#!/usr/bin/env bash
# Runs every command block of README.md marked runnable (an `<!-- runnable -->` line right
# before a ```sh fence), in order, each in its own `bash -euo pipefail` from the repository
# root, so the README's recipes cannot rot. They install the Debian package, enable its xinetd
# entry and start listeners, so this runs as root on a Debian machine meant for it (CI's);
# at the end it stops xinetd and purges the package, leaving port 3333 free for
# contrib/deb/ci.sh.
#
# Without LB_FEEDBACK_E2E=1 it prints SKIPPED and exits 0: it changes the system.
# Usage: contrib/readme-check.sh [README]
set -euo pipefail
cd "$(dirname "$0")/.."
readme=${1:-README.md}

if [ "${LB_FEEDBACK_E2E:-}" != 1 ]; then
    echo "SKIPPED: contrib/readme-check.sh runs the README's recipes as root; set LB_FEEDBACK_E2E=1" >&2
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "contrib/readme-check.sh: must run as root (the recipes install a package)" >&2
    exit 1
fi

blocks=$(mktemp -d)
cleanup() {
    if [ -f /etc/xinetd.d/lb-feedback ]; then
        sed -i 's/^\(\s*disable\s*=\).*/\1 yes/' /etc/xinetd.d/lb-feedback
    fi
    service xinetd stop >/dev/null 2>&1 || true
    dpkg --purge lb-feedback >/dev/null 2>&1 || true
    rm -rf "$blocks" /tmp/lbf-sa /tmp/lbf-svc
}
trap cleanup EXIT

# One file per runnable block: 01.sh, 02.sh, ...
awk -v dir="$blocks" '
    /^<!-- runnable -->$/ { armed = 1; next }
    armed && /^```sh$/ { n++; file = sprintf("%s/%02d.sh", dir, n); inside = 1; armed = 0; next }
    inside && /^```$/ { inside = 0; close(file); next }
    inside { print > file; next }
    { armed = 0 }
' "$readme"

count=$(find "$blocks" -name '*.sh' | wc -l)
if [ "$count" -lt 4 ]; then
    echo "contrib/readme-check.sh: found $count runnable blocks in $readme, expected at least 4" >&2
    exit 1
fi

for block in "$blocks"/*.sh; do
    echo "== README block $(basename "$block" .sh):" >&2
    sed 's/^/   /' "$block" >&2
    if ! bash -euo pipefail "$block"; then
        echo "contrib/readme-check.sh: README block $(basename "$block" .sh) failed" >&2
        exit 1
    fi
done
echo "contrib/readme-check.sh: $count README blocks ran" >&2
