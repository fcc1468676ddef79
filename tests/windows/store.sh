#!/bin/sh
# The Windows store backend (store_windows.c) on wine's crypt32: runs
# WBUILD/tests/win/test_store_win.exe (make check-windows builds it against libkvvm.a) in a
# fresh wine prefix, so the machine store starts empty, with RSA and EC certificates made by
# openssl for this run.
#   sh tests/windows/store.sh [WBUILD]
wbuild=${1:-build-win}
. "$(dirname "$0")/lib.sh"
# Test certificates: a root and two RSA leaves under it (PEM: leaf, root, key), a leaf with an
# intermediate and a root in a PFX (chain.pfx; inter.sha1 and croot.sha1 their thumbprints),
# and an EC one.
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
# A chain: root -> intermediate (a CA) -> leaf, as a passwordless PFX holding all three.
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=kvvm test chain root" -days 30 \
  -addext basicConstraints=critical,CA:true -keyout "$d/croot.key" -out "$d/croot.crt" \
  2>/dev/null || exit 1
openssl req -newkey rsa:2048 -nodes -subj "/CN=kvvm test intermediate" -keyout "$d/inter.key" \
  -out "$d/inter.csr" 2>/dev/null || exit 1
printf 'basicConstraints=critical,CA:true\n' >"$d/ext-ca"
openssl x509 -req -in "$d/inter.csr" -CA "$d/croot.crt" -CAkey "$d/croot.key" -CAcreateserial \
  -days 25 -extfile "$d/ext-ca" -out "$d/inter.crt" 2>/dev/null || exit 1
openssl req -newkey rsa:2048 -nodes -subj "/CN=chain.example.com" -keyout "$d/cleaf.key" \
  -out "$d/cleaf.csr" 2>/dev/null || exit 1
printf 'subjectAltName=DNS:chain.example.com\n' >"$d/ext"
openssl x509 -req -in "$d/cleaf.csr" -CA "$d/inter.crt" -CAkey "$d/inter.key" -CAcreateserial \
  -days 20 -extfile "$d/ext" -out "$d/cleaf.crt" 2>/dev/null || exit 1
cat "$d/inter.crt" "$d/croot.crt" >"$d/cchain.crt"
openssl pkcs12 -export -inkey "$d/cleaf.key" -in "$d/cleaf.crt" -certfile "$d/cchain.crt" \
  -passout pass: -out "$d/chain.pfx" 2>/dev/null || exit 1
for c in inter croot; do
  openssl x509 -in "$d/$c.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' >"$d/$c.sha1"
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=ec.example.com" \
  -days 20 -keyout "$d/ec.key" -out "$d/ec.crt" 2>/dev/null || exit 1
cat "$d/ec.crt" "$d/ec.key" >"$d/ec.pem"
# A leaf for the store locations (loc.pem), and Server Authentication leaves (sa1, sa2) under
# an intermediate of their own (sainter) that is in no store: sa1-alone.pem and
# sa2-alone.pem hold no chain, sa1-chain.pem the intermediate and the root.
leaf() {  # name CN CAname extfile-line...
  n=$1 cn=$2 ca=$3
  shift 3
  printf '%s\n' "$@" >"$d/ext-$n"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$d/$n.key" -out "$d/$n.csr" \
    2>/dev/null || exit 1
  openssl x509 -req -in "$d/$n.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" -CAcreateserial \
    -days 20 -extfile "$d/ext-$n" -out "$d/$n.crt" 2>/dev/null || exit 1
  openssl x509 -in "$d/$n.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' >"$d/$n.sha1"
}
leaf loc loc.example.com root 'subjectAltName=DNS:loc.example.com'
cat "$d/loc.crt" "$d/loc.key" >"$d/loc.pem"
leaf sainter "kvvm test sa intermediate" croot 'basicConstraints=critical,CA:true'
for n in sa1 sa2; do
  leaf $n $n.example.com sainter "subjectAltName=DNS:$n.example.com" 'extendedKeyUsage=serverAuth'
  cat "$d/$n.crt" "$d/$n.key" >"$d/$n-alone.pem"
done
cat "$d/sa1.crt" "$d/sainter.crt" "$d/croot.crt" "$d/sa1.key" >"$d/sa1-chain.pem"
# Old versions: p1..p4 of one certificate (SAN prune.example.com), and a certificate kvvm does
# not install with p1's subject and SAN (foreign.der, foreign.sha1).
printf 'subjectAltName=DNS:prune.example.com\n' >"$d/ext"
for v in p1 p2 p3 p4 foreign; do
  openssl req -newkey rsa:2048 -nodes -subj "/CN=prune.example.com" -keyout "$d/$v.key" \
    -out "$d/$v.csr" 2>/dev/null || exit 1
  openssl x509 -req -in "$d/$v.csr" -CA "$d/root.crt" -CAkey "$d/root.key" -CAcreateserial \
    -days 20 -extfile "$d/ext" -out "$d/$v.crt" 2>/dev/null || exit 1
  cat "$d/$v.crt" "$d/root.crt" "$d/$v.key" >"$d/$v.pem"
done
# The crash test's versions k0..k3 (SAN crash.example.com).
printf 'subjectAltName=DNS:crash.example.com\n' >"$d/ext"
for v in k0 k1 k2 k3; do
  openssl req -newkey rsa:2048 -nodes -subj "/CN=crash.example.com" -keyout "$d/$v.key" \
    -out "$d/$v.csr" 2>/dev/null || exit 1
  openssl x509 -req -in "$d/$v.csr" -CA "$d/root.crt" -CAkey "$d/root.key" -CAcreateserial \
    -days 20 -extfile "$d/ext" -out "$d/$v.crt" 2>/dev/null || exit 1
  cat "$d/$v.crt" "$d/root.crt" "$d/$v.key" >"$d/$v.pem"
done
openssl x509 -in "$d/foreign.crt" -outform DER -out "$d/foreign.der" || exit 1
openssl x509 -in "$d/foreign.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' >"$d/foreign.sha1"
# Wine maps / to Z:.
wd="Z:$(printf '%s' "$d" | tr / '\\')"
rc=0
wine_run "$wbuild/tests/win/test_store_win.exe" "$wd" || rc=1
wine_run "$wbuild/tests/win/test_store_prune_plan.exe" || rc=1
wine_run "$wbuild/tests/win/test_store_prune_win.exe" "$wd" || rc=1
# Last: its interrupted imports rewrite wine's one key container of the machine keyset.
wine_run "$wbuild/tests/win/test_store_crash_win.exe" "$wd" || rc=1
exit $rc
