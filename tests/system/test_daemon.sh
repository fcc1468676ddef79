#!/bin/sh
# kvvmd outside the agent: one instance, signals as design.md says, sleeping between passes,
# and enable/disable around it (detached mode, the path this machine's PID 1 gives). The
# vault and the identity endpoint are the emulator's (tests/emulator), over loopback.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-daemon.XXXXXX)
. "$top/tests/system/lib.sh"

pkg=$tmp/Kvvm.Azure.KeyVaultCerts-0.1.0
pidf=$tmp/state/kvvmd.pid
cleanup() {
  [ -f "$pidf" ] && kill -9 "$(head -1 "$pidf")" 2>/dev/null
  [ -f "$tmp/emu/emu.json" ] && kill "$(emu pid)" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
. "$top/scripts/stage-package.sh"
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"

# The emulator, and a certificate in it (a PFX, as Key Vault hands it back).
start_emulator
v1=$(add_pfx web web.example.com)
export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=myvault.vault.azure.net:443:127.0.0.1:$(emu kv_port)
msi="http://127.0.0.1:$(emu imds_port)/metadata/identity"
settings() {  # seq, polling interval
  cat >"$pkg/config/$1.settings" <<EOF
{"runtimeSettings":[{"handlerSettings":{"publicSettings":{"secretsManagementSettings":{
 "pollingIntervalInS":"$2","observedCertificates":["https://myvault.vault.azure.net/secrets/web"]},
 "authenticationSettings":{"msiEndpoint":"$msi"}}}}]}
EOF
}
# A process that exited but was not reaped counts as gone (PID 1 here may not reap).
alive() { st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
status_of() { sed -n 's/.*"status": *"\([a-z]*\)", *"code".*/\1/p' "$pkg/status/$1.status"; }
stamp_of() { stat -c %Y.%y "$pkg/status/$1.status"; }
wait_for() {  # description, condition: poll up to 5 s
  i=0
  while [ $i -lt 50 ]; do
    eval "$2" && { ok "$1"; return; }
    sleep 0.1
    i=$((i + 1))
  done
  bad "$1"
}

export KVVM_SERVICE_MODE=detached KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$tmp/store
export AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg

settings 1 3600
ConfigSequenceNumber=1 "$pkg/bin/enable"
check "enable exits 0" "[ $? = 0 ]"
pid=$(head -1 "$pidf")
wait_for "kvvmd reports success for seq 1" "[ \"\$(status_of 1)\" = success ]"
link=$tmp/store/myvault.web
wait_for "the certificate is installed under its stable name" "[ -L '$link' ] && [ -f '$link' ]"
check "the stable name points at the version from Key Vault" "[ \"\$(readlink '$link')\" = myvault.web.$v1 ]"
check "the file is root-only 0600" "[ \"\$(stat -L -c %a:%U '$link')\" = 600:root ]"
# Keys pass through its memory: a crash must not write them to a core file.
check "kvvmd cannot dump core (RLIMIT_CORE 0, soft and hard)" \
  "grep -Eq '^Max core file size +0 +0 ' /proc/$pid/limits"
check "the file holds the leaf then the key" \
  "[ \"\$(grep -c 'BEGIN CERTIFICATE' '$link')\" = 1 ] && grep -q 'BEGIN PRIVATE KEY' '$link'"
wait_for "the substatus names the installed version" "grep -q 'version $v1' '$pkg/status/1.status'"
check "mrseq records seq 1" "[ \"\$(cat '$pkg/mrseq')\" = 1 ]"

# A second instance gives way at once; the first keeps running.
"$pkg/bin/kvvmd"
check "a second kvvmd exits 0 at once" "[ $? = 0 ]"
check "the first kvvmd still runs" "alive $pid && [ \"\$(head -1 '$pidf')\" = $pid ]"

# Between passes the process sleeps: no context switches while nothing is asked of it.
cs() { sed -n 's/^voluntary_ctxt_switches:\s*//p' "/proc/$pid/status"; }
before=$(cs)
sleep 2
check "no wake-ups while idle" "[ \"\$(cs)\" = '$before' ]"

# Rotation in Key Vault, picked up by the pass SIGUSR1 asks for.
v2=$(add_pfx web web2.example.com)
kill -USR1 "$pid"
wait_for "SIGUSR1 starts a pass that installs the new version" \
  "[ \"\$(readlink '$link')\" = myvault.web.$v2 ]"
check "the previous version is kept" "[ -f '$tmp/store/myvault.web.$v1' ]"

# It survives the store folder removed (the next pass puts the certificate back) and the
# status folder missing (the next pass writes it again).
rm -rf "$tmp/store" "$pkg/status"
kill -USR1 "$pid"
wait_for "a removed store folder is rebuilt by the next pass" \
  "[ -f '$link' ] && [ \"\$(readlink '$link')\" = myvault.web.$v2 ]"
wait_for "a missing status folder is written again" "[ \"\$(status_of 1)\" = success ]"
check "kvvmd survived both" "alive $pid"

# The pass runs in a fresh process of kvvmd (`kvvmd worker`, named kvvm-worker). A worker of
# a killed kvvmd can outlive it for a moment (its last system call still running); it holds
# kvvmd-worker.lock, played here by flock for 2 s: the next worker waits for it instead of
# writing the store beside it, then does its pass.
passes() { grep -c 'pass done' "$tmp/log/kvvm.log"; }
n0=$(passes)
flock "$tmp/state/kvvmd-worker.lock" sleep 2 &
holder=$!
sleep 0.3
kill -USR1 "$pid"
sleep 1
w=$(pgrep -P "$pid" | head -1)
check "the pass worker is kvvmd's own executable run as \`kvvmd worker\`" \
  "[ -n '$w' ] && [ \"\$(tr '\\0' ' ' < /proc/$w/cmdline)\" = 'kvvmd worker ' ] &&
   [ \"\$(cat /proc/$w/comm)\" = kvvm-worker ] && [ /proc/$w/exe -ef '$pkg/bin/kvvmd' ]"
check "its pass waits while another worker holds kvvmd-worker.lock" \
  "[ \"\$(passes)\" = $n0 ] && alive $holder"
wait_for "and runs once the lock is free" "[ \"\$(passes)\" -gt $n0 ]"

# A new sequence number: enable says transitioning, kvvmd reloads (SIGHUP) and reports it.
settings 2 600
ConfigSequenceNumber=2 "$pkg/bin/enable"
check "kvvmd kept its pid across a settings change" "[ \"\$(head -1 '$pidf')\" = $pid ]"
wait_for "seq 2 reaches success" "[ \"\$(status_of 2)\" = success ]"
check "kvvmd logged the reload" "grep -q 'serving settings of sequence 2' '$tmp/log/kvvm.log'"

# Invalid settings: error at once, exit non-zero, and kvvmd keeps the last good settings.
cat >"$pkg/config/3.settings" <<'EOF'
{"runtimeSettings":[{"handlerSettings":{"publicSettings":{"secretsManagementSettings":{
 "observedCertificates":["http://myvault.vault.azure.net/secrets/web"]}}}}]}
EOF
ConfigSequenceNumber=3 "$pkg/bin/enable" 2>/dev/null
check "enable with bad settings exits non-zero" "[ $? != 0 ]"
check "seq 3 status is error" "[ \"\$(status_of 3)\" = error ]"
check "the error names the key" "grep -q 'observedCertificates' '$pkg/status/3.status'"
check "kvvmd still runs the last good settings" "alive $pid && [ \"\$(cat '$pkg/mrseq')\" = 2 ]"

# A killed daemon is revived by the next enable with the same sequence number.
kill -9 "$pid"
sleep 0.2
ConfigSequenceNumber=2 "$pkg/bin/enable"
check "enable revives a killed kvvmd" "[ \"\$(head -1 '$pidf')\" != $pid ] && alive \"\$(head -1 '$pidf')\""
pid=$(head -1 "$pidf")

# A killed kvvmd whose pass worker still holds the lock for a moment (its last system call
# still running): played here by a process holding kvvmd.lock for 1 s after kvvmd is
# killed. enable must start a new kvvmd, which waits for the lock instead of giving way.
kill -9 "$pid"
flock "$tmp/state/kvvmd.lock" sleep 1 &
holder=$!
sleep 0.2
ConfigSequenceNumber=2 "$pkg/bin/enable"
check "enable exits 0 while the dead kvvmd's lock is still held" "[ $? = 0 ]"
wait $holder
wait_for "with the dead kvvmd's lock still held, enable starts kvvmd, which takes the lock once free" \
  "[ \"\$(head -1 '$pidf' 2>/dev/null)\" != $pid ] && alive \"\$(head -1 '$pidf')\""
pid=$(head -1 "$pidf")

# SIGTERM: exits, releases the lock, removes its pid file; disable is idempotent.
"$pkg/bin/disable"
check "disable stops kvvmd" "! alive $pid"
check "kvvmd removed its pid file" "[ ! -f '$pidf' ]"
"$pkg/bin/disable"
check "a second disable exits 0" "[ $? = 0 ]"
check "nothing secret or settings body in the log" "! grep -q 'runtimeSettings' '$tmp/log/kvvm.log'"

echo "daemon: $passed passed, $failed failed"
[ "$failed" = 0 ]
