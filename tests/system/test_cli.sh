#!/bin/sh
# The kvvm CLI against the emulator (tests/emulator): check-settings on every document form,
# run --once, status (table and --json), wait (installed, and timing out on a 403), sync-now,
# and the one-instance lock shared with kvvmd. Nothing leaves the machine: the identity
# endpoint is the emulator's IMDS and KVVM_CONNECT_TO pins the vault host to loopback.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-cli.XXXXXX)
. "$top/tests/system/lib.sh"

pkg=$tmp/Kvvm.Azure.KeyVaultCerts-0.1.0
kvvm=$pkg/bin/kvvm
pidf=$tmp/state/kvvmd.pid
cleanup() {
  [ -f "$pidf" ] && kill -9 "$(head -1 "$pidf")" 2>/dev/null
  [ -f "$tmp/emu/emu.json" ] && kill "$(emu pid)" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
. "$top/scripts/stage-package.sh"
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"

start_emulator
v1=$(add_pfx web web.example.com)
add_pfx locked locked.example.com >/dev/null
control /faults '{"target":"kv","secret":"locked","mode":"403"}' >/dev/null
export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=myvault.vault.azure.net:443:127.0.0.1:$(emu kv_port)
export KVVM_SERVICE_MODE=detached KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$tmp/store
export KVVM_HOOKS_DIR=$tmp/no-hooks AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg
msi="http://127.0.0.1:$(emu imds_port)/metadata/identity"
pub() {  # the ARM settings object for the secrets named
  urls=
  for s in "$@"; do urls="$urls${urls:+,}\"https://myvault.vault.azure.net/secrets/$s\""; done
  printf '{"secretsManagementSettings":{"pollingIntervalInS":"3600","observedCertificates":[%s]},"authenticationSettings":{"msiEndpoint":"%s"}}' \
    "$urls" "$msi"
}

# check-settings: every form, the key path of a problem, the PowerShell string.
pub web >"$tmp/arm.json"
printf '{"type":"Microsoft.Compute/virtualMachines/extensions","properties":{"publisher":"Kvvm.Azure","settings":%s}}' \
  "$(pub web | sed 's/https:/http:/')" >"$tmp/resource-bad.json"
printf '{"name":"kvvm","publisher":"Kvvm.Azure","typeHandlerVersion":"0.1","settings":%s}' "$(pub web)" >"$tmp/az.json"
printf '{"runtimeSettings":[{"handlerSettings":{"publicSettings":%s}}]}' "$(pub web)" >"$tmp/1.settings"
printf '"%s"' "$(pub web | sed 's/"/\\"/g')" >"$tmp/ps.json"
cs() { "$kvvm" check-settings "$@" >"$tmp/out" 2>"$tmp/err"; }
cs "$tmp/arm.json"
check "check-settings: ARM settings object is valid, exit 0" "[ $? = 0 ] && grep -q '^form: ARM settings object' '$tmp/out'"
check "check-settings prints the normalised config" "grep -q '\"vaultHost\":\"myvault.vault.azure.net\"' '$tmp/out'"
cs "$tmp/resource-bad.json"
check "check-settings: invalid resource exits 1" "[ $? = 1 ] && grep -q '^form: extension resource (ARM template)' '$tmp/out'"
check "the problem names its key path in the resource" \
  "grep -q '^invalid: properties.settings.secretsManagementSettings.observedCertificates\[0\]' '$tmp/out'"
printf '{"secretsManagementSettings":{"observedCertificates":["http://a1.vault.azure.net/secrets/x",%s]}}' \
  '"https://b2b.managedhsm.azure.net/secrets/y","https://good.vault.azure.net/secrets/z"' >"$tmp/two.json"
cs "$tmp/two.json"
check "check-settings reports every problem, each with its key path" \
  "[ $? = 1 ] && grep -q '^invalid: 2 problems' '$tmp/out' && \
   grep -q '^invalid: secretsManagementSettings.observedCertificates\[0\]: .*http://' '$tmp/out' && \
   grep -q '^invalid: secretsManagementSettings.observedCertificates\[1\]: .*managed HSM' '$tmp/out'"
cs "$tmp/az.json"
check "check-settings: az vm extension show output is valid" "[ $? = 0 ] && grep -q 'az vm extension show' '$tmp/out'"
cs "$tmp/1.settings"
check "check-settings: the agent's .settings file is valid" "[ $? = 0 ] && grep -q 'guest agent .settings' '$tmp/out'"
cs "$tmp/ps.json"
check "check-settings: the PowerShell string is read, with a warning" \
  "[ $? = 0 ] && grep -q '^warning: settings: arrived as a JSON string' '$tmp/out'"
check "and says how to fix it" "grep -q 'hashtable' '$tmp/out' && grep -q -- '--settings @settings.json' '$tmp/out'"
"$kvvm" check-settings - <"$tmp/resource-bad.json" >"$tmp/out" 2>&1
check "check-settings - reads standard input" "[ $? = 1 ] && grep -q 'properties.settings' '$tmp/out'"
"$kvvm" check-settings "$tmp/missing.json" >/dev/null 2>&1
check "check-settings on a missing file exits 2" "[ $? = 2 ]"

# Big documents: 10,000 certificates are read; 2,000 bad ones are each reported.
/usr/bin/python3 - "$tmp" <<'PY'
import json, sys
def doc(urls):
    return json.dumps({"secretsManagementSettings": {"observedCertificates": urls}})
good = ["https://vault%d.vault.azure.net/secrets/c%d" % (i % 50, i) for i in range(10000)]
bad = ["https://v%d.vault.azure.net/secrets/c%d" % (i % 5, i) for i in range(2000)]
open(sys.argv[1] + "/big.json", "w").write(doc(good))
open(sys.argv[1] + "/bigbad.json", "w").write(doc(bad))
PY
"$kvvm" check-settings "$tmp/big.json" >"$tmp/out" 2>&1
check "check-settings reads 10,000 certificates" "[ $? = 0 ] && grep -q '^valid: 10000 certificate' '$tmp/out'"
"$kvvm" check-settings "$tmp/bigbad.json" >"$tmp/out" 2>&1
check "check-settings reports each of 2,000 bad certificates, whole" \
  "[ $? = 1 ] && grep -q '^invalid: 2000 problems:' '$tmp/out' &&
   [ \$(grep -c '^invalid: secretsManagementSettings.observedCertificates\[[0-9]*\]: host .* starting with a letter)\$' '$tmp/out') = 2000 ]"

# --help for each subcommand, on stdout, exit 0.
for c in status check-settings wait sync-now run; do
  "$kvvm" $c --help >"$tmp/out" 2>&1
  check "$c --help" "[ $? = 0 ] && grep -q 'usage: kvvm $c' '$tmp/out'"
done

# run --once: the engine without the agent installs from the emulator.
pub web >"$tmp/run.json"
"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
check "run --once installs and exits 0" "[ $? = 0 ] && grep -q '^installed .*secrets/web .*version $v1' '$tmp/out'"
check "run --once put the certificate under its stable name" "[ \"\$(readlink '$tmp/store/myvault.web')\" = myvault.web.$v1 ]"
check "run --once released the lock and pid file" "[ ! -f '$pidf' ]"
pub web locked >"$tmp/run2.json"
"$kvvm" run --config "$tmp/run2.json" --once >"$tmp/out" 2>&1
check "run --once with a 403 exits 1" "[ $? = 1 ]"
check "it prints the pending certificate and why" "grep -q '^pending .*secrets/locked' '$tmp/out'"
# A machine without a usable libcurl (hidden here by /dev/null mounted over it, in a mount
# namespace of this command's own): a sentence naming what to install, not a loader error.
curl_so=$(readlink -f "$(/sbin/ldconfig -p | awk '/libcurl\.so\.4 .*x86-64/ { print $NF; exit }')")
unshare --mount --propagation private sh -c \
  "mount --bind /dev/null '$curl_so' && exec '$kvvm' run --config '$tmp/run.json' --once" \
  >"$tmp/out" 2>&1
check "without libcurl, run --once exits 1 and says what to install ($curl_so hidden)" \
  "[ $? = 1 ] && grep -q 'libcurl (libcurl.so.4) cannot be used: .*install the distribution.s libcurl package' '$tmp/out'"

# status without kvvmd: the table, exit 3.
"$kvvm" status >"$tmp/out" 2>&1
check "status exits 3 when kvvmd does not run" "[ $? = 3 ] && grep -q 'kvvmd: not running' '$tmp/out'"
check "status lists the stable path, version and thumbprint" \
  "grep -q '$tmp/store/myvault.web *$v1 *[0-9A-F]\{40\}' '$tmp/out'"

# Under the agent: enable starts kvvmd; wait returns once installed; status --json.
printf '{"runtimeSettings":[{"handlerSettings":{"publicSettings":%s}}]}' "$(pub web)" >"$pkg/config/1.settings"
ConfigSequenceNumber=1 "$pkg/bin/enable" >/dev/null 2>&1
"$kvvm" wait --timeout 20 >"$tmp/out" 2>&1
check "wait returns 0 once the certificate is installed" "[ $? = 0 ]"
i=0
while ! grep -q '"success"' "$pkg/status/1.status" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
"$kvvm" status --json >"$tmp/json" 2>&1
check "status --json exits 0 with kvvmd running and no error" "[ $? = 0 ]"
jq() { /usr/bin/python3 -c "import json,sys; d=json.load(open('$tmp/json')); print($1)"; }
check "status --json: kvvmd running with its pid" "[ \"\$(jq 'd[\"kvvmd\"][\"running\"], d[\"kvvmd\"][\"pid\"]')\" = \"True \$(head -1 '$pidf')\" ]"
check "status --json: the settings sequence" "[ \"\$(jq 'd[\"settings_seq\"]')\" = 1 ]"
check "status --json: version, link and expiry of web" \
  "[ \"\$(jq '[c for c in d[\"certificates\"] if c[\"url\"].endswith(\"/web\")][0][\"version\"]')\" = $v1 ] &&
   jq '[c for c in d[\"certificates\"] if c[\"url\"].endswith(\"/web\")][0][\"not_after\"]' | grep -q '^20..-..-..T'"
check "status --json: a certificate no longer in the settings is not observed" \
  "[ \"\$(jq '[c[\"observed\"] for c in d[\"certificates\"] if c[\"url\"].endswith(\"/locked\")][0]')\" = False ]"
"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
check "run refuses to start beside kvvmd (exit 3)" "[ $? = 3 ] && grep -q 'holds the lock' '$tmp/out'"
"$kvvm" sync-now
check "sync-now asks the running kvvmd" "[ $? = 0 ]"

# A certificate that cannot be fetched (403): wait times out, status reports the error.
printf '{"runtimeSettings":[{"handlerSettings":{"publicSettings":%s}}]}' "$(pub web locked)" >"$pkg/config/2.settings"
ConfigSequenceNumber=2 "$pkg/bin/enable" >/dev/null 2>&1
start=$(date +%s)
"$kvvm" wait --timeout 2 >"$tmp/out" 2>&1
rc=$?
check "wait times out with a non-zero exit" "[ $rc = 1 ] && [ \$((\$(date +%s) - $start)) -le 4 ]"
check "and names the certificate it waits for" "grep -q 'secrets/locked' '$tmp/out'"
"$kvvm" status >"$tmp/out" 2>&1
check "status exits 1 when a certificate has an error" "[ $? = 1 ] && grep -q 'secrets/locked' '$tmp/out'"

"$pkg/bin/disable" >/dev/null 2>&1
"$kvvm" sync-now 2>/dev/null
check "sync-now fails when kvvmd does not run" "[ $? != 0 ]"

echo "cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
