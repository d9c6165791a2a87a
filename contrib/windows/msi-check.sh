# The .msi under Wine: sourced by ci.sh after its own checks (it uses ci.sh's Wine prefix and
# helpers: run, probe, free_port, say, pass, fail, $work, $wine_dir, $here).
#
#   1. msi.sh builds the package, and an older one (0.0.1) to upgrade from.
#   2. The old one installs silently with PORT, ALLOW and TCP: the files, the service RUNNING
#      with those flags, a probe answering on PORT, the Event Log source's registry key and
#      its message table (format-event.c, FormatMessageW as Event Viewer calls it), the PATH
#      entry.
#   3. `lb-feedback mode drain` through cmd's PATH search changes the next reply.
#   4. config.json is edited; the new package installs over the old one (MajorUpgrade): the
#      edit is kept, one version is installed, the service runs again (with a new PORT) and
#      answers.
#   5. Wine's +eventlog channel shows the service's ReportEventW calls (start, stop).
#   6. msiexec /x (after sc stop, see stop_service) removes the programs, the service, the source and the PATH entry, and keeps
#      the edited config.json.
# Not visible under Wine: the firewall rule (Wine's netsh has no advfirewall) and the ACL that
# icacls grants (Wine keeps no Windows ACLs on files); see docs/windows.md.

drive=$WINEPREFIX/drive_c
program_files="$drive/Program Files/lb-feedback"
data=$drive/ProgramData/lb-feedback
msi_new=$work/lb-feedback-new.msi
msi_old=$work/lb-feedback-old.msi
source_key='HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\lb-feedback'
env_key='HKLM\System\CurrentControlSet\Control\Session Manager\Environment'

say "building the .msi (contrib/windows/msi.sh)"
"$here/msi.sh" -o "$msi_new" >&2 || fail "msi.sh failed"
"$here/msi.sh" --version 0.0.1 -o "$msi_old" >&2 || fail "msi.sh --version 0.0.1 failed"

wine_text() { timeout 60 "$wine_dir/wine64" "$@" </dev/null 2>/dev/null | tr -d '\r' || true; }
# msiexec NAME ARGS...: with a verbose log in C:\NAME.log, whose errors a failure shows.
msiexec() {
    local name=$1
    shift
    timeout 120 "$wine_dir/wine64" msiexec "$@" /l*v "C:\\$name.log" </dev/null >/dev/null 2>&1
}
msi_log() {
    grep -aiE 'return value 3|error [0-9]|failed' "$drive/$1.log" 2>/dev/null | tr -d '\r' | head -n 20
}

# The services started from here on report through a services.exe whose stderr is a file
# with Wine's eventlog channel on: a new Wine server, a first process with WINEDEBUG set.
"$wine_dir/wineserver" -k
"$wine_dir/wineserver" -w
"$wine_dir/wineserver" -p || fail "cannot restart the persistent wineserver"
WINEDEBUG=-all,+eventlog run "$agent" --version </dev/null >/dev/null 2>"$work/services.err" ||
    fail "lb-feedback.exe does not run under the new wineserver"

# Stops the service and waits until its process ($command_line) is gone. Needed before an
# upgrade and an uninstall under Wine: its msiexec asks the service to stop but does not wait
# until it has, as Windows does for ServiceControl Wait="yes", and goes on to delete it (the
# new one then cannot be created while the old is marked for deletion) and its files (still
# open).
# The first non-empty reply on port $1 within 10 s (a service just started is still binding).
first_reply() {
    local line=
    for _ in $(seq 50); do
        line=$(probe "$1")
        [[ -n $line ]] && break
        sleep 0.2
    done
    printf '%s' "$line"
}

stop_service() {
    timeout 60 "$wine_dir/wine64" sc stop lb-feedback </dev/null >/dev/null 2>&1 || fail "sc stop failed"
    for _ in $(seq 100); do
        pgrep -af 'lb-feedback-service.exe scm' | grep -qF -- "$command_line" || return 0
        sleep 0.1
    done
    fail "the service did not stop within 10 s"
}

port=$(free_port)
tcp_port=$(free_port)
properties=(PORT="$port" ALLOW=127.0.0.1 TCP="$tcp_port:50")
msiexec install /i "$msi_old" /qn "${properties[@]}" || fail "msiexec /i (0.0.1) failed: $(msi_log install)"
for file in "$program_files/lb-feedback.exe" "$program_files/lb-feedback-service.exe" "$data/config.json"; do
    [[ -f $file ]] || fail "not installed: $file"
done
cmp -s "$here/config.json" "$data/config.json" || fail "config.json is not the example"
pass "msiexec /i /qn ${properties[*]}: both programs and %ProgramData%\\lb-feedback\\config.json"
sc=$(wine_text sc query lb-feedback)
grep -q RUNNING <<<"$sc" || fail "the service is not running after the install: $sc"
# Wine shows a Windows process's command line to ps; the port tells ours from others'.
command_line="scm --listen=0.0.0.0:$port --listen=[::]:$port --allow=127.0.0.1 --tcp=$tcp_port:50"
pgrep -af 'lb-feedback-service.exe scm' | grep -qF -- "$command_line" ||
    fail "the service's command line lacks the properties: $(pgrep -af lb-feedback-service.exe)"
pass "sc query: RUNNING, command line $command_line"
line=$(first_reply "$port")
[[ $line =~ $reply_line ]] || fail "the installed service answered '$line'"
pass "probe of the installed service on PORT $port: '$line'"
source_values=$(wine_text reg query "$source_key")
grep -q 'EventMessageFile *REG_EXPAND_SZ .*lb-feedback-service.exe' <<<"$source_values" ||
    fail "no Event Log source key: $source_values"
pass "Event Log source registered: $(grep EventMessageFile <<<"$source_values" | tr -s ' ')"
# What Event Viewer does with that file: message 1 with the event's text as %1.
x86_64-w64-mingw32-gcc -municode -O2 -s -o "$work/format-event.exe" "$here/format-event.c" ||
    fail "cannot build format-event.exe"
sample='not started: cannot listen on 0.0.0.0:3333'
formatted=$(run "$work/format-event.exe" 'C:\Program Files\lb-feedback\lb-feedback-service.exe' "$sample" </dev/null | tr -d '\r') ||
    fail "FormatMessageW found no message 1 in lb-feedback-service.exe"
[[ $formatted == "$sample" ]] || fail "message 1 formats as '$formatted'"
pass "the message table formats event 1 as its text: '$formatted'"
grep -qF 'C:\Program Files\lb-feedback' <<<"$(wine_text reg query "$env_key" /v Path)" ||
    fail "the system PATH lacks C:\\Program Files\\lb-feedback"
pass "system PATH has C:\\Program Files\\lb-feedback"

# Wine gives services %ProgramData% = C:\users\Public while a prompt has C:\ProgramData (on
# Windows both are C:\ProgramData): the state directory is named for `mode` to meet the
# service. `lb-feedback` is found through cmd's PATH search, as in an administrator's prompt;
# before the upgrade, because Wine's RemoveEnvironmentStrings leaves the ';' it removed the
# entry after, the upgrade's entry then follows ";;", and Wine's cmd stops searching there.
public_state='C:\users\Public\lb-feedback'
timeout 60 "$wine_dir/wine64" cmd /c lb-feedback mode drain --state-dir "$public_state" </dev/null >&2 ||
    fail "cmd /c lb-feedback mode drain failed"
line=$(probe "$port")
[[ $line == "drain #mode" ]] || fail "after cmd /c lb-feedback mode drain the reply was '$line'"
pass "cmd /c lb-feedback mode drain (found on PATH): '$line'"
timeout 60 "$wine_dir/wine64" cmd /c lb-feedback mode reset --state-dir "$public_state" </dev/null >&2 ||
    fail "cmd /c lb-feedback mode reset failed"

# An administrator's edit, which the upgrade and the uninstall must keep.
sed -i 's/"sample_ms": 1000/"sample_ms": 900/' "$data/config.json"
grep -q '"sample_ms": 900' "$data/config.json" || fail "cannot edit $data/config.json"
stop_service
# Another PORT: Wine binds with Linux semantics, where the probes' TIME_WAIT connections keep
# the old port from being bound again for a minute (Windows allows it). An upgrade takes the
# properties afresh, so this also shows the new ones reaching the new service.
port=$(free_port)
properties=(PORT="$port" ALLOW=127.0.0.1 TCP="$tcp_port:50")
command_line="scm --listen=0.0.0.0:$port --listen=[::]:$port --allow=127.0.0.1 --tcp=$tcp_port:50"
msiexec upgrade /i "$msi_new" /qn "${properties[@]}" || fail "msiexec /i (upgrade) failed: $(msi_log upgrade)"
grep -q '"sample_ms": 900' "$data/config.json" || fail "the upgrade replaced the edited config.json"
# The old product is gone: removing it by its package now fails (1605: not installed).
if msiexec gone /x "$msi_old" /qn; then fail "0.0.1 is still installed after the upgrade"; fi
sc=$(wine_text sc query lb-feedback)
grep -q RUNNING <<<"$sc" || fail "the service is not running after the upgrade: $sc"
pgrep -af 'lb-feedback-service.exe scm' | grep -qF -- "$command_line" ||
    fail "the upgraded service's command line lacks the new PORT: $(pgrep -af lb-feedback-service.exe)"
pass "upgrade from 0.0.1 with PORT=$port: one version installed, the edited config.json kept, RUNNING"
line=$(first_reply "$port")
[[ $line =~ $reply_line ]] || fail "the upgraded service answered '$line'"
pass "probe of the upgraded service: '$line'"

stop_service
msiexec remove /x "$msi_new" /qn || fail "msiexec /x failed: $(msi_log remove)"
[[ ! -e $program_files/lb-feedback.exe && ! -e $program_files/lb-feedback-service.exe ]] ||
    fail "msiexec /x left the programs: $(ls "$program_files")"
sc=$(wine_text sc query lb-feedback)
if grep -q STATE <<<"$sc"; then fail "the service is still there after msiexec /x: $sc"; fi
if pgrep -af 'lb-feedback-service.exe scm' | grep -qF -- "$command_line"; then
    fail "the service still runs after msiexec /x"
fi
if wine_text reg query "$source_key" | grep -q EventMessageFile; then
    fail "the Event Log source is still registered after msiexec /x"
fi
if wine_text reg query "$env_key" /v Path | grep -qF 'lb-feedback'; then
    fail "the system PATH still has lb-feedback after msiexec /x"
fi
grep -q '"sample_ms": 900' "$data/config.json" || fail "msiexec /x removed the edited config.json"
pass "msiexec /x: programs, service, Event Log source and PATH entry gone; edited config.json kept"

grep -q 'ReportEventW L"started: lb-feedback-service' "$work/services.err" ||
    fail "no ReportEventW for the start in Wine's eventlog channel: $(head -c 2000 "$work/services.err")"
grep -q 'ReportEventW L"stopped"' "$work/services.err" ||
    fail "no ReportEventW for the stop in Wine's eventlog channel"
pass "the service reported its start and stop with ReportEventW ($(grep -c ReportEventW "$work/services.err") events)"
