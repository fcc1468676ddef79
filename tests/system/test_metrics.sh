#!/bin/sh
# The metrics file as operators read it: Debian's real prometheus-node-exporter, started here
# on loopback with only its textfile collector, pointed at the folder of metricsTextfileDir
# and scraped over HTTP after `kvvm run --once` passes against the emulator: each
# certificate's series with its values (expiry = the certificate's notAfter; error 0 for a
# good one, 1 for one the vault refuses with 403), the pass's series, and the series of a
# certificate gone once the settings drop it; then kvvmd under enable writes it, and uninstall
# removes it. The exporter is stopped by this test.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-metrics.XXXXXX)
. "$top/tests/system/lib.sh"

exporter=/usr/bin/prometheus-node-exporter
if [ ! -x "$exporter" ] && ! sh "$top/scripts/deps.sh" test >"$tmp/deps.log" 2>&1; then
  echo "skipped: prometheus-node-exporter cannot be installed: $(tail -1 "$tmp/deps.log")"
  echo "metrics: 0 passed, 0 failed, 1 skipped"
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
  exit 0
fi

pkg=$tmp/Kvvm.Azure.KeyVaultCerts-0.1.0
kvvm=$pkg/bin/kvvm
exp_pid=
cleanup() {
  [ -n "$exp_pid" ] && kill "$exp_pid" 2>/dev/null && wait "$exp_pid" 2>/dev/null
  [ -f "$tmp/state/kvvmd.pid" ] && kill -9 "$(head -1 "$tmp/state/kvvmd.pid")" 2>/dev/null
  [ -f "$tmp/emu/emu.json" ] && kill "$(emu pid)" 2>/dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
. "$top/scripts/stage-package.sh"
stage_package "$top/$build/pkg" "$pkg" "$tmp/log"

# node_exporter on a free loopback port, reading $tmp/prom only.
mkdir "$tmp/prom"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$exporter" --web.listen-address=127.0.0.1:"$port" --collector.disable-defaults \
  --collector.textfile --collector.textfile.directory="$tmp/prom" >"$tmp/exporter.log" 2>&1 &
exp_pid=$!
i=0
until curl -sf "http://127.0.0.1:$port/metrics" >/dev/null || [ $i -ge 100 ]; do
  sleep 0.1
  i=$((i + 1))
done
check "node_exporter answers on 127.0.0.1:$port" "curl -sf 'http://127.0.0.1:$port/metrics' >/dev/null"

start_emulator
v1=$(add_pfx web web.example.com)
cp "$tmp/c.pem" "$tmp/web.pem"
add_pfx locked locked.example.com >/dev/null
control /faults '{"target":"kv","secret":"locked","mode":"403"}' >/dev/null
export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=myvault.vault.azure.net:443:127.0.0.1:$(emu kv_port)
# A store folder with a double quote and a backslash: its label must survive the format.
store='st"o\re'
export KVVM_SERVICE_MODE=detached KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT="$tmp/$store"
export KVVM_HOOKS_DIR=$tmp/no-hooks AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg
msi="http://127.0.0.1:$(emu imds_port)/metadata/identity"
settings() {  # the secrets named, with the metrics file in $tmp/prom
  urls=
  for s in "$@"; do urls="$urls${urls:+,}\"https://myvault.vault.azure.net/secrets/$s\""; done
  printf '{"secretsManagementSettings":{"metricsTextfileDir":"%s","observedCertificates":[%s]},"authenticationSettings":{"msiEndpoint":"%s"}}' \
    "$tmp/prom" "$urls" "$msi" >"$tmp/run.json"
}
# The samples of a scrape, one per line: name, then label=value pairs (unescaped), then value.
scrape() {
  curl -sf "http://127.0.0.1:$port/metrics" | /usr/bin/python3 -c '
import re, sys
lab = re.compile(r"(\w+)=\"((?:[^\"\\]|\\.)*)\"")
for line in sys.stdin:
    m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line.strip())
    if not m or not m.group(1).startswith(("kvvm_", "node_textfile_scrape_error")):
        continue
    labels = {k: re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), v)
              for k, v in lab.findall(m.group(2) or "")}
    v = float(m.group(3))  # node_exporter writes 1.7e+09: back to a whole number
    print(m.group(1), " ".join("%s=%s" % kv for kv in sorted(labels.items())),
          int(v) if v.is_integer() else v)
' >"$tmp/scrape"
}
value() {  # metric, secret: the sample's value, or nothing
  awk -v m="$1" -v s="secret=$2" '$1 == m && index($0, " " s " ") { print $NF }' "$tmp/scrape"
}

settings web locked
"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
check "run --once: web installed, locked refused" \
  "grep -q '^installed .*secrets/web' '$tmp/out' && grep -q '^pending .*secrets/locked' '$tmp/out'"
check "kvvm.prom is 0644" "[ \"\$(stat -c %a '$tmp/prom/kvvm.prom')\" = 644 ]"
scrape
not_after=$(date -d "$(openssl x509 -enddate -noout -in "$tmp/web.pem" | cut -d= -f2)" +%s)
check "the collector read the file without error" "grep -qx 'node_textfile_scrape_error  0' '$tmp/scrape'"
check "web's expiry is its certificate's notAfter ($not_after)" \
  "[ \"\$(value kvvm_certificate_expiry_timestamp_seconds web)\" = $not_after ]"
check "web's labels: url, vault, secret and the store folder with its quote and backslash" \
  "grep -qxF 'kvvm_certificate_error secret=web store_dir=$tmp/$store url=https://myvault.vault.azure.net/secrets/web vault=myvault 0' '$tmp/scrape'"
now=$(date +%s)
check "web's last success and install time are this pass's" \
  "[ \$(($now - \$(value kvvm_certificate_last_success_timestamp_seconds web))) -lt 60 ] && \
   [ \$(($now - \$(value kvvm_certificate_installed_timestamp_seconds web))) -lt 60 ]"
check "locked (403) is in error, with no expiry, install time or success" \
  "[ \"\$(value kvvm_certificate_error locked)\" = 1 ] && \
   [ -z \"\$(value kvvm_certificate_expiry_timestamp_seconds locked)\" ] && \
   [ -z \"\$(value kvvm_certificate_installed_timestamp_seconds locked)\" ] && \
   [ -z \"\$(value kvvm_certificate_last_success_timestamp_seconds locked)\" ]"
check "the pass failed, ended now and took less than a minute" \
  "grep -qx 'kvvm_pass_success  0' '$tmp/scrape' && \
   [ \$(($now - \$(awk '\$1 == \"kvvm_pass_timestamp_seconds\" { print \$NF }' '$tmp/scrape'))) -lt 60 ] && \
   awk '\$1 == \"kvvm_pass_duration_seconds\" { exit !(\$NF < 60) }' '$tmp/scrape'"
curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^(# (HELP|TYPE) )?kvvm_certificate_e' >"$tmp/excerpt"
check "each family has its HELP and TYPE gauge" \
  "grep -q '^# HELP kvvm_certificate_expiry_timestamp_seconds ' '$tmp/excerpt' && \
   grep -q '^# TYPE kvvm_certificate_error gauge' '$tmp/excerpt'"

# The settings drop locked: its series leave the scrape; web's stay.
settings web
"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
check "run --once with web only exits 0" "[ $? = 0 ]"
scrape
check "no series of locked remain" "! grep -q 'secret=locked' '$tmp/scrape'"
check "web's series remain, and the pass succeeded" \
  "[ \"\$(value kvvm_certificate_expiry_timestamp_seconds web)\" = $not_after ] && \
   [ \"\$(value kvvm_certificate_error web)\" = 0 ] && grep -qx 'kvvm_pass_success  1' '$tmp/scrape'"

# false turns the file off: kvvm writes nothing more (the old file is the operator's to drop).
rm -f "$tmp/prom/kvvm.prom"
sed 's|"metricsTextfileDir":"[^"]*"|"metricsTextfileDir":false|' "$tmp/run.json" >"$tmp/off.json"
"$kvvm" run --config "$tmp/off.json" --once >/dev/null 2>&1
check "metricsTextfileDir false: no file written" "[ ! -e '$tmp/prom/kvvm.prom' ]"
sed 's|"metricsTextfileDir":"[^"]*"|"metricsTextfileDir":"prom"|' "$tmp/run.json" >"$tmp/rel.json"
"$kvvm" check-settings "$tmp/rel.json" >"$tmp/out" 2>&1
check "a relative folder is refused, naming the key" \
  "grep -q 'secretsManagementSettings.metricsTextfileDir: \"prom\" is not an absolute folder path' '$tmp/out'"

# Under the agent: kvvmd writes the file after its passes, and uninstall takes it away.
rm -f "$tmp/prom/kvvm.prom"
settings web
printf '{"runtimeSettings":[{"handlerSettings":{"publicSettings":%s}}]}' "$(cat "$tmp/run.json")" \
  >"$pkg/config/1.settings"
pidf=$tmp/state/kvvmd.pid
ConfigSequenceNumber=1 "$pkg/bin/enable" >/dev/null 2>&1
i=0
until grep -q 'kvvm_pass_success 1' "$tmp/prom/kvvm.prom" 2>/dev/null || [ $i -ge 100 ]; do
  sleep 0.1
  i=$((i + 1))
done
scrape
check "kvvmd's pass wrote the file: web's expiry scraped, the pass succeeded" \
  "[ \"\$(value kvvm_certificate_expiry_timestamp_seconds web)\" = $not_after ] && \
   grep -qx 'kvvm_pass_success  1' '$tmp/scrape'"
"$pkg/bin/disable" >/dev/null 2>&1
"$pkg/bin/uninstall" >/dev/null 2>&1
check "uninstall removes kvvm.prom; node_exporter serves no kvvm series" \
  "[ ! -e '$tmp/prom/kvvm.prom' ] && scrape && ! grep -q '^kvvm_' '$tmp/scrape'"
check "the certificate stays after uninstall" "[ -f '$tmp/$store/myvault.web' ]"

kill "$exp_pid" && wait "$exp_pid" 2>/dev/null
check "the exporter stopped" "! kill -0 $exp_pid 2>/dev/null"
exp_pid=
echo "metrics: $passed passed, $failed failed"
[ "$failed" = 0 ]
