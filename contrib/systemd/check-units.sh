#!/bin/sh
# Static checks of the systemd units, for CI (needs systemd-analyze >= 250,
# no running systemd, no root, writes nothing outside a temporary dir).
#
#  1. systemd-analyze verify on the three units: any message counts as a
#     failure (verify exits 0 on warnings such as unknown keys).
#  2. systemd-analyze security --offline: each service must rate 2.0 or
#     lower (--threshold is on a 0-100 scale: 20 = 2.0).
#
# verify wants ExecStart= (and ExecReload=) to exist and the units they
# depend on (sockets.target, sysinit.target...), so both run against a
# throw-away root holding the units, dummy /usr/bin/lb-feedback,
# /usr/bin/lb-feedback-service and /bin/kill, and a copy of the host's unit
# directory. Nothing is created in the real /usr/bin.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
threshold=${THRESHOLD:-20}
units="lb-feedback.socket lb-feedback@.service lb-feedback-service.service"
services="lb-feedback@.service lb-feedback-service.service"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT INT TERM

mkdir -p "$root/usr/bin" "$root/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
for bin in usr/bin/lb-feedback usr/bin/lb-feedback-service bin/kill; do
    printf '#!/bin/sh\nexit 0\n' >"$root/$bin"
    chmod 755 "$root/$bin"
done
for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [ -d "$d" ]; then cp -a "$d" "$root/usr/lib/systemd/"; break; fi
done
for u in $units; do cp "$here/$u" "$root/etc/systemd/system/"; done
# verify looks up the Documentation= man pages with man(1): the project's own.
mkdir -p "$root/usr/share/man/man5" "$root/usr/share/man/man8"
for page in "$here"/../man/*.[58]; do
    cp "$page" "$root/usr/share/man/man${page##*.}/"
done

status=0

echo "== systemd-analyze verify"
if ! out=$(cd "$root" && MANPATH="$root/usr/share/man" systemd-analyze verify --root="$root" $units 2>&1); then
    status=1
fi
if [ -n "$out" ]; then
    printf '%s\n' "$out"
    status=1
fi
[ $status -eq 0 ] && echo "ok"

echo "== systemd-analyze security (threshold $threshold)"
for u in $services; do
    if ! out=$(cd "$root" && systemd-analyze security --offline=true \
            --threshold="$threshold" --root="$root" "$u" 2>&1); then
        printf '%s\n' "$out"
        status=1
    else
        printf '%s\n' "$out" | tail -n 1
    fi
done

exit $status
