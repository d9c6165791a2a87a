#!/bin/sh
# Static checks of the systemd units, for CI (needs systemd-analyze >= 250,
# no running systemd, no root, writes nothing outside a temporary dir).
#
#  1. systemd-analyze verify on both units: any message counts as a failure
#     (verify exits 0 on warnings such as unknown keys).
#  2. systemd-analyze security --offline: the service must rate 2.0 or lower
#     (--threshold is on a 0-100 scale: 20 = 2.0).
#
# verify wants ExecStart= to exist and the units they depend on
# (sockets.target, sysinit.target...), so both run against a throw-away
# root holding the units, a dummy /usr/bin/lb-feedback and a copy of the
# host's unit directory. Nothing is created in the real /usr/bin.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
threshold=${THRESHOLD:-20}
units="lb-feedback.socket lb-feedback@.service"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT INT TERM

mkdir -p "$root/usr/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/lb-feedback"
chmod 755 "$root/usr/bin/lb-feedback"
for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [ -d "$d" ]; then cp -a "$d" "$root/usr/lib/systemd/"; break; fi
done
for u in $units; do cp "$here/$u" "$root/etc/systemd/system/"; done

status=0

echo "== systemd-analyze verify"
if ! out=$(cd "$root" && systemd-analyze verify --root="$root" $units 2>&1); then
    status=1
fi
if [ -n "$out" ]; then
    printf '%s\n' "$out"
    status=1
fi
[ $status -eq 0 ] && echo "ok"

echo "== systemd-analyze security (threshold $threshold)"
if ! out=$(cd "$root" && systemd-analyze security --offline=true \
        --threshold="$threshold" --root="$root" lb-feedback@.service 2>&1); then
    printf '%s\n' "$out"
    status=1
else
    printf '%s\n' "$out" | tail -n 1
fi

exit $status
