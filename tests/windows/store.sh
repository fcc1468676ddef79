#!/bin/sh
# The Windows store backend (store_windows.c) on wine's crypt32: runs
# WBUILD/tests/win/test_store_win.exe (make check-windows builds it against libkvvm.a) in a
# fresh wine prefix, so the machine store starts empty, with RSA and EC certificates made by
# openssl for this run.
#   sh tests/windows/store.sh [WBUILD]
wbuild=${1:-build-win}
. "$(dirname "$0")/lib.sh"
# Test certificates: a root and two RSA leaves under it (PEM: leaf, root, key), and an EC one.
d=$wtmp/data
mkdir -p "$d"
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=kvvm test root" -days 30 \
  -keyout "$d/root.key" -out "$d/root.crt" 2>/dev/null || exit 1
for v in v1 v2; do
  openssl req -newkey rsa:2048 -nodes -subj "/CN=web-$v.example.com" -keyout "$d/$v.key" \
    -out "$d/$v.csr" 2>/dev/null || exit 1
  printf 'subjectAltName=DNS:web.example.com\n' >"$d/ext"
  openssl x509 -req -in "$d/$v.csr" -CA "$d/root.crt" -CAkey "$d/root.key" -CAcreateserial \
    -days 20 -extfile "$d/ext" -out "$d/$v.crt" 2>/dev/null || exit 1
  cat "$d/$v.crt" "$d/root.crt" "$d/$v.key" >"$d/$v.pem"
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=ec.example.com" \
  -days 20 -keyout "$d/ec.key" -out "$d/ec.crt" 2>/dev/null || exit 1
cat "$d/ec.crt" "$d/ec.key" >"$d/ec.pem"
# Wine maps / to Z:.
wine_run "$wbuild/tests/win/test_store_win.exe" "Z:$(printf '%s' "$d" | tr / '\\')"
