#!/bin/sh
# The systemd code path and the unit file, on a machine whose PID 1 is not systemd:
# enable runs with KVVM_SERVICE_MODE=systemd and a fake systemctl on PATH that records
# each call and runs ExecStart the way systemd would (detached). The unit enable writes is
# then checked with systemd-analyze verify and security --offline=true.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-svc.XXXXXX)
. "$top/tests/system/lib.sh"

pkg=$tmp/Kvvm.Azure.KeyVaultCerts-0.1.0
cleanup() {
  [ -f "$tmp/state/kvvmd.pid" ] && kill "$(head -1 "$tmp/state/kvvmd.pid")" 2>/dev/null
  rm -rf "$tmp"
}
[ -n "${KEEP:-}" ] || trap cleanup EXIT
. "$top/scripts/stage-package.sh"
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"
mkdir -p "$tmp/units" "$tmp/fakebin"
cat >"$pkg/config/0.settings" <<'EOF'
{"runtimeSettings":[{"handlerSettings":{"publicSettings":{"secretsManagementSettings":{
 "pollingIntervalInS":"3600","observedCertificates":[{"url":"https://myvault.vault.azure.net/secrets/web",
 "certificateStoreName":"MY","certificateStoreLocation":"LocalMachine","accounts":["nobody"]}]},
 "authenticationSettings":{"msiEndpoint":"http://127.0.0.1:9/metadata/identity"}}}}]}
EOF

# The fake records "verb unit" per call; start/restart run ExecStart detached, like systemd.
cat >"$tmp/fakebin/systemctl" <<'EOF'
#!/bin/sh
echo "$*" >>"$FAKE_SYSTEMCTL_LOG"
unit=$KVVM_UNIT_DIR/kvvmd.service
pidf=$KVVM_STATE_DIR/kvvmd.pid
stop() { [ -f "$pidf" ] && kill "$(head -1 "$pidf")" 2>/dev/null; sleep 0.3; }
case "$1" in
  is-active) [ -f "$pidf" ] && kill -0 "$(head -1 "$pidf")" 2>/dev/null; exit $? ;;
  start|restart)
    stop
    exe=$(sed -n 's/^ExecStart=//p' "$unit")
    setsid "$exe" </dev/null >/dev/null 2>&1 &
    sleep 0.5 ;;
  stop) stop ;;
  reload) kill -HUP "$(head -1 "$pidf")" ;;
esac
exit 0
EOF
chmod +x "$tmp/fakebin/systemctl"

# Nothing leaves the machine: identity and vault point at a closed loopback port.
export KVVM_CONNECT_TO=myvault.vault.azure.net:443:127.0.0.1:9
export KVVM_SERVICE_MODE=systemd KVVM_UNIT_DIR=$tmp/units KVVM_STATE_DIR=$tmp/state
export KVVM_STORE_ROOT=$tmp/store FAKE_SYSTEMCTL_LOG=$tmp/calls PATH="$tmp/fakebin:$PATH"
export ConfigSequenceNumber=0 AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg
unit=$tmp/units/kvvmd.service

"$pkg/bin/enable"
check "enable exits 0 in systemd mode" "[ $? = 0 ]"
check "unit written" "[ -f '$unit' ]"
check "unit runs this package's kvvmd" "grep -qx 'ExecStart=$pkg/bin/kvvmd' '$unit'"
check "store folder is writable in the sandbox" "grep -q 'ReadWritePaths=.*-$tmp/store' '$unit'"
# kvvm.log lives in the agent's log folder, under /var/log: read-only in the sandbox otherwise.
check "the agent's log folder is writable in the sandbox" "grep -qE 'ReadWritePaths=.*-$tmp/log( |\$)' '$unit'"
# $tmp is 0700: kvvmd gives "nobody" a traverse entry there, so it must be writable too.
check "a closed folder above a granted store is writable in the sandbox" \
  "grep -qE 'ReadWritePaths=.*-$tmp( |\$)' '$unit'"
check "environment file holds the testing aids" "grep -q '^KVVM_STATE_DIR=\"$tmp/state\"' '$tmp/state/kvvmd.env'"
cp "$tmp/calls" "$tmp/first-calls"
check "daemon-reload, enable, start in that order" \
  "[ \"\$(cut -d' ' -f1 '$tmp/first-calls' | tr '\n' ' ')\" = 'daemon-reload enable is-active start ' ]"
sleep 1
check "kvvmd runs and reported success" "grep -q '\"status\": *\"success\"' '$pkg/status/0.status'"

: >"$tmp/calls"
"$pkg/bin/enable"
check "a repeated enable touches nothing in systemd" "[ ! -s '$tmp/calls' ]"

sed -i 's/"3600"/"600"/' "$pkg/config/0.settings"
"$pkg/bin/enable"
check "changed settings with the same seq: reload" "grep -qx 'reload kvvmd.service' '$tmp/calls'"

"$pkg/bin/disable"
check "disable stops the unit" "grep -qx 'stop kvvmd.service' '$tmp/calls'"
check "kvvmd is gone after disable" "[ ! -f '$tmp/state/kvvmd.pid' ]"
check "disable takes the unit off the boot (a reboot must not bring kvvmd back)" \
  "grep -qx 'disable kvvmd.service' '$tmp/calls'"
: >"$tmp/calls"
"$pkg/bin/enable"
check "enable after a disable puts the unit back on the boot and starts it" \
  "grep -qx 'enable kvvmd.service' '$tmp/calls' && grep -qx 'start kvvmd.service' '$tmp/calls'"
"$pkg/bin/disable"

# systemd-analyze checks the unit as systemd would load it.
if systemd-analyze verify "$unit" >"$tmp/verify" 2>&1; then ok "systemd-analyze verify"
else bad "systemd-analyze verify: $(cat "$tmp/verify")"; fi
systemd-analyze security --offline=true "$unit" >"$tmp/sec" 2>&1
score=$(sed -n 's/.*Overall exposure level for kvvmd.service: \([0-9.]*\).*/\1/p' "$tmp/sec")
echo "systemd-analyze security exposure: ${score:-?} (0 = most locked down, 10 = unprotected)"
check "exposure score at most 2.5" "awk 'BEGIN{exit !(\"${score:-99}\" + 0 <= 2.5)}'"
# The store gives a new file back to root:root with fchown (a setgid folder); @privileged,
# which the unit denies, holds the chown family. The last SystemCallFilter line that names
# fchown's group must allow it, and a call outside the filter must fail, not kill kvvmd.
check "@privileged includes the chown group (the premise of the next check)" \
  "systemd-analyze syscall-filter @privileged 2>/dev/null | grep -qw '@chown'"
check "the unit allows the chown family after denying @privileged" \
  "awk '/^SystemCallFilter=~@privileged/{d=NR} /^SystemCallFilter=@chown\$/{a=NR} END{exit !(d && a > d)}' '$unit'"
check "a filtered call fails with EPERM instead of killing kvvmd" \
  "grep -qx 'SystemCallErrorNumber=EPERM' '$unit'"

"$pkg/bin/uninstall"
check "uninstall removes the unit it owns" "[ ! -f '$unit' ]"
check "uninstall removes the state folder" "[ ! -d '$tmp/state' ]"

echo "service: $passed passed, $failed failed"
[ "$failed" = 0 ]
