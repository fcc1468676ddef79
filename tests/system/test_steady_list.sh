#!/bin/sh
# The steady pass against the emulator (README, "Each pass: list, then fetch what changed"),
# with kvvm run --once repeated on one state: 60 certificates in one vault are fetched once,
# then found unchanged by a listing of 3 pages (no GET); a rotation costs the listing and one
# GET; a vault that refuses to list (403, a policy with get only) is asked per secret with
# nothing shown to the user, and remembered: the next pass does not try to list it.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-steady.XXXXXX)
. "$top/tests/system/lib.sh"

n=60
pkg=$tmp/Kvvm.Azure.KeyVaultCerts-0.1.0
cleanup() {
  [ -f "$tmp/emu/emu.json" ] && kill "$(emu pid)" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
. "$top/scripts/stage-package.sh"
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"

start_emulator
add_pfx c000 c.example.com >/dev/null
# The same PFX under n names, made a day ago, as certificates are.
post_all() {  # created
  /usr/bin/python3 - "$(emu control_port)" "$tmp/body" "$n" "$1" <<'PY'
import http.client, json, sys
port, body, n, created = int(sys.argv[1]), json.load(open(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    body.update(name="c%03d" % i, created=created)
    c.request("POST", "/secrets", json.dumps(body), {"Content-Type": "application/json"})
    assert c.getresponse().read() and True
PY
}
post_all $(($(date +%s) - 86400))

export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=myvault.vault.azure.net:443:127.0.0.1:$(emu kv_port)
export KVVM_SERVICE_MODE=detached KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$tmp/store
export KVVM_HOOKS_DIR=$tmp/no-hooks AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg
msi="http://127.0.0.1:$(emu imds_port)/metadata/identity"
urls=$(i=0; while [ $i -lt $n ]; do
  printf '%s"https://myvault.vault.azure.net/secrets/c%03d"' "${sep:-}" $i; sep=,; i=$((i + 1))
done)
printf '{"secretsManagementSettings":{"pollingIntervalInS":"3600","observedCertificates":[%s]},"authenticationSettings":{"msiEndpoint":"%s"}}' \
  "$urls" "$msi" >"$tmp/run.json"

# Requests since the last call: list pages, GETs of one secret, 403s.
counts() {
  curl -s "http://127.0.0.1:$(emu control_port)/stats" | /usr/bin/python3 -c '
import json, sys
kv = [e for e in json.load(sys.stdin)["log"] if e["target"] == "kv" and e.get("auth") == "bearer"]
print(sum(e.get("op") == "list" for e in kv), sum(e.get("op") == "get" for e in kv),
      sum(e["status"] == 403 for e in kv))'
  control /stats/reset '{}' >/dev/null
}
pass() {  # what: one kvvm run --once; $tmp/out, $tmp/err, $rc
  "$pkg/bin/kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>"$tmp/err"
  rc=$?
  set -- $(counts)
  lists=$1 gets=$2 refused=$3
  echo "  $what: exit $rc, $lists list request(s), $gets GET(s), $refused 403(s)"
}
all_installed() { [ "$(grep -c '^installed ' "$tmp/out")" = $n ] && [ ! -s "$tmp/err" ]; }

control /stats/reset '{}' >/dev/null
what="first pass" pass
check "the first pass fetches each secret (nothing recorded to compare a listing with)" \
  "[ $rc = 0 ] && [ $lists = 0 ] && [ $gets = $n ] && all_installed"
check "installed.json records what each fetch saw" \
  "[ \$(grep -o '\"seen\"' '$tmp/state/installed.json' | wc -l) = $n ]"

what="steady pass" pass
check "the steady pass lists 3 pages and asks no secret" \
  "[ $rc = 0 ] && [ $lists = 3 ] && [ $gets = 0 ] && all_installed"

new=$(add_pfx c007 rotated.example.com)
what="after a rotation" pass
check "a rotation costs the listing and one GET, and is installed" \
  "[ $rc = 0 ] && [ $lists = 3 ] && [ $gets = 1 ] && all_installed && grep -q 'c007.*$new' '$tmp/out'"

control /faults '{"target": "kv", "mode": "403", "op": "list"}' >/dev/null
what="list refused" pass
check "a vault refusing to list is asked per secret, with no error shown" \
  "[ $rc = 0 ] && [ $lists = 1 ] && [ $refused = 1 ] && [ $gets = $n ] && all_installed"
check "nothing the user sees names the refusal (kvvm run has no log file: stderr is empty)" \
  "! grep -qiwE '403|list|listing|refused|warn|warning|error' '$tmp/out'"
check "the refusal is remembered in installed.json" \
  "grep -q '\"list_refused_at\": *[1-9]' '$tmp/state/installed.json'"
what="next pass" pass
check "the next pass does not try to list it again" \
  "[ $rc = 0 ] && [ $lists = 0 ] && [ $gets = $n ] && all_installed"
echo "steady_list: $passed passed, $failed failed"
[ "$failed" = 0 ]
