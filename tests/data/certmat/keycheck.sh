#!/bin/sh
# keycheck.sh FILE.pem ORIG.crt [CURVE]: openssl's view of what kvvm wrote: the key is the
# certificate's, the certificate is byte for byte the original, and an EC key names CURVE
# (what nginx, openssl and Java read) rather than writing its parameters out.
set -eu
pub() { # the public number(s) as openssl prints them, whatever the encoding of the curve
  openssl pkey -pubin -noout -text_pub |
    awk '/^(pub|Modulus|modulus):/ {f = 1; next} /^[A-Za-z]/ {f = 0} f' | tr -d ' :\n'
}
k=$(openssl pkey -in "$1" -pubout | pub)
c=$(openssl x509 -in "$1" -noout -pubkey | pub)
[ -n "$k" ] && [ "$k" = "$c" ] || { echo "key and certificate differ in $1" >&2; exit 1; }
[ "$(openssl x509 -in "$1" -outform DER | od -An -tx1)" = \
  "$(openssl x509 -in "$2" -outform DER | od -An -tx1)" ] ||
  { echo "the certificate in $1 is not $2" >&2; exit 1; }
if [ -n "${3:-}" ]; then
  openssl pkey -in "$1" -noout -text | grep -q "ASN1 OID: $3" ||
    { echo "the key in $1 does not name $3" >&2; exit 1; }
fi
