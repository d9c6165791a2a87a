#!/usr/bin/env bash
# Build lb-feedback-<version>-x86_64.msi from the cross-built binaries (run build.sh first)
# with wixl, from contrib/windows/lb-feedback.wxs. The package:
#   - puts lb-feedback.exe and lb-feedback-service.exe in C:\Program Files\lb-feedback and
#     that folder on the system PATH (so `lb-feedback mode drain` works in any new prompt);
#   - registers and starts the service lb-feedback as `lb-feedback-service install` does
#     (automatic start, NT AUTHORITY\LocalService, the same name, description and command
#     line, the recovery actions through `sc failure`); stops and removes it on uninstall;
#   - registers the Event Log source lb-feedback (its message table is in the service exe);
#   - installs an example %ProgramData%\lb-feedback\config.json that upgrades and uninstalls
#     leave alone once it is there (Permanent, NeverOverwrite), and gives LocalService Modify
#     on that folder (icacls, as `install` does);
#   - adds the inbound firewall rule "lb-feedback" for PORT (3333 by default) with
#     `netsh advfirewall` and removes it on uninstall;
#   - replaces any older version (one UpgradeCode, MajorUpgrade) and refuses a downgrade.
#   Silent install: msiexec /i lb-feedback-V-x86_64.msi /qn PORT=3333 ALLOW=10.0.0.0/8 TCP=3389:50
#   (SERVICELOG=file too); each property becomes a flag on the service's command line.
#
# What wixl (msitools 0.101) cannot write is added to the database afterwards with msibuild:
# the Environment table (PATH), the Permanent|NeverOverwrite component bits, the secure
# public properties (without which a managed install drops PORT & co. on the server side) and
# the REG_EXPAND_SZ type of EventMessageFile.
#
# Needs: apt-get install wixl msitools
# Usage: contrib/windows/msi.sh [--version X.Y.Z] [-o FILE]
#   --version  the ProductVersion (default: Cargo.toml's version, without a pre-release part);
#              CI builds an older one to test upgrades
#   -o FILE    output (default: <target dir>/lb-feedback-<version>-x86_64.msi)
# Env: WIN_TARGET_DIR as for build.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
target_dir=${WIN_TARGET_DIR:-$repo/target/windows}
bin=$target_dir/x86_64-pc-windows-gnu/release
version=
out=
while (($#)); do
    case "$1" in
        --version) (($# > 1)) || { echo "msi.sh: --version needs a value" >&2; exit 2; }
                   version=$2; shift 2 ;;
        -o) (($# > 1)) || { echo "msi.sh: -o needs a value" >&2; exit 2; }
            out=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "msi.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

for tool in wixl msibuild msiinfo; do
    command -v "$tool" >/dev/null || { echo "msi.sh: $tool missing (apt-get install wixl msitools)" >&2; exit 1; }
done
for exe in lb-feedback.exe lb-feedback-service.exe; do
    [[ -f $bin/$exe ]] || { echo "msi.sh: $bin/$exe missing; run contrib/windows/build.sh first" >&2; exit 1; }
done

if [[ -z $version ]]; then
    # The [package] table's version, which comes first in Cargo.toml.
    version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
    version=${version%%-*}
fi
# Windows Installer versions are three numbers (a fourth is ignored by upgrades).
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "msi.sh: version '$version' is not X.Y.Z" >&2; exit 1; }
out=$(realpath -m "${out:-$target_dir/lb-feedback-$version-x86_64.msi}")
mkdir -p "$(dirname "$out")"

stage=$(mktemp -d /tmp/lbf-msi.XXXXXX)
trap 'rm -rf "$stage"' EXIT
cp "$bin/lb-feedback.exe" "$bin/lb-feedback-service.exe" "$stage/"
cp "$here/config.json" "$stage/config.json"
rm -f "$out"
# wixl finds the File sources relative to the current directory.
(cd "$stage" && wixl -a x64 -D Version="$version" -D BinDir=. -D ConfigFile=config.json \
    -o "$out" "$here/lb-feedback.wxs")

sql() { msibuild "$out" -q "$1"; }
# wixl writes Type="expandable" values without the "#%" that makes them REG_EXPAND_SZ, as
# install writes EventMessageFile.
sql "UPDATE \`Registry\` SET \`Value\` = '#%[#ServiceExe]' WHERE \`Name\` = 'EventMessageFile'"
# 400 = 64-bit (256) | NeverOverwrite (128) | Permanent (16).
sql "UPDATE \`Component\` SET \`Attributes\` = 400 WHERE \`Component\` = 'Config'"
sql "UPDATE \`Property\` SET \`Value\` = 'WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;PORT;ALLOW;TCP;SERVICELOG' WHERE \`Property\` = 'SecureCustomProperties'"
# Name "=-*Path": set at install, the added part removed at uninstall, system-wide; "[~];"
# appends to what is there.
sql "CREATE TABLE \`Environment\` (\`Environment\` CHAR(72) NOT NULL, \`Name\` CHAR(255) NOT NULL LOCALIZABLE, \`Value\` CHAR(255) LOCALIZABLE, \`Component_\` CHAR(72) NOT NULL PRIMARY KEY \`Environment\`)"
sql "INSERT INTO \`Environment\` (\`Environment\`, \`Name\`, \`Value\`, \`Component_\`) VALUES ('PathLbFeedback', '=-*Path', '[~];[INSTALLDIR]', 'Agent')"
# The sequence numbers the Windows Installer SDK suggests for these two actions.
sql "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Sequence\`) VALUES ('RemoveEnvironmentStrings', 3300)"
sql "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Sequence\`) VALUES ('WriteEnvironmentStrings', 5200)"

msiinfo export "$out" Component | grep -q "^Config	.*	400	" || { echo "msi.sh: the Config component's attributes did not take" >&2; exit 1; }
printf '%10d bytes  %s\n' "$(stat -c %s "$out")" "$out"
