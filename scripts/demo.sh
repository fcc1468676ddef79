#!/bin/sh
# make demo: the main job on this machine, the way the guest agent runs it — install, then
# enable with a v3.0 settings document, kvvmd reporting status, then uninstall — all in a
# temporary folder (nothing under /var/lib or /etc is touched).
# Until the sync engine lands, kvvmd validates and reports; it downloads nothing yet.
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-demo.XXXXXX)
pkg=$tmp/lib/Kvvm.Azure.KeyVaultCerts-demo
trap '"$pkg/bin/uninstall" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

. "$top/scripts/stage-package.sh"
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"
cat >"$pkg/config/1.settings" <<'EOF'
{"runtimeSettings": [{"handlerSettings": {"publicSettings": {
  "secretsManagementSettings": {
    "pollingIntervalInS": "3600",
    "requireInitialSync": false,
    "observedCertificates": [
      {"url": "https://contoso-kv.vault.azure.net/secrets/web-tls",
       "certificateStoreName": "MY", "certificateStoreLocation": "LocalMachine",
       "accounts": ["www-data"]}]},
  "authenticationSettings": {"msiEndpoint": "http://127.0.0.1:9/metadata/identity"}},
  "protectedSettings": null, "protectedSettingsCertThumbprint": null}}]}
EOF

# Nothing leaves this machine: the identity endpoint and the vault are pinned to a closed
# loopback port (the emulator-backed demo comes with the sync issue).
export KVVM_CONNECT_TO=contoso-kv.vault.azure.net:443:127.0.0.1:9
export KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$tmp/store KVVM_SERVICE_MODE=detached
export ConfigSequenceNumber=1 AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg
echo "== install"; "$pkg/bin/install"
echo "== enable"; "$pkg/bin/enable"
for _ in 1 2 3 4 5 6 7 8 9 10; do
  grep -q '"transitioning"' "$pkg/status/1.status" || break
  sleep 0.5
done
echo "== status/1.status (what the guest agent reads)"; cat "$pkg/status/1.status"; echo
echo "== kvvm status"; "$pkg/bin/kvvm" status || true
echo "== kvvm check-settings"; "$pkg/bin/kvvm" check-settings "$pkg/config/1.settings" || true
echo "== kvvm.log"; cat "$tmp/log/kvvm.log"
echo "== uninstall"; "$pkg/bin/uninstall"
