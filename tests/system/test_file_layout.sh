#!/bin/sh
# fileLayout as a server reads it: Debian's real nginx, started here on loopback as root with
# its own configuration (pid, logs and temp folders under this test's folder), serves
# <store>/web.live/fullchain.pem with <store>/web.live/privkey.pem. `kvvm run --once` against
# the emulator installs a certificate signed by a test CA; `openssl s_client` sees it with
# the CA after it; the emulator rotates the secret, a pass installs the new version, the
# renewal hook (given KVVM_FULLCHAIN_FILE and KVVM_KEY_FILE) reloads nginx, and s_client sees
# the new certificate with its chain. nginx must never log a key mismatch, and the reload
# must have worked. Everything started here is stopped here.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-layout.XXXXXX)
. "$top/tests/system/lib.sh"

nginx=/usr/sbin/nginx
if [ ! -x "$nginx" ] && ! sh "$top/scripts/deps.sh" test >"$tmp/deps.log" 2>&1; then
  echo "skipped: nginx cannot be installed: $(tail -1 "$tmp/deps.log")"
  echo "file_layout: 0 passed, 0 failed, 1 skipped"
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
  exit 0
fi

pkg=$tmp/Kvvm.Azure.KeyVaultCerts-0.1.0
kvvm=$pkg/bin/kvvm
ngx=$tmp/ngx
ngx_pid=
cleanup() {
  [ -n "$ngx_pid" ] && kill "$ngx_pid" 2>/dev/null && wait "$ngx_pid" 2>/dev/null
  [ -f "$tmp/emu/emu.json" ] && kill "$(emu pid)" 2>/dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
. "$top/scripts/stage-package.sh"
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"

# A test CA, and secrets whose PFX holds a leaf it signed and the CA (as Key Vault's do).
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=kvvm-layout-ca -days 30 \
  -addext basicConstraints=critical,CA:TRUE -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
add_chained() {  # name, CN: posts a new version, prints it; the leaf is left in $tmp/<name>.crt
  openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$tmp/k.pem" \
    -out "$tmp/r.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$2" >"$tmp/ext"
  openssl x509 -req -in "$tmp/r.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -days 20 \
    -set_serial "$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" -extfile "$tmp/ext" \
    -out "$tmp/$1.crt" 2>/dev/null
  openssl pkcs12 -export -inkey "$tmp/k.pem" -in "$tmp/$1.crt" -certfile "$tmp/ca.crt" \
    -passout pass: -out "$tmp/w.pfx"
  printf '{"vault":"myvault.vault.azure.net","name":"%s","contentType":"application/x-pkcs12","value":"%s"}' \
    "$1" "$(base64 -w0 "$tmp/w.pfx")" >"$tmp/body"
  control /secrets @"$tmp/body" | sed -n 's/.*"version": *"\([0-9a-f]*\)".*/\1/p'
}
fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" 2>/dev/null; }

start_emulator
v1=$(add_chained web web.example.com)
cp "$tmp/web.crt" "$tmp/web1.crt"
export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=myvault.vault.azure.net:443:127.0.0.1:$(emu kv_port)
store=$tmp/store
export KVVM_SERVICE_MODE=detached KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$store
export KVVM_HOOKS_DIR=$tmp/hooks.d AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg
printf '{"secretsManagementSettings":{"observedCertificates":[{"url":"https://myvault.vault.azure.net/secrets/web","customSymbolicLinkName":"web","fileLayout":"certbot"}]},"authenticationSettings":{"msiEndpoint":"http://127.0.0.1:%s/metadata/identity"}}' \
  "$(emu imds_port)" >"$tmp/run.json"

# The renewal hook: records what it was given, then reloads this test's nginx.
mkdir -m 0755 "$KVVM_HOOKS_DIR" "$ngx"
cat >"$KVVM_HOOKS_DIR/50-nginx" <<HOOK
#!/bin/sh
[ "\$KVVM_HOOK_EVENT" = pass ] && exit 0
env | grep '^KVVM_' | sort >"$tmp/hook.\$KVVM_HOOK_EVENT"
[ -f "$ngx/nginx.pid" ] || exit 0
$nginx -e "$ngx/error.log" -p "$ngx" -c "$ngx/nginx.conf" -s reload
HOOK
chmod 0755 "$KVVM_HOOKS_DIR/50-nginx"

"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
check "run --once installs web (version $v1)" "grep -q '^installed .*secrets/web' '$tmp/out'"
check "web.live names web.certbot.$v1" "[ \"\$(readlink '$store/web.live')\" = web.certbot.$v1 ]"
check "the install hook was given the files through the link" \
  "grep -qx 'KVVM_FULLCHAIN_FILE=$store/web.live/fullchain.pem' '$tmp/hook.install' && \
   grep -qx 'KVVM_KEY_FILE=$store/web.live/privkey.pem' '$tmp/hook.install' && \
   grep -qx 'KVVM_FILES_DIR=$store/web.live' '$tmp/hook.install'"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for d in body proxy fastcgi uwsgi scgi; do mkdir "$ngx/$d"; done
cat >"$ngx/nginx.conf" <<CONF
pid $ngx/nginx.pid;
error_log $ngx/error.log notice;
worker_processes 1;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $ngx/body;
  proxy_temp_path $ngx/proxy;
  fastcgi_temp_path $ngx/fastcgi;
  uwsgi_temp_path $ngx/uwsgi;
  scgi_temp_path $ngx/scgi;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $store/web.live/fullchain.pem;
    ssl_certificate_key $store/web.live/privkey.pem;
    location / { return 200 "ok\n"; }
  }
}
CONF
"$nginx" -e "$ngx/error.log" -p "$ngx" -c "$ngx/nginx.conf" -g 'daemon off;' >"$tmp/nginx.out" 2>&1 &
ngx_pid=$!
# The served chain, one PEM a file: $tmp/served.1 (the leaf), served.2, ...
served() {
  rm -f "$tmp"/served.*
  openssl s_client -connect "127.0.0.1:$port" -servername web.example.com -showcerts \
    </dev/null 2>/dev/null | awk -v o="$tmp/served." \
    '/BEGIN CERT/ { n++ } n && !done[n] { print > (o n) } /END CERT/ { done[n] = 1 }'
  [ -s "$tmp/served.1" ]
}
i=0
until served || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
check "nginx serves TLS on 127.0.0.1:$port" "[ -s '$tmp/served.1' ]"
check "s_client sees the first certificate, then the CA" \
  "[ \"\$(fp '$tmp/served.1')\" = \"\$(fp '$tmp/web1.crt')\" ] && \
   [ \"\$(fp '$tmp/served.2')\" = \"\$(fp '$tmp/ca.crt')\" ] && [ ! -e '$tmp/served.3' ]"

# The emulator rotates the secret; a pass installs it and the hook reloads nginx.
v2=$(add_chained web web.example.com)
"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
check "run --once installs the new version $v2" \
  "grep -q '^installed .*secrets/web' '$tmp/out' && [ \"\$(readlink '$store/web.live')\" = web.certbot.$v2 ]"
check "the renew hook ran" "grep -qx 'KVVM_VERSION=$v2' '$tmp/hook.renew'"
i=0
until { served && [ "$(fp "$tmp/served.1")" = "$(fp "$tmp/web.crt")" ]; } || [ $i -ge 100 ]; do
  sleep 0.1
  i=$((i + 1))
done
check "after the reload s_client sees the new certificate, then the CA" \
  "[ \"\$(fp '$tmp/served.1')\" = \"\$(fp '$tmp/web.crt')\" ] && \
   [ \"\$(fp '$tmp/served.1')\" != \"\$(fp '$tmp/web1.crt')\" ] && \
   [ \"\$(fp '$tmp/served.2')\" = \"\$(fp '$tmp/ca.crt')\" ]"
check "nginx reloaded (reconfiguring, new worker) without an emergency" \
  "grep -q 'reconfiguring' '$ngx/error.log' && ! grep -q '\\[emerg\\]' '$ngx/error.log'"
check "nginx never logged a key mismatch" "! grep -q 'key values mismatch' '$ngx/error.log'"
check "the old version's folder is kept for the retention" "[ -d '$store/web.certbot.$v1' ]"
"$kvvm" status --json >"$tmp/status.json" 2>/dev/null
check "kvvm status --json names the link and the layout" \
  "/usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))[\"certificates\"][0]; sys.exit(not (c[\"files\"] == sys.argv[2] and c[\"file_layout\"] == \"certbot\"))' '$tmp/status.json' '$store/web.live'"

kill "$ngx_pid" && wait "$ngx_pid" 2>/dev/null
check "nginx stopped" "! kill -0 $ngx_pid 2>/dev/null"
ngx_pid=
echo "file_layout: $passed passed, $failed failed"
[ "$failed" = 0 ]
