#!/bin/sh
# Benchmark peer: the cron-job loop users write instead of kvvm. One IMDS token with curl + jq,
# then per certificate: curl the secret, jq -r .value | base64 -d to a .pfx, openssl pkcs12 to
# OUT/<name>.pem, chmod 600. A new curl (and TLS connection) and a new openssl per certificate.
#
#   tests/bench/peers/curl_loop.sh --emu DIR --vault HOST --names FILE --out DIR
#
# DIR is a running tests/emulator/kvemu.py's --dir (emu.json, ca.pem). The vault host name stays
# real and verified: curl --cacert DIR/ca.pem --connect-to HOST:443:127.0.0.1:<kv_port>.
# Needs curl, jq, base64 (coreutils), openssl; jq is installed by the benchmark's deps step.
#
# Prints one JSON line on stdout:
#   {"client":"curl-loop","n":N,"wall_s":S,"ok":K,"failed":F}
# wall_s runs from the token request to the last PEM written. Errors go to stderr.
# Exit 0 if every certificate was written, 1 if any failed, 2 on bad arguments or set-up.
set -u

die() { echo "curl_loop: $*" >&2; exit 2; }
now() { date +%s.%N; }

emu='' vault='' names='' out=''
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || die "usage: curl_loop.sh --emu DIR --vault HOST --names FILE --out DIR"
  case "$1" in
    --emu) emu=$2 ;;
    --vault) vault=$2 ;;
    --names) names=$2 ;;
    --out) out=$2 ;;
    *) die "unknown argument $1 (usage: --emu DIR --vault HOST --names FILE --out DIR)" ;;
  esac
  shift 2
done
if [ -z "$emu" ] || [ -z "$vault" ] || [ -z "$names" ] || [ -z "$out" ]; then
  die "usage: curl_loop.sh --emu DIR --vault HOST --names FILE --out DIR"
fi
for tool in curl jq base64 openssl; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found (the benchmark's deps step installs it: apt-get install -y $tool)"
done
if [ ! -r "$emu/emu.json" ] || [ ! -r "$emu/ca.pem" ]; then
  die "$emu/emu.json or $emu/ca.pem missing: is the emulator running?"
fi
[ -r "$names" ] || die "cannot read $names"
case "$vault" in
  *[!-a-z0-9.]*|.*|*..*) die "--vault $vault: not a host name" ;;
esac
# Key Vault secret names only: anything else could escape --out.
if grep -v '^[[:space:]]*$' "$names" | grep -qv '^[0-9A-Za-z-]\{1,127\}$'; then
  die "--names: every line must be a Key Vault secret name"
fi
kv_port=$(jq -er .kv_port "$emu/emu.json") || die "no kv_port in $emu/emu.json"
imds_port=$(jq -er .imds_port "$emu/emu.json") || die "no imds_port in $emu/emu.json"
ca=$emu/ca.pem
mkdir -p "$out" || die "cannot create $out"

umask 077
tmp=$(mktemp -d "${TMPDIR:-/tmp}/curl-loop.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

n=$(grep -c '[^[:space:]]' "$names")
ok=0
failed=0

t0=$(now)
token=$(curl -s -H Metadata:true \
  "http://127.0.0.1:$imds_port/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net" |
  jq -r .access_token)
if [ -z "$token" ] || [ "$token" = null ]; then
  echo "curl_loop: no token from IMDS (127.0.0.1:$imds_port)" >&2
  failed=$n
else
  while read -r name || [ -n "$name" ]; do
    [ -n "$name" ] || continue
    if curl -sSf -H "Authorization: Bearer $token" --cacert "$ca" \
         --connect-to "$vault:443:127.0.0.1:$kv_port" \
         "https://$vault/secrets/$name?api-version=7.4" -o "$tmp/secret.json" </dev/null &&
       jq -r .value < "$tmp/secret.json" | base64 -d > "$tmp/cert.pfx" &&
       openssl pkcs12 -in "$tmp/cert.pfx" -nodes -passin pass: </dev/null > "$out/$name.pem" 2>"$tmp/err" &&
       chmod 600 "$out/$name.pem"; then
      ok=$((ok + 1))
    else
      failed=$((failed + 1))
      rm -f "$out/$name.pem"
      [ "$failed" -le 10 ] && echo "curl_loop: $name failed $(head -c 300 "$tmp/err" 2>/dev/null)" >&2
    fi
    rm -f "$tmp/secret.json" "$tmp/cert.pfx" "$tmp/err"
  done < "$names"
fi
t1=$(now)

wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
printf '{"client":"curl-loop","n":%d,"wall_s":%s,"ok":%d,"failed":%d}\n' "$n" "$wall" "$ok" "$failed"
[ "$failed" -eq 0 ] && [ "$ok" -eq "$n" ]
