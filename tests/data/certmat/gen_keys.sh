#!/bin/sh
# gen_keys.sh OUTDIR: one self-signed certificate per key type Key Vault issues, for
# tests/unit/test_certmat_keys.c, made fresh with the openssl CLI:
#   <t>.crt <t>.sha1, <t>.p8 (PKCS#8) <t>.sec1 (RSA/EC PRIVATE KEY), <t>.pfx (openssl 3's
#   defaults) <t>.legacy.pfx (3DES key, RC2 certificates, SHA-1 MAC: what Key Vault hands
#   back), for t in rsa2048 rsa3072 rsa4096 p256 p384 p521 p256k, and the same curves with
#   the parameters written out in full (-x: `-param_enc explicit`, in the key and in the
#   certificate's SubjectPublicKeyInfo);
#   ca.crt (P-256) and its leaf ca-p256k-x.crt/.p8 (P-256K written out in full, for Server
#   Authentication), whose signature must check against what the CA signed;
#   keys kvvm cannot use: ed25519 ed448 dsa (key and certificate), secp160r1.p8 (a named
#   curve mbedTLS lacks), secp160r1-x.p8 (the same written out in full).
set -eu
out=$1
mkdir -p "$out"
cd "$out"

mk() { # name, genpkey args...
  n=$1
  shift
  openssl genpkey "$@" -out "$n.p8" 2>/dev/null
  openssl req -x509 -new -key "$n.p8" -subj "/CN=$n.example.com" -days 365 -out "$n.crt" \
    2>/dev/null
  openssl x509 -in "$n.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' >"$n.sha1"
  # Ed25519, Ed448 and DSA have no traditional form: only PKCS#8.
  openssl pkey -in "$n.p8" -traditional -out "$n.sec1" 2>/dev/null || cp "$n.p8" "$n.sec1"
  openssl pkcs12 -export -inkey "$n.p8" -in "$n.crt" -passout pass: -out "$n.pfx"
  openssl pkcs12 -export -legacy -inkey "$n.p8" -in "$n.crt" -passout pass: -out "$n.legacy.pfx"
}

for b in 2048 3072 4096; do
  mk "rsa$b" -algorithm RSA -pkeyopt "rsa_keygen_bits:$b"
done
for c in p256:P-256 p384:P-384 p521:P-521 p256k:secp256k1; do
  mk "${c%%:*}" -algorithm EC -pkeyopt "ec_paramgen_curve:${c#*:}"
  mk "${c%%:*}-x" -algorithm EC -pkeyopt "ec_paramgen_curve:${c#*:}" -pkeyopt ec_param_enc:explicit
done
mk ed25519 -algorithm ED25519
mk ed448 -algorithm ED448
openssl genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out dsa.param 2>/dev/null
mk dsa -paramfile dsa.param
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp160r1 -out secp160r1.p8 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp160r1 \
  -pkeyopt ec_param_enc:explicit -out secp160r1-x.p8 2>/dev/null

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.p8 2>/dev/null
openssl req -x509 -new -key ca.p8 -subj "/CN=Test CA keys" -days 365 -out ca.crt 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1 -pkeyopt ec_param_enc:explicit \
  -out ca-p256k-x.p8 2>/dev/null
openssl req -new -key ca-p256k-x.p8 -subj /CN=ca-p256k-x.example.com -out ca-p256k-x.csr \
  2>/dev/null
printf 'extendedKeyUsage=serverAuth\n' >leaf.ext
openssl x509 -req -in ca-p256k-x.csr -CA ca.crt -CAkey ca.p8 -set_serial 7 -days 365 \
  -extfile leaf.ext -out ca-p256k-x.crt 2>/dev/null
