#!/bin/sh
# make demo: the whole product on this machine, the way the guest agent runs it, against the
# Key Vault emulator (tests/emulator) — install, enable with requireInitialSync, status going
# from transitioning to success, the certificate files, a rotation picked up by
# `kvvm sync-now` with a renewal hook firing, disable, uninstall — all in a temporary folder
# (nothing under /var/lib or /etc is touched, nothing leaves the machine: the identity
# endpoint is the emulator's and KVVM_CONNECT_TO pins the vault host to loopback).
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
started=$(date +%s)
tmp=$(mktemp -d /tmp/kvvm-demo.XXXXXX)
pkg=$tmp/lib/Kvvm.Azure.KeyVaultCerts-demo
kvvm=$pkg/bin/kvvm
vault=contoso-kv.vault.azure.net

say() { printf '\n== %s\n' "$*"; }
emu() { /usr/bin/python3 -c "import json; print(json.load(open('$tmp/emu/emu.json'))['$1'])"; }
cleanup() {
  "$pkg/bin/uninstall" >/dev/null 2>&1 || true
  # The emulator is our child: wait for it, so nothing of the demo outlives it.
  [ -n "${emu_pid:-}" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

say "Starting the Key Vault + managed identity emulator (loopback only)"
echo "Everything happens under \$TMP=$tmp (removed at the end)."
/usr/bin/python3 "$top/tests/emulator/kvemu.py" --dir "$tmp/emu" --lifetime 300 \
  --parent-pid $$ >"$tmp/emu.log" 2>&1 &
emu_pid=$!
i=0
while [ ! -f "$tmp/emu/emu.json" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
control() { curl -sf -X POST --data-binary "$2" "http://127.0.0.1:$(emu control_port)$1"; }
post_secret() {  # name, content type, file holding the value: prints the new version
  /usr/bin/python3 -c 'import json,sys; print(json.dumps({"vault": sys.argv[1], "name": sys.argv[2],
    "contentType": sys.argv[3], "value": open(sys.argv[4]).read()}))' \
    "$vault" "$1" "$2" "$3" >"$tmp/body"
  control /secrets @"$tmp/body" | sed -n 's/.*"version": *"\([0-9a-f]*\)".*/\1/p'
}

# A small PKI: root CA -> intermediate CA -> leaf, as a PFX with its chain; and a PEM one.
ca() { openssl "$@" 2>/dev/null; }
pki=$tmp/pki
mkdir -p "$pki"
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$pki/ca.ext"
printf 'subjectAltName=DNS:www.contoso.com\nextendedKeyUsage=serverAuth\n' >"$pki/leaf.ext"
ca req -x509 -newkey rsa:2048 -nodes -subj "/CN=Contoso Demo Root" -days 30 \
  -keyout "$pki/root.key" -out "$pki/root.pem" -addext basicConstraints=critical,CA:TRUE
ca req -newkey rsa:2048 -nodes -subj "/CN=Contoso Demo Issuing CA" -keyout "$pki/int.key" \
  -out "$pki/int.csr"
ca x509 -req -in "$pki/int.csr" -CA "$pki/root.pem" -CAkey "$pki/root.key" -CAcreateserial \
  -days 30 -extfile "$pki/ca.ext" -out "$pki/int.pem"
issue_pfx() {  # days: a new leaf from the intermediate, as a base64 PFX with the chain
  ca req -newkey rsa:2048 -nodes -subj "/CN=www.contoso.com" -keyout "$pki/leaf.key" \
    -out "$pki/leaf.csr"
  ca x509 -req -in "$pki/leaf.csr" -CA "$pki/int.pem" -CAkey "$pki/int.key" -CAcreateserial \
    -days "$1" -extfile "$pki/leaf.ext" -out "$pki/leaf.pem"
  cat "$pki/int.pem" "$pki/root.pem" >"$pki/chain.pem"
  ca pkcs12 -export -inkey "$pki/leaf.key" -in "$pki/leaf.pem" -certfile "$pki/chain.pem" \
    -passout pass: -out "$pki/leaf.pfx"
  base64 -w0 "$pki/leaf.pfx" >"$pki/leaf.b64"
}
issue_pfx 20  # valid 20 days: the status flags it (within 30 days, no newer version)
web1=$(post_secret web-tls application/x-pkcs12 "$pki/leaf.b64")
ca req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=api.contoso.com" \
  -days 60 -keyout "$pki/api.key" -out "$pki/api.pem"
cat "$pki/api.key" "$pki/api.pem" >"$pki/api-bundle.pem"
post_secret api-client application/x-pem-file "$pki/api-bundle.pem" >/dev/null
echo "The vault $vault holds web-tls (a PFX: leaf, issuing CA, root) and api-client (PEM, EC P-256)."
# The identity has no access at first: the first fetch of web-tls gets 403 once, so the
# status stays transitioning until kvvmd's retry (about 5 s later) succeeds.
control /faults '{"target":"kv","secret":"web-tls","mode":"403","count":1}' >/dev/null

export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=$vault:443:127.0.0.1:$(emu kv_port)
export KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$tmp/store KVVM_SERVICE_MODE=detached
export KVVM_HOOKS_DIR=$tmp/hooks.d ConfigSequenceNumber=1 AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg

# A renewal hook. kvvm runs only hooks that root owns and nobody else can write, in a folder
# chain likewise (/tmp itself is allowed above our own folder: it is sticky).
mkdir -m 0755 "$KVVM_HOOKS_DIR"
cat >"$KVVM_HOOKS_DIR/50-reload-web" <<EOF
#!/bin/sh
# A real one would reload the web server here.
case "\$KVVM_HOOK_EVENT" in
  pass) echo "hook ran: event=pass (\$KVVM_CHANGED_COUNT certificate(s) changed)" ;;
  *) echo "hook ran: event=\$KVVM_HOOK_EVENT \$KVVM_LINK version \$KVVM_VERSION" ;;
esac >>$tmp/hooks.log
EOF
chmod 0755 "$KVVM_HOOKS_DIR/50-reload-web"

. "$top/scripts/stage-package.sh"
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"
cat >"$pkg/config/1.settings" <<EOF
{"runtimeSettings": [{"handlerSettings": {"publicSettings": {
  "secretsManagementSettings": {
    "pollingIntervalInS": "3600",
    "requireInitialSync": true,
    "observedCertificates": [
      {"url": "https://$vault/secrets/web-tls", "certificateStoreName": "MY",
       "certificateStoreLocation": "LocalMachine"},
      {"url": "https://$vault/secrets/api-client", "certificateStoreName": "MY",
       "certificateStoreLocation": "LocalMachine"}]},
  "authenticationSettings": {"msiEndpoint": "http://127.0.0.1:$(emu imds_port)/metadata/identity"}}}}]}
EOF

show_status() {  # what the guest agent reads, in short
  /usr/bin/python3 - "$pkg/status/1.status" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))[0]["status"]
print("  status: %s: %s" % (s["status"], s["formattedMessage"]["message"]))
for sub in s.get("substatus", []):
    print("    %s %s: %s" % (sub["status"], sub["name"], sub["formattedMessage"]["message"]))
EOF
}
status_is() { grep -q "\"status\": *\"$1\", *\"code\"" "$pkg/status/1.status" 2>/dev/null; }

say "install (the agent runs it once per package version)"
"$pkg/bin/install"
say "enable: settings with requireInitialSync true; enable starts kvvmd and returns"
"$pkg/bin/enable"
echo "kvvmd runs: $("$kvvm" status | sed -n 's/^kvvmd: //p')"
i=0
while ! grep -q 'pending\|403\|first sync' "$pkg/status/1.status" 2>/dev/null && [ $i -lt 50 ]; do
  sleep 0.1
  i=$((i + 1))
done
echo "Right after enable the status is transitioning: extensions that depend on kvvm wait."
show_status
echo "kvvm wait blocks the same way (an application can run it before it starts) ..."
"$kvvm" wait --timeout 60
echo "Both certificates are in place; the status the agent reads is now:"
i=0
while ! status_is success && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
show_status

say "The certificate files: root-only, the stable names are symlinks to the versioned files"
ls -l "$tmp/store" | sed "s|$tmp|\$TMP|g"
stat -L -c '  %A %U:%G %n' "$tmp/store/contoso-kv.web-tls" | sed "s|$tmp|\$TMP|g"
echo "The web-tls file holds the leaf, its chain and the key (PKCS#8):"
grep -- '-----BEGIN' "$tmp/store/contoso-kv.web-tls" | sort | uniq -c
echo "Hooks so far (each certificate's install, then once per pass):"
sed "s|$tmp|\$TMP|g; s/^/  /" "$tmp/hooks.log"

say "kvvm status"
"$kvvm" status

say "Rotation: Key Vault gets a new version of web-tls; kvvm sync-now asks for a pass at once"
issue_pfx 25
web2=$(post_secret web-tls application/x-pkcs12 "$pki/leaf.b64")
"$kvvm" sync-now
i=0
while [ "$(readlink "$tmp/store/contoso-kv.web-tls")" != "contoso-kv.web-tls.$web2" ] && [ $i -lt 200 ]; do
  sleep 0.1
  i=$((i + 1))
done
echo "web-tls: $web1 -> $(readlink "$tmp/store/contoso-kv.web-tls" | sed 's/.*\.//')"
i=0
while ! grep -q 'event=renew' "$tmp/hooks.log" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
echo "The renewal hook fired:"
grep 'event=renew\|event=pass' "$tmp/hooks.log" | tail -2 | sed "s|$tmp|\$TMP|g; s/^/  /"
echo "The previous version is kept beside the new one:"
ls "$tmp/store" | grep web-tls | sed 's/^/  /'

say "disable: kvvmd stops (the certificates stay)"
"$pkg/bin/disable"
"$kvvm" status >/dev/null 2>&1 || echo "kvvm status: kvvmd not running (exit $?)"
say "uninstall: the unit and state go; installed certificates stay, as Microsoft's extension does"
"$pkg/bin/uninstall"
echo "kvvm log: $(wc -l <"$tmp/log/kvvm.log") lines; nothing secret in it:" \
  "$(grep -c 'BEGIN\|access_token' "$tmp/log/kvvm.log" || true) matches for keys or tokens"
say "Done in $(($(date +%s) - started)) s; the emulator is stopped and $tmp is removed."
