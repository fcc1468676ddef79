#!/bin/sh
# gen.sh OUTDIR: certificate material for tests/unit/test_certmat.c and test_cms.c, made
# fresh at test time with the openssl CLI (nothing large or secret is committed).
#   <t>.crt <t>.key (PKCS#8) <t>.trad.key (PKCS#1 or SEC1) <t>.sha1 <t>.dates (notBefore and
#   notAfter in epoch seconds) for t in rsa2048 rsa4096 ec256 ec384 ec521;
#   <c>-root.crt <c>-int.crt for c in rsa ec256 ec384 ec521;
#   ec256.ecparam.key (an "EC PARAMETERS" block, then the SEC1 key, as `ecparam -genkey`
#   writes it); unrel.crt (a certificate of no chain); other.key (matches no certificate);
#   expired.crt/.key; enc-p8.key and enc-trad.key (encrypted keys); <t>.pfx (empty password);
#   CMS: recip.crt/.prv and other.crt/.prv (as the agent writes them), msg.json and
#   cms-*.der encrypted for recip (cms-other.der for other only, cms-two.der for both;
#   cms-data.der is plain CMS data, not enveloped).
set -eu
out=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
cd "$out"
# ext.cnf names each leaf's SANs after $LEAF, and openssl wants it set for every command.
LEAF=none
export LEAF

cp "$here/../chain.cnf" ext.cnf

key() { # out, genpkey args...
  o=$1
  shift
  openssl genpkey "$@" -out "$o" 2>/dev/null
}

ca() { # prefix, genpkey args...: <prefix>-root and <prefix>-int
  p=$1
  shift
  key "$p-root.key" "$@"
  openssl req -x509 -new -key "$p-root.key" -subj "/CN=Test Root CA $p" -days 3650 -sha256 \
    -extensions root -config ext.cnf -out "$p-root.crt"
  key "$p-int.key" "$@"
  openssl req -new -config ext.cnf -key "$p-int.key" -subj "/CN=Test Intermediate CA $p" \
    -out "$p-int.csr"
  openssl x509 -req -in "$p-int.csr" -CA "$p-root.crt" -CAkey "$p-root.key" -set_serial 2 \
    -days 3650 -sha256 -extfile ext.cnf -extensions int -out "$p-int.crt" 2>/dev/null
}

leaf() { # name, ca prefix, key file (made by the caller)
  LEAF=$1
  openssl req -new -config ext.cnf -key "$3" -subj "/CN=$1.example.com/O=kvvm test" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$2-int.crt" -CAkey "$2-int.key" -set_serial 3 -days 825 \
    -sha256 -extfile ext.cnf -extensions leaf -out "$1.crt" 2>/dev/null
  openssl pkey -in "$3" -out "$1.key"
  openssl pkey -in "$3" -traditional -out "$1.trad.key"
  openssl x509 -in "$1.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' >"$1.sha1"
  for d in startdate enddate; do
    date -u -d "$(openssl x509 -in "$1.crt" -noout -$d | sed 's/.*=//')" +%s
  done >"$1.dates"
  cat "$2-int.crt" "$2-root.crt" >"$1.chain"
  openssl pkcs12 -export -inkey "$1.key" -in "$1.crt" -certfile "$1.chain" -passout pass: \
    -out "$1.pfx"
}

ca rsa -algorithm RSA -pkeyopt rsa_keygen_bits:2048
key rsa2048.gen -algorithm RSA -pkeyopt rsa_keygen_bits:2048
leaf rsa2048 rsa rsa2048.gen
key rsa4096.gen -algorithm RSA -pkeyopt rsa_keygen_bits:4096
leaf rsa4096 rsa rsa4096.gen
for c in 256 384 521; do
  ca "ec$c" -algorithm EC -pkeyopt "ec_paramgen_curve:P-$c"
  key "ec$c.gen" -algorithm EC -pkeyopt "ec_paramgen_curve:P-$c"
  leaf "ec$c" "ec$c" "ec$c.gen"
done
openssl ecparam -name prime256v1 -genkey -out ec256.ecparam.key
LEAF=ecparam openssl req -new -config ext.cnf -key ec256.ecparam.key -subj /CN=ecparam \
  -out ecparam.csr
LEAF=ecparam openssl x509 -req -in ecparam.csr -CA ec256-int.crt -CAkey ec256-int.key \
  -set_serial 4 -days 825 -extfile ext.cnf -extensions leaf -out ecparam.crt 2>/dev/null

key unrel.key -algorithm RSA -pkeyopt rsa_keygen_bits:2048
openssl req -x509 -new -key unrel.key -subj "/CN=Unrelated CA" -days 3650 -extensions root \
  -config ext.cnf -out unrel.crt
key other.key -algorithm RSA -pkeyopt rsa_keygen_bits:2048
openssl pkey -in rsa2048.key -aes256 -passout pass:secret -out enc-p8.key
openssl pkey -in rsa2048.key -traditional -aes256 -passout pass:secret -out enc-trad.key

# An expired leaf: `openssl x509` cannot back-date, `openssl ca` can.
cat >ca.cnf <<'CNF'
[ca]
default_ca=c
[c]
database=./index.txt
new_certs_dir=.
default_md=sha256
policy=p
serial=./serial
[p]
commonName=supplied
CNF
: >index.txt
echo 10 >serial
openssl req -new -nodes -newkey rsa:2048 -keyout expired.key -subj /CN=expired.example.com \
  -out expired.csr 2>/dev/null
openssl ca -batch -config ca.cnf -cert rsa-int.crt -keyfile rsa-int.key -in expired.csr -notext \
  -startdate 20200101000000Z -enddate 20210101000000Z -out expired.crt 2>/dev/null

# CMS: the agent's transport certificate, made the way WALinuxAgent makes it.
for r in recip other; do
  openssl req -x509 -nodes -subj "/CN=LinuxTransport $r" -days 730 -newkey rsa:2048 \
    -keyout "$r.prv" -out "$r.crt" 2>/dev/null
done
printf '{"commandToExecute":"echo hi","storageAccountKey":"c2VjcmV0"}' >msg.json
enc() { # name, openssl cms args...
  n=$1
  shift
  openssl cms -encrypt -binary -outform DER -in msg.json -out "cms-$n.der" "$@"
}
enc aes256 -aes256 recip.crt
enc aes128 -aes128 recip.crt
enc aes192 -aes192 recip.crt
enc des3 -des3 recip.crt
enc oaep -aes256 -recip recip.crt -keyopt rsa_padding_mode:oaep
enc oaep256 -aes256 -recip recip.crt -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256
enc keyid -aes256 -keyid recip.crt
enc two -aes256 other.crt recip.crt
enc other -aes256 other.crt
openssl cms -data_create -binary -outform DER -in msg.json -out cms-data.der
rm -f ./*.csr ./*.gen ./*.pem index.txt* serial* ca.cnf
