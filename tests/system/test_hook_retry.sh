#!/bin/sh
# A renewal hook that fails once (a reload refused while the server was busy, say) through
# kvvmd under the agent's layout: the certificate's substatus says the hook failed, the top
# message says the pass hooks failed, and kvvmd runs the hooks again on its retry schedule
# (about 5 s later), after which the status is clean; the certificate is fetched again but
# nothing is rewritten.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-hookretry.XXXXXX)
pkg=$tmp/lib/Kvvm.Azure.KeyVaultCerts-test
cleanup() {
  "$pkg/bin/disable" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
. "$top/tests/system/lib.sh"
. "$top/scripts/stage-package.sh"

start_emulator
vault=myvault.vault.azure.net
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"
export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=$vault:443:127.0.0.1:$(emu kv_port)
export KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$tmp/store KVVM_SERVICE_MODE=detached
export KVVM_HOOKS_DIR=$tmp/hooks.d ConfigSequenceNumber=1 AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg
mkdir -m 0755 "$KVVM_HOOKS_DIR"
# Fails its first run (per event kind), succeeds after; counts every run.
cat >"$KVVM_HOOKS_DIR/50-reload" <<EOF
#!/bin/sh
echo "\$KVVM_HOOK_EVENT" >>$tmp/runs
[ -e "$tmp/failed.\$KVVM_HOOK_EVENT" ] && exit 0
touch "$tmp/failed.\$KVVM_HOOK_EVENT"
echo "reload refused: server busy" >&2
exit 3
EOF
chmod 0755 "$KVVM_HOOKS_DIR/50-reload"
v1=$(add_pfx web www.contoso.com)
cat >"$pkg/config/1.settings" <<END
{"runtimeSettings": [{"handlerSettings": {"publicSettings": {
  "secretsManagementSettings": {"pollingIntervalInS": "3600",
    "observedCertificates": ["https://$vault/secrets/web"]},
  "authenticationSettings": {"msiEndpoint": "http://127.0.0.1:$(emu imds_port)/metadata/identity"}}}}]}
END
status=$pkg/status/1.status
waitfor() {  # condition, seconds
  i=0
  while ! eval "$1" && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  eval "$1"
}

"$pkg/bin/install" && "$pkg/bin/enable"
check "the certificate is installed" "waitfor '[ -e \"$tmp/store/myvault.web\" ]' 20"
check "the failed hook shows on the certificate's substatus" \
  "waitfor 'grep -q \"renewal hook failed: 50-reload exited 3\" \"$status\"' 10"
check "the failed pass hook shows in the top message" "grep -q 'Pass hooks failed: 50-reload exited 3' '$status'"
inode=$(stat -c %i "$tmp/store/myvault.web.$v1")
start=$(date +%s)
check "kvvmd runs the hooks again on its own, and the status is clean after" \
  "waitfor '! grep -q \"hooks\\? failed\" \"$status\" && grep -q \"\\\"status\\\": *\\\"success\\\", *\\\"code\\\": *0\" \"$status\"' 30"
echo "  hook runs: $(tr '\n' ' ' <"$tmp/runs")(retried after about $(($(date +%s) - start)) s)"
check "the install and pass hooks ran twice each: the failure, then the retry" \
  "[ \$(grep -c '^install$' '$tmp/runs') = 2 ] && [ \$(grep -c '^pass$' '$tmp/runs') = 2 ]"
check "nothing was rewritten for the retry" "[ \"\$(stat -c %i '$tmp/store/myvault.web.$v1')\" = '$inode' ]"

echo "hook_retry: $passed passed, $failed failed"
[ "$failed" = 0 ]
