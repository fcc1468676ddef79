#!/bin/sh
# Tokens expiring in the middle of a pass, against the emulator (tests/emulator): the
# identity endpoint issues tokens valid for 3 s and the vault answers each request after
# 600 ms, so one pass over 200 certificates (16 in flight) outlives its token about three
# times. kvvm run --once, then kvvmd under the agent's layout: every certificate installed,
# the pass a success, about one token request per token lifetime (not one per certificate),
# at most the requests in flight refused (401) at each expiry, nothing logged as a warning
# or an error.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-tokexp.XXXXXX)
. "$top/tests/system/lib.sh"

n=200
lifetime=3     # the emulator counts whole seconds: a token serves lifetime - 1 s at least
latency_ms=600
inflight=16    # KVVM_KV_MAX_IN_FLIGHT
pkg=$tmp/Kvvm.Azure.KeyVaultCerts-0.1.0
pidf=$tmp/state2/kvvmd.pid
cleanup() {
  [ -f "$pidf" ] && kill -9 "$(head -1 "$pidf")" 2>/dev/null
  [ -f "$tmp/state/kvvmd.pid" ] && kill -9 "$(head -1 "$tmp/state/kvvmd.pid")" 2>/dev/null
  [ -f "$tmp/emu/emu.json" ] && kill "$(emu pid)" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
. "$top/scripts/stage-package.sh"
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"

start_emulator
# One PFX, served under n names (a key per certificate would only slow the test down).
add_pfx c000 c.example.com >/dev/null
/usr/bin/python3 - "$(emu control_port)" "$tmp/body" "$n" <<'PY'
import http.client, json, sys
port, body, n = int(sys.argv[1]), json.load(open(sys.argv[2])), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(1, n):
    body["name"] = "c%03d" % i
    c.request("POST", "/secrets", json.dumps(body), {"Content-Type": "application/json"})
    assert c.getresponse().read() and True
PY
control /identity "{\"expiresIn\": $lifetime}" >/dev/null
control /latency "{\"ms\": $latency_ms}" >/dev/null

export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=myvault.vault.azure.net:443:127.0.0.1:$(emu kv_port)
export KVVM_SERVICE_MODE=detached KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$tmp/store
export KVVM_HOOKS_DIR=$tmp/no-hooks AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg
msi="http://127.0.0.1:$(emu imds_port)/metadata/identity"
urls=$(i=0; while [ $i -lt $n ]; do
  printf '%s"https://myvault.vault.azure.net/secrets/c%03d"' "${sep:-}" $i; sep=,; i=$((i + 1))
done)
pub="{\"secretsManagementSettings\":{\"pollingIntervalInS\":\"3600\",\"observedCertificates\":[$urls]},\"authenticationSettings\":{\"msiEndpoint\":\"$msi\"}}"
printf '%s' "$pub" >"$tmp/run.json"

# What the emulator saw since the last call: token requests, Key Vault 401s and 200s.
counts() {
  curl -s "http://127.0.0.1:$(emu control_port)/stats" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
log = d["log"]
kv = [e for e in log if e["target"] == "kv"]
print(len([e for e in log if e["target"] == "imds"]), len([e for e in kv if e["status"] == 401]),
      len([e for e in kv if e["status"] == 200]))'
  control /stats/reset '{}' >/dev/null
}
# Token requests at most one per lifetime the pass lasted, and the first; 401s at most the
# requests in flight at each renewal.
bounded() {  # seconds, token requests, 401s
  [ "$2" -le $(($1 / (lifetime - 1) + 2)) ] && [ "$3" -le $((inflight * ($2 - 1))) ]
}

control /stats/reset '{}' >/dev/null
start=$(date +%s)
"$pkg/bin/kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>"$tmp/err"
rc=$?
secs=$(($(date +%s) - start))
set -- $(counts)
echo "  run --once: $secs s, $1 token requests, $2 answers 401, $3 answers 200"
check "the pass outlived at least two token lifetimes" "[ $secs -ge $((2 * lifetime)) ]"
check "run --once exits 0" "[ $rc = 0 ]"
check "every certificate installed" "[ \$(grep -c '^installed ' '$tmp/out') = $n ]"
check "nothing on stderr" "[ ! -s '$tmp/err' ]"
check "token requests about one per lifetime, 401s at most those in flight at each expiry" \
  "bounded $secs $1 $2"
check "each certificate answered 200 exactly once" "[ $3 = $n ]"

# kvvmd, from scratch (its own state and store, so every certificate is due), with
# requireInitialSync so that success means the first pass is done: status and log.
export KVVM_STATE_DIR=$tmp/state2 KVVM_STORE_ROOT=$tmp/store2
printf '{"runtimeSettings":[{"handlerSettings":{"publicSettings":%s}}]}' \
  "$(printf '%s' "$pub" | sed 's/"pollingIntervalInS"/"requireInitialSync":true,&/')" \
  >"$pkg/config/1.settings"
start=$(date +%s)
ConfigSequenceNumber=1 "$pkg/bin/enable" >/dev/null 2>&1
top_status() {  # the status file's own status (each certificate has one too)
  /usr/bin/python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))[0]["status"]["status"])' "$pkg/status/1.status" 2>/dev/null
}
i=0
while [ "$(top_status)" != success ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
secs=$(($(date +%s) - start))
set -- $(counts)
echo "  kvvmd: $secs s, $1 token requests, $2 answers 401, $3 answers 200"
check "kvvmd reports success once its first pass is done" \
  "[ \"\$(top_status)\" = success ] && grep -q '$n of $n certificate(s) installed' '$pkg/status/1.status'"
check "kvvmd: token requests and 401s bounded" "bounded $secs $1 $2 && [ $3 = $n ]"
# (but the one saying that test overrides are active, which they are)
check "the log holds no warning or error" \
  "! grep -h ' warn: \| error: ' '$tmp'/log/*.log | grep -v 'test overrides active'"
check "the log says why a token was renewed" "grep -q 'asking for a new token' '$tmp'/log/*.log"
"$pkg/bin/disable" >/dev/null 2>&1

echo "token_expiry: $passed passed, $failed failed"
[ "$failed" = 0 ]
