#!/bin/sh
# Per-certificate identity (authenticationOverride), against the emulator (tests/emulator):
# two user-assigned identities, A for authenticationSettings and B for two certificates'
# overrides, and B refused (403) on one secret. One `kvvm run --once` pass: the identity
# endpoint asked exactly once per identity (not once per certificate), every request made
# with its certificate's identity, the refused certificate's words naming B, the others
# installed. Then under Azure Arc (one identity only), the override is that certificate's
# error and the certificates without one still install.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-ident.XXXXXX)
. "$top/tests/system/lib.sh"

pkg=$tmp/Kvvm.Azure.KeyVaultCerts-0.1.0
cleanup() {
  [ -f "$tmp/emu/emu.json" ] && kill "$(emu pid)" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
. "$top/scripts/stage-package.sh"
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"

start_emulator
for name in a1 a2 b1 b2; do add_pfx $name $name.example.com >/dev/null; done
id_of() { control /identities '{}' | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])'; }
A=$(id_of)
B=$(id_of)
control /identity '{"system": false}' >/dev/null
control /faults "{\"target\":\"kv\",\"mode\":\"403\",\"secret\":\"b2\",\"identity\":\"$B\"}" >/dev/null

export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=myvault.vault.azure.net:443:127.0.0.1:$(emu kv_port)
export KVVM_SERVICE_MODE=detached KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$tmp/store
export KVVM_HOOKS_DIR=$tmp/no-hooks AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg
u="https://myvault.vault.azure.net/secrets"
ov="\"authenticationOverride\":{\"msiClientId\":\"$B\"}"
certs="{\"url\":\"$u/a1\"},{\"url\":\"$u/a2\"},{\"url\":\"$u/b1\",$ov},{\"url\":\"$u/b2\",$ov}"
settings() {  # the authenticationSettings object
  printf '{"secretsManagementSettings":{"observedCertificates":[%s]},"authenticationSettings":%s}' \
    "$certs" "$1" >"$tmp/run.json"
}

# Per identity: token requests; per secret: the identity its request used and the status.
seen() {
  curl -s "http://127.0.0.1:$(emu control_port)/stats" | /usr/bin/python3 -c '
import json, sys
log = json.load(sys.stdin)["log"]
a, b = sys.argv[1], sys.argv[2]
name = {a: "A", b: "B"}
print(" ".join("%s=%d" % (n, len([e for e in log if e["target"] == "imds" and e.get("identity") == i]))
               for i, n in ((a, "A"), (b, "B"))))
print(" ".join(sorted("%s:%s:%s" % (e["path"].split("?")[0].split("/")[2], name.get(e.get("identity"), "?"),
                                    e["status"]) for e in log if e["target"] == "kv")))' "$A" "$B"
  control /stats/reset '{}' >/dev/null
}

settings "{\"msiEndpoint\":\"http://127.0.0.1:$(emu imds_port)/metadata/identity\",\"msiClientId\":\"$A\"}"
control /stats/reset '{}' >/dev/null
"$pkg/bin/kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>"$tmp/err"
rc=$?
seen >"$tmp/seen"
echo "  run --once: exit $rc; $(head -1 "$tmp/seen"); $(tail -1 "$tmp/seen")"
check "one token request per identity, not per certificate" "[ \"\$(head -1 '$tmp/seen')\" = 'A=1 B=1' ]"
check "each request made with its certificate's identity; b2 refused" \
  "[ \"\$(tail -1 '$tmp/seen')\" = 'a1:A:200 a2:A:200 b1:B:200 b2:B:403' ]"
check "three installed" "[ \$(grep -c '^installed ' '$tmp/out') = 3 ] && ! grep -q '^installed .*/b2 ' '$tmp/out'"
# Refused access can be granted later: pending, not failed.
check "the refused certificate's words name identity B" \
  "grep '^pending .*/secrets/b2 ' '$tmp/out' | grep -q 'the user-assigned identity with client id $B may not read secret b2'"
check "and not identity A" "grep -q '^pending .*/secrets/b2 ' '$tmp/out' && ! grep '/secrets/b2 ' '$tmp/out' | grep -q '$A'"
check "run --once exits non-zero (a certificate is not installed)" "[ $rc != 0 ]"

# Azure Arc: the system-assigned identity only. The override is the error of b1 and b2,
# naming its key; a1 and a2 (no override) install.
control /identity '{"system": true}' >/dev/null
curl -s -X DELETE "http://127.0.0.1:$(emu control_port)/faults" >/dev/null
settings '{}'
export KVVM_ARC_TOKENS_DIR=$(emu arc_tokens_dir)
rm -rf "$tmp/state" "$tmp/store"
IDENTITY_ENDPOINT=http://127.0.0.1:$(emu arc_port)/metadata/identity/oauth2/token "$pkg/bin/kvvm" run --config "$tmp/run.json" --once \
  >"$tmp/out2" 2>"$tmp/err2"
rc=$?
echo "  under Arc: exit $rc"
check "under Arc the certificates without an override install" \
  "grep -q '^installed .*/secrets/a1 ' '$tmp/out2' && grep -q '^installed .*/secrets/a2 ' '$tmp/out2'"
check "under Arc an override is that certificate's error, naming its key" \
  "grep -A1 '^failed .*/secrets/b1' '$tmp/out2' | grep -q 'Azure Arc offers only the machine.s system-assigned identity; remove secretsManagementSettings.observedCertificates\[2\].authenticationOverride.msiClientId'"
check "under Arc the settings are not refused as a whole" "! grep -q 'invalid settings' '$tmp/err2'"

echo "identities: $passed passed, $failed failed"
[ "$failed" = 0 ]
