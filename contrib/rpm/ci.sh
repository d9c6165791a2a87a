#!/usr/bin/env bash
# CI for the RPM (contrib/rpm/build.sh), on Debian, without touching the real root:
#   1. metadata with Debian's rpm: rpm -qp --requires/--provides (no shared library, the
#      %pre tools), --scripts (useradd -r, nothing enabled, started or preset; only a running
#      lb-feedback-service try-restarted on upgrade), --dump (every
#      file root:root, the modes, the two %config(noreplace) files, gzipped man pages, the
#      three units);
#   2. rpmlint: no error and no warning, each filter justified in contrib/rpm/rpmlintrc;
#   3. rpm --root into a scratch root: the user, the state directory (root's leftovers handed
#      to the user), the /etc/services line,
#      nothing enabled, rpm -V clean; its files compared with the .deb's (dpkg-deb) file for
#      file: the same paths, modes and contents (man pages uncompressed), less the
#      differences listed below;
#   4. an upgrade to release 2 keeps the admin's config, the state, the user, an enabled
#      socket and an enabled lb-feedback-service; the erase removes both units' symlinks and
#      the /etc/services line and keeps
#      the admin's config (config.json.rpmsave), a drop-in, the state and the user.
# The scratch root holds the few Debian programs the scriptlets call (sh, getent, useradd,
# systemctl, ...) with their libraries, since rpm runs scriptlets chrooted into it. It has no
# rpm database of RHEL's base (glibc, shadow-utils, systemd), so nothing in it provides the
# package's requirements (/bin/sh, /usr/sbin/useradd, ...): rpm -i/-U get --nodeps, and
# step 1 checks the requirements instead.
#
# Run as root (chroot, file owners) with rpm, rpmlint and dpkg-deb; cargo-deb for the .deb.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf 'rpm-ci: [%3d s] %s\n' "$SECONDS" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
pass() { say "ok: $*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (chroot for the scriptlets, file owners)"
for tool in rpm rpmbuild rpmlint dpkg-deb ldd; do
    command -v "$tool" >/dev/null || fail "needs $tool (apt-get install rpm rpmlint)"
done
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked --version 3.8.0
fi

rpm_file=$(bash contrib/rpm/build.sh)
rpm2_file=$(LB_FEEDBACK_RPM_RELEASE=2 bash contrib/rpm/build.sh)
deb_file=$(bash contrib/deb/build.sh)
say "built $rpm_file ($(stat -c %s "$rpm_file") bytes), and $rpm2_file, $deb_file"

work=$(mktemp -d /tmp/lbf-rpm-ci.XXXXXX)
# Release 2 exists only for the upgrade below: gone afterwards, so that target/rpm/RPMS holds
# the one package to ship.
trap 'rm -rf "$work" "$rpm2_file"' EXIT

# --- 1. metadata ----------------------------------------------------------------------
requires=$(rpm -qp --requires "$rpm_file")
printf '%s\n' "$requires" | grep -q '\.so' && fail "requires a shared library: $requires"
for need in /bin/sh /usr/bin/getent /usr/sbin/groupadd /usr/sbin/useradd; do
    printf '%s\n' "$requires" | grep -qxF "$need" || fail "does not require $need"
done
provides=$(rpm -qp --provides "$rpm_file")
version=$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$rpm_file")
arch=$(rpm -qp --qf '%{ARCH}' "$rpm_file")
printf '%s\n' "$provides" | grep -qxF "lb-feedback = $version" || fail "does not provide lb-feedback = $version"
pass "requires no shared library, the %pre tools by file; provides lb-feedback = $version ($arch)"

scripts=$(rpm -qp --scripts "$rpm_file")
printf '%s\n' "$scripts" >"$work/scripts"
grep -q 'useradd -r -g lb-feedback' "$work/scripts" || fail "%pre does not create the system user"
# Not a comment, and names systemctl with enable, start or preset: none may exist, but for
# the upgrade's try-restart of the listener, which restarts it only if it runs.
try_restart='systemctl try-restart lb-feedback-service.service'
grep -qF "$try_restart" "$work/scripts" || fail "%postun does not try-restart lb-feedback-service on upgrade"
if grep -v '^ *#' "$work/scripts" | grep -vF "$try_restart" | grep -E 'systemctl' | grep -wE 'enable|start|restart|preset|reenable'; then
    fail "a scriptlet enables, starts or presets a unit"
fi
grep -q 'systemctl --no-reload disable --now lb-feedback.socket lb-feedback-service.service' "$work/scripts" \
    || fail "%preun does not disable the socket and the listener on erase"
pass "scriptlets: useradd -r, nothing enabled or started (a running listener try-restarted on upgrade), the socket and the listener disabled on erase"

# --dump: path size mtime digest mode owner group isconfig isdoc rdev symlink
rpm -qp --dump "$rpm_file" >"$work/dump"
while read -r path _ _ _ mode owner group config _; do
    [ "$owner:$group" = root:root ] || fail "$path is owned by $owner:$group"
    case $path in
        /usr/bin/*) want=0100755 ;;
        /etc/lb-feedback | */doc/lb-feedback | */doc/lb-feedback/*s) want=040755 ;;
        *) want=0100644 ;;
    esac
    [ "$mode" = "$want" ] || fail "$path has mode $mode, not $want"
    case $path in
        /etc/lb-feedback/config.json | /etc/xinetd.d/lb-feedback) [ "$config" = 1 ] || fail "$path is not %config" ;;
        *) [ "$config" = 0 ] || fail "$path is %config" ;;
    esac
done <"$work/dump"
for page in man5/lb-feedback.json.5 man8/lb-feedback.8 man8/lb-feedback-service.8; do
    grep -q "^/usr/share/man/$page.gz " "$work/dump" || fail "no /usr/share/man/$page.gz"
done
for unit in lb-feedback.socket lb-feedback@.service lb-feedback-service.service; do
    grep -q "^/usr/lib/systemd/system/$unit " "$work/dump" || fail "no /usr/lib/systemd/system/$unit"
done
noreplace=$(rpm -qp --qf '[%{FILEFLAGS:fflags}|%{FILENAMES}\n]' "$rpm_file" | awk -F'|' '$1 ~ /n/ { print $2 }' | sort | tr '\n' ' ')
[ "$noreplace" = "/etc/lb-feedback/config.json /etc/xinetd.d/lb-feedback " ] \
    || fail "the %config(noreplace) files are '$noreplace'"
pass "--dump: $(wc -l <"$work/dump") entries root:root, binaries 0755, files 0644, 2 config(noreplace), 3 gzipped man pages, 3 units"

# --- 2. rpmlint -------------------------------------------------------------------------
lint=$(rpmlint -r contrib/rpm/rpmlintrc "$rpm_file" 2>&1) || true
printf '%s\n' "$lint" | grep -q ' 0 errors, 0 warnings' || { printf '%s\n' "$lint" >&2; fail "rpmlint"; }
pass "rpmlint: 0 errors, 0 warnings"

# --- 3. install into a scratch root -------------------------------------------------------
root=$work/root
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,dev,tmp,var/lib}
for link in bin sbin lib lib64; do ln -s "usr/$link" "$root/$link"; done
# Each program the scriptlets run, and the libraries ldd names for it.
for prog in sh getent groupadd useradd nologin install stat chown grep tail cat rm mktemp systemctl; do
    path=$(command -v "$prog")
    cp -L --parents "$path" "$root"
    for lib in $(ldd "$path" | grep -o '/[^ ]*'); do cp -L --parents "$lib" "$root"; done
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
printf 'root:*::\n' >"$root/etc/gshadow"
chmod 0600 "$root/etc/shadow" "$root/etc/gshadow"
printf 'passwd: files\ngroup: files\nshadow: files\n' >"$root/etc/nsswitch.conf"
cp /etc/login.defs "$root/etc/"
# A services file without the agent's line and without a final newline, which %post must
# not glue its line to.
printf 'ssh             22/tcp' >"$root/etc/services"
mknod -m 0666 "$root/dev/null" c 1 3
# What `lb-feedback mode drain` run as root leaves before the package is installed: %post
# hands the directory and its files to the agent's user.
mkdir -p "$root/var/lib/lb-feedback"
printf 'drain\n' >"$root/var/lib/lb-feedback/mode"
in_root=(rpm --root "$root" --dbpath /var/lib/rpm)
"${in_root[@]}" --initdb
# --force-debian: Debian's rpm otherwise warns that packages belong to alien, also for a root
# that is not Debian's.
"${in_root[@]}" -i --nodeps --force-debian "$rpm_file"

"${in_root[@]}" -q lb-feedback >/dev/null || fail "rpm -q does not know lb-feedback"
"${in_root[@]}" -V --nodeps lb-feedback || fail "rpm -V: the installed files differ from the package"
user=$(grep '^lb-feedback:' "$root/etc/passwd") || fail "no user lb-feedback"
IFS=: read -r _ _ uid gid _ home shell <<<"$user"
((uid < 1000)) || fail "lb-feedback has UID $uid, not a system UID"
[ "$home:$shell" = /nonexistent:/usr/sbin/nologin ] || fail "lb-feedback: $user"
grep -q "^lb-feedback:x:$gid:" "$root/etc/group" || fail "no group lb-feedback with GID $gid"
[ "$(stat -c '%u:%g %a' "$root/var/lib/lb-feedback")" = "$uid:$gid 755" ] \
    || fail "/var/lib/lb-feedback: $(stat -c '%u:%g %a' "$root/var/lib/lb-feedback")"
[ "$(stat -c '%u:%g' "$root/var/lib/lb-feedback/mode")" = "$uid:$gid" ] \
    || fail "%post did not hand root's state file to lb-feedback"
[ "$(sed -n 1p "$root/etc/services")" = 'ssh             22/tcp' ] || fail "/etc/services' last line was glued to"
[ "$(grep -c '^lb-feedback[[:space:]]*3333/tcp' "$root/etc/services")" = 1 ] || fail "the /etc/services line is not there once"
[ -z "$(find "$root/etc" -path '*systemd*' -print -quit)" ] || fail "install enabled a unit: $(find "$root/etc" -path '*systemd*')"
grep -Eq '^[[:space:]]*disable[[:space:]]*=[[:space:]]*yes' "$root/etc/xinetd.d/lb-feedback" || fail "the xinetd entry is not disabled"
pass "rpm -i --root: rpm -V clean, system user $uid:$gid, /var/lib/lb-feedback 755 its own (root's files handed over), the services line, nothing enabled"

# The .deb's files against the installed .rpm's: paths, modes, contents.
dpkg-deb -x "$deb_file" "$work/deb"
list() { (cd "$1" && find . ! -type d | sed 's|^\.||' | sort); }
list "$work/deb" >"$work/deb.files"
"${in_root[@]}" -ql lb-feedback | while read -r f; do [ -d "$root$f" ] || echo "$f"; done | sort >"$work/rpm.files"
# Debian's own files, and the license where RHEL keeps it (the .deb's copyright file points
# at /usr/share/common-licenses, which RHEL does not have).
deb_only=$'/usr/share/doc/lb-feedback/changelog.Debian.gz\n/usr/share/doc/lb-feedback/copyright\n/usr/share/lintian/overrides/lb-feedback'
rpm_only=/usr/share/licenses/lb-feedback/LICENSE
[ "$(comm -23 "$work/deb.files" "$work/rpm.files")" = "$deb_only" ] \
    || fail "only in the .deb: $(comm -23 "$work/deb.files" "$work/rpm.files" | tr '\n' ' ')"
[ "$(comm -13 "$work/deb.files" "$work/rpm.files")" = "$rpm_only" ] \
    || fail "only in the .rpm: $(comm -13 "$work/deb.files" "$work/rpm.files" | tr '\n' ' ')"
common=0
while read -r f; do
    [ "$(stat -c %a "$work/deb$f")" = "$(stat -c %a "$root$f")" ] || fail "$f: mode differs"
    case $f in
        *.gz) cmp -s <(zcat "$work/deb$f") <(zcat "$root$f") || fail "$f: content differs" ;;
        *) cmp -s "$work/deb$f" "$root$f" || fail "$f: content differs" ;;
    esac
    common=$((common + 1))
done < <(comm -12 "$work/deb.files" "$work/rpm.files")
cmp -s LICENSE "$root$rpm_only" || fail "$rpm_only is not LICENSE"
pass "the .rpm holds the .deb's $common files, same modes and contents; only Debian's changelog, copyright, lintian overrides vs RHEL's /usr/share/licenses"

# --- 4. upgrade and erase -------------------------------------------------------------------
# What an admin does: edit the config, enable the socket (and, on another host, the
# listener: both here, since only symlinks are checked), add a drop-in; what the agent
# leaves: a mode file in the state directory.
printf '{ "mode": "drain" }\n' >"$root/etc/lb-feedback/config.json"
chroot "$root" systemctl enable lb-feedback.socket 2>/dev/null
enabled=$root/etc/systemd/system/sockets.target.wants/lb-feedback.socket
[ -L "$enabled" ] || fail "systemctl enable made no symlink"
chroot "$root" systemctl enable lb-feedback-service.service 2>/dev/null
enabled_service=$root/etc/systemd/system/multi-user.target.wants/lb-feedback-service.service
[ -L "$enabled_service" ] || fail "systemctl enable lb-feedback-service made no symlink"
mkdir -p "$root/etc/systemd/system/lb-feedback@.service.d"
printf '[Service]\nEnvironment=LB_FEEDBACK_CONFIG=/etc/lb-feedback/other.json\n' >"$root/etc/systemd/system/lb-feedback@.service.d/local.conf"
printf 'maint\n' >"$root/var/lib/lb-feedback/mode"

"${in_root[@]}" -U --nodeps --force-debian "$rpm2_file"
[ "$("${in_root[@]}" -q --qf '%{RELEASE}' lb-feedback)" = 2 ] || fail "the upgrade did not install release 2"
grep -q drain "$root/etc/lb-feedback/config.json" || fail "the upgrade replaced the admin's config"
[ ! -e "$root/etc/lb-feedback/config.json.rpmnew" ] || fail "the upgrade left a config.json.rpmnew for an unchanged default"
[ "$(cat "$root/var/lib/lb-feedback/mode")" = maint ] || fail "the upgrade lost the state"
[ "$(grep '^lb-feedback:' "$root/etc/passwd")" = "$user" ] || fail "the upgrade changed the user"
[ -L "$enabled" ] || fail "the upgrade disabled the socket"
[ -L "$enabled_service" ] || fail "the upgrade disabled lb-feedback-service"
[ "$(grep -c '^lb-feedback[[:space:]]' "$root/etc/services")" = 1 ] || fail "the upgrade doubled the services line"
pass "rpm -U to release 2: config, state, user, the enabled socket and listener and the services line kept"

"${in_root[@]}" -e --force-debian lb-feedback
"${in_root[@]}" -q lb-feedback >/dev/null 2>&1 && fail "rpm -q still knows lb-feedback"
[ ! -e "$enabled" ] && [ ! -L "$enabled" ] || fail "the erase left the socket's symlink"
[ ! -e "$enabled_service" ] && [ ! -L "$enabled_service" ] || fail "the erase left lb-feedback-service's symlink"
[ -f "$root/etc/systemd/system/lb-feedback@.service.d/local.conf" ] || fail "the erase removed the admin's drop-in"
grep -q drain "$root/etc/lb-feedback/config.json.rpmsave" || fail "the erase did not keep the admin's config as config.json.rpmsave"
grep -q '^lb-feedback[[:space:]]' "$root/etc/services" && fail "the erase left the services line"
[ "$(cat "$root/etc/services")" = 'ssh             22/tcp' ] || fail "the erase changed the rest of /etc/services"
[ "$(cat "$root/var/lib/lb-feedback/mode")" = maint ] || fail "the erase removed the state"
grep -q '^lb-feedback:' "$root/etc/passwd" || fail "the erase removed the user"
while read -r f; do
    [ ! -e "$root$f" ] || fail "the erase left $f"
done <"$work/rpm.files"
left=$(cd "$root" && find etc/lb-feedback etc/systemd var/lib/lb-feedback -print | sort | tr '\n' ' ')
pass "rpm -e: both symlinks and the services line gone, every file gone; kept: $left, the user"
say "contrib/rpm/ci.sh: $rpm_file checked"
