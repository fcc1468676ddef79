#!/bin/sh
# accounts (the private key's DACL) and linkOnRenewal on wine's crypt32: runs
# WBUILD/tests/win/test_keyacl_win.exe in a fresh wine prefix of its own. Its own prefix
# because wine keeps one key container per keyset and lets its DACL be set only once: the
# first install here is the one whose DACL can be read back.
#   sh tests/windows/keyacl.sh [WBUILD]
wbuild=${1:-build-win}
. "$(dirname "$0")/lib.sh"
# A root; site1..site3.pem (leaf, root, key), three versions of one secret: site1 names
# web.example.com, site2 and site3 web and www. Foreign certificates (DER) for the link
# test: other (other.example.com), wide (www), nokey and ok (web).
d=$wtmp/data
mkdir -p "$d"
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=kvvm acl root" -days 30 \
  -keyout "$d/root.key" -out "$d/root.crt" 2>/dev/null || exit 1
leaf() {  # name, SANs, output form (pem: leaf + root + key; der: the leaf alone)
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1.example.com" -keyout "$d/$1.key" \
    -out "$d/$1.csr" 2>/dev/null || exit 1
  printf 'subjectAltName=%s\n' "$2" >"$d/$1.ext"
  openssl x509 -req -in "$d/$1.csr" -CA "$d/root.crt" -CAkey "$d/root.key" -CAcreateserial \
    -days 20 -extfile "$d/$1.ext" -out "$d/$1.crt" 2>/dev/null || exit 1
  if [ "$3" = pem ]; then
    cat "$d/$1.crt" "$d/root.crt" "$d/$1.key" >"$d/$1.pem"
  else
    openssl x509 -in "$d/$1.crt" -outform DER -out "$d/$1.der" || exit 1
  fi
}
leaf site1 DNS:web.example.com pem
leaf site2 DNS:web.example.com,DNS:www.example.com pem
leaf site3 DNS:www.example.com,DNS:web.example.com pem
leaf other DNS:other.example.com der
leaf wide DNS:www.example.com der
leaf nokey DNS:web.example.com der
leaf ok DNS:WEB.example.com der
# Wine maps / to Z:.
wine_run "$wbuild/tests/win/test_keyacl_win.exe" "Z:$(printf '%s' "$d" | tr / '\\')"
