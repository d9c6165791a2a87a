#!/usr/bin/env bash
# Run a Windows .exe under Wine 8 for smoke tests; its exit code is ours.
#
# Why: there is no Windows machine here. Wine 8 lacks bcryptprimitives.dll,
# which Rust's std imports (ProcessPrng), so the exe would not even load
# (status c0000135, exit code 53, silent under WINEDEBUG=-all). The Wine-only
# shim bcryptprimitives.c is therefore built into the private prefix's
# system32, where Wine's loader finds it for every exe: nothing is written next
# to the exe, so a release directory never picks up the fake DLL. The private
# WINEPREFIX (default target/windows/wine-prefix in this repo) is created once
# with `wineboot -i` (~10 s), leaving ~/.wine alone.
#
# Usage: contrib/windows/wine-run.sh PATH/TO/prog.exe [ARGS...]
# Env: WINE (default /usr/lib/wine/wine64), WINEPREFIX, WINEDEBUG (default -all).
set -euo pipefail

(($#)) || { echo "usage: $0 PROG.exe [ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exe=$(realpath "$1"); shift
wine=${WINE:-/usr/lib/wine/wine64}
[[ -x $wine ]] || { echo "wine-run.sh: $wine not found (apt-get install wine64)" >&2; exit 1; }

export WINEPREFIX=${WINEPREFIX:-$(realpath -m "$here/../../target/windows/wine-prefix")}
export WINEDEBUG=${WINEDEBUG:--all}
# No display here: skip the Mono/Gecko installer prompts during wineboot.
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml=}

if [[ ! -f $WINEPREFIX/system.reg ]]; then
    mkdir -p "$WINEPREFIX"
    "$wine" wineboot -i >/dev/null 2>&1
    "${wine%/*}/wineserver" -w   # wait until the new prefix is written out
fi

shim="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [[ ! -f $shim || $here/bcryptprimitives.c -nt $shim ]]; then
    x86_64-w64-mingw32-gcc -shared -O2 -s -o "$shim" "$here/bcryptprimitives.c" -ladvapi32
fi

# exec: wine's exit status is the program's, passed straight through.
exec "$wine" "$exe" "$@"
