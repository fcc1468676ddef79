# Sourced by the system tests after they set `top` (the repository) and `tmp` (their own
# temporary folder): pass/fail counting, and the Key Vault emulator (tests/emulator).

passed=0
failed=0
# The default metrics folder (metricsTextfileDir absent) is the test's own, and absent: no
# test writes the system's node_exporter folder.
export KVVM_METRICS_DIR="$tmp/no-node-exporter"
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# A value of manifest/extension.mk, the one place naming publisher, type and version.
mkval() { sed -n "s/^$1[[:space:]]*:=[[:space:]]*\([^[:space:]]*\).*/\1/p" "$top/manifest/extension.mk"; }

# A value from the running emulator's emu.json (ports, pid, CA file).
emu() { /usr/bin/python3 -c "import json; print(json.load(open('$tmp/emu/emu.json'))['$1'])"; }

# Start the emulator in $tmp/emu; it stops with this shell, or after 300 s in any case.
start_emulator() {
  /usr/bin/python3 "$top/tests/emulator/kvemu.py" --dir "$tmp/emu" --lifetime 300 \
    --parent-pid $$ >"$tmp/emu.log" 2>&1 &
  i=0
  while [ ! -f "$tmp/emu/emu.json" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}

control() {  # path, JSON body (or @file)
  curl -s -X POST --data-binary "$2" "http://127.0.0.1:$(emu control_port)$1"
}

add_pfx() {  # name, CN: posts a new version of secret name (a PFX, as Key Vault hands it back), prints the version
  openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=$2" -days 30 -keyout "$tmp/k.pem" \
    -out "$tmp/c.pem" 2>/dev/null
  openssl pkcs12 -export -inkey "$tmp/k.pem" -in "$tmp/c.pem" -passout pass: -out "$tmp/w.pfx"
  printf '{"vault":"myvault.vault.azure.net","name":"%s","contentType":"application/x-pkcs12","value":"%s"}' \
    "$1" "$(base64 -w0 "$tmp/w.pfx")" >"$tmp/body"
  control /secrets @"$tmp/body" | sed -n 's/.*"version": *"\([0-9a-f]*\)".*/\1/p'
}
