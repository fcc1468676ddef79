#!/bin/sh
# gen.sh OUTDIR: the PKCS#12 corpus for tests/unit/test_p12.c, made fresh at test time by
# the producers users meet: the openssl CLI (OpenSSL 3 defaults, -legacy, every -keypbe and
# -certpbe scheme, every -macalg, -nomac, NONE), Python's cryptography (Debian's, at
# /usr/bin/python3), Java's keytool and NSS's pk12util (BER with indefinite lengths).
# Keys: RSA-2048 and EC P-256/P-384 leaves under a root -> intermediate chain.
#
# OUTDIR/manifest has one line per file, tab-separated:
#   file  password(hex, "-" for empty)  certs  key(TYPE:BITS)  mac  mac-password-form
#   schemes(comma-separated, "-" none)  friendlyName("-" none)  expect
# expect: ok (a wrong password must fail), open (no protection: any password reads it),
#         iterlimit (refused: iteration count above the limit).
# Exit 3 names the Debian package of a missing tool.
set -eu
out=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
cd "$out"

need() { # command, Debian package
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "gen.sh: '$1' not found: install the Debian package $2" >&2
  exit 3
}
need openssl openssl
need keytool default-jre-headless
need pk12util libnss3-tools
need certutil libnss3-tools
if ! /usr/bin/python3 -c 'import cryptography' 2>/dev/null; then
  echo "gen.sh: /usr/bin/python3 cannot import cryptography: install the Debian package python3-cryptography" >&2
  exit 3
fi

PW='Passw0rd!'
LONGPW='a-long-password-0123456789-0123456789-0123456789-0123456789-0123456789-0123456789-xyz'
UTF8PW='pässwörd-日本語-🔑'
LATIN1PW=$(printf '\351t\351')   # "été" in Latin-1: not UTF-8
export PW LONGPW UTF8PW LATIN1PW
: >manifest

hex() { # the password as hex, "-" when empty
  if [ -z "$1" ]; then echo -; else printf %s "$1" | od -An -tx1 | tr -d ' \n'; fi
}

emit() { # file password certs key mac macpw schemes name expect
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(hex "$2")" "$3" "$4" "$5" "$6" "$7" \
    "$8" "$9" >>manifest
}

# The shared test PKI; leaves are named test.example.com.
LEAF=test
export LEAF
cp "$here/../chain.cnf" ext.cnf

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out root.key 2>/dev/null
openssl req -x509 -new -key root.key -subj "/CN=Test Root CA" -days 3650 -sha256 \
  -extensions root -config ext.cnf -out root.crt
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out int.key 2>/dev/null
openssl req -new -config ext.cnf -key int.key -subj "/CN=Test Intermediate CA" -out int.csr
openssl x509 -req -in int.csr -CA root.crt -CAkey root.key -set_serial 2 -days 3650 -sha256 \
  -extfile ext.cnf -extensions int -out int.crt 2>/dev/null
cat int.crt root.crt >chain.pem

leaf() { # name, genpkey args...
  n=$1
  shift
  openssl genpkey "$@" -out "$n.key" 2>/dev/null
  openssl req -new -config ext.cnf -key "$n.key" -subj "/CN=test.example.com/O=$n" -out "$n.csr"
  openssl x509 -req -in "$n.csr" -CA int.crt -CAkey int.key -set_serial 3 -days 825 -sha256 \
    -extfile ext.cnf -extensions leaf -out "$n.crt" 2>/dev/null
}
leaf rsa -algorithm RSA -pkeyopt rsa_keygen_bits:2048
leaf ec256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
leaf ec384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384

# ---- openssl pkcs12 -export ----
ossl() { # file leaf password-env-var args...
  f=$1 l=$2 v=$3
  shift 3
  openssl pkcs12 -export -name kv-test-cert -inkey "$l.key" -in "$l.crt" -certfile chain.pem \
    -passout "env:$v" -out "$f" "$@"
}
EMPTY=''
export EMPTY
A256=PBES2-AES-256-CBC
TDES=pbeWithSHAAnd3-KeyTripleDES-CBC
RC2_40=pbeWithSHAAnd40BitRC2-CBC

for l in rsa ec256 ec384; do
  case $l in rsa) k=RSA:2048 ;; ec256) k=EC:256 ;; *) k=EC:384 ;; esac
  ossl "ossl-default-$l.p12" "$l" PW
  emit "ossl-default-$l.p12" "$PW" 3 $k SHA256 utf16 $A256 kv-test-cert ok
  ossl "ossl-legacy-$l.p12" "$l" PW -legacy
  emit "ossl-legacy-$l.p12" "$PW" 3 $k SHA1 utf16 "$RC2_40,$TDES" kv-test-cert ok
done
ossl ossl-descert.p12 rsa PW -descert
emit ossl-descert.p12 "$PW" 3 RSA:2048 SHA256 utf16 "$TDES,$A256" kv-test-cert ok

pbe() { # tag mac -keypbe -certpbe schemes [extra args]
  t=$1 m=$2 kp=$3 cp=$4 s=$5
  shift 5
  mp=utf16
  [ "$m" = none ] && mp=-
  ossl "ossl-pbe-$t.p12" ec256 PW -keypbe "$kp" -certpbe "$cp" "$@"
  emit "ossl-pbe-$t.p12" "$PW" 3 EC:256 "$m" $mp "$s" kv-test-cert ok
}
pbe 3des SHA256 PBE-SHA1-3DES PBE-SHA1-3DES $TDES
pbe 2des SHA256 PBE-SHA1-2DES PBE-SHA1-2DES pbeWithSHAAnd2-KeyTripleDES-CBC
pbe rc2-40 SHA1 PBE-SHA1-3DES PBE-SHA1-RC2-40 "$RC2_40,$TDES" -legacy
pbe rc2-128 SHA1 PBE-SHA1-RC2-128 PBE-SHA1-RC2-128 pbeWithSHAAnd128BitRC2-CBC -legacy
pbe rc4 SHA1 PBE-SHA1-RC4-128 PBE-SHA1-RC4-40 pbeWithSHAAnd128BitRC4,pbeWithSHAAnd40BitRC4 -legacy
pbe aes128 SHA256 AES-128-CBC AES-128-CBC PBES2-AES-128-CBC
pbe aes192 SHA256 AES-192-CBC AES-128-CBC PBES2-AES-192-CBC,PBES2-AES-128-CBC
pbe aes256 SHA256 aes-256-cbc aes-256-cbc $A256
pbe des3 SHA256 des-ede3-cbc des-ede3-cbc PBES2-DES-EDE3-CBC

for m in sha1 sha224 sha256 sha384 sha512; do
  M=$(echo "$m" | tr "[:lower:]" "[:upper:]")
  ossl "ossl-mac-$m.p12" rsa PW -macalg $m
  emit "ossl-mac-$m.p12" "$PW" 3 RSA:2048 "$M" utf16 $A256 kv-test-cert ok
done
ossl ossl-nomac.p12 rsa PW -nomac
emit ossl-nomac.p12 "$PW" 3 RSA:2048 none - $A256 kv-test-cert ok
pbe nomac-rc4 none PBE-SHA1-RC4-128 PBE-SHA1-RC4-128 pbeWithSHAAnd128BitRC4 -legacy -nomac
ossl ossl-none-mac.p12 rsa PW -keypbe NONE -certpbe NONE
emit ossl-none-mac.p12 "$PW" 3 RSA:2048 SHA256 utf16 - kv-test-cert ok
ossl ossl-none-nomac.p12 rsa EMPTY -keypbe NONE -certpbe NONE -nomac
emit ossl-none-nomac.p12 "" 3 RSA:2048 none - - kv-test-cert open
ossl ossl-iter1.p12 rsa PW -iter 1
emit ossl-iter1.p12 "$PW" 3 RSA:2048 SHA256 utf16 $A256 kv-test-cert ok
ossl ossl-iter100000.p12 ec256 PW -iter 100000
emit ossl-iter100000.p12 "$PW" 3 EC:256 SHA256 utf16 $A256 kv-test-cert ok
ossl ossl-nomaciter.p12 rsa PW -nomaciter
emit ossl-nomaciter.p12 "$PW" 3 RSA:2048 SHA256 utf16 $A256 kv-test-cert ok
ossl ossl-iter-toomany.p12 ec256 PW -iter 1000001 -keypbe NONE -certpbe NONE
emit ossl-iter-toomany.p12 "$PW" 3 EC:256 SHA256 utf16 - kv-test-cert iterlimit
ossl ossl-longpw.p12 rsa LONGPW
emit ossl-longpw.p12 "$LONGPW" 3 RSA:2048 SHA256 utf16 $A256 kv-test-cert ok
ossl ossl-longpw-legacy.p12 rsa LONGPW -legacy
emit ossl-longpw-legacy.p12 "$LONGPW" 3 RSA:2048 SHA1 utf16 "$RC2_40,$TDES" kv-test-cert ok
ossl ossl-utf8pw.p12 ec256 UTF8PW
emit ossl-utf8pw.p12 "$UTF8PW" 3 EC:256 SHA256 utf16 $A256 kv-test-cert ok
ossl ossl-utf8pw-legacy.p12 ec256 UTF8PW -legacy
emit ossl-utf8pw-legacy.p12 "$UTF8PW" 3 EC:256 SHA1 utf16 "$RC2_40,$TDES" kv-test-cert ok
ossl ossl-latin1pw-legacy.p12 rsa LATIN1PW -legacy
emit ossl-latin1pw-legacy.p12 "$LATIN1PW" 3 RSA:2048 SHA1 latin1 "$RC2_40,$TDES" kv-test-cert ok
ossl ossl-emptypw.p12 rsa EMPTY
emit ossl-emptypw.p12 "" 3 RSA:2048 SHA256 utf16 $A256 kv-test-cert ok
ossl ossl-emptypw-legacy.p12 rsa EMPTY -legacy
emit ossl-emptypw-legacy.p12 "" 3 RSA:2048 SHA1 utf16 "$RC2_40,$TDES" kv-test-cert ok
openssl pkcs12 -export -inkey rsa.key -in rsa.crt -passout env:PW -out ossl-nochain-noname.p12
emit ossl-nochain-noname.p12 "$PW" 1 RSA:2048 SHA256 utf16 $A256 - ok
# Small files for the mutation tests: one certificate, one iteration.
openssl pkcs12 -export -inkey ec256.key -in ec256.crt -passout env:PW -iter 1 -name s \
  -out small-mac.p12
emit small-mac.p12 "$PW" 1 EC:256 SHA256 utf16 $A256 s ok
openssl pkcs12 -export -inkey ec256.key -in ec256.crt -passout env:PW -iter 1 -name s \
  -legacy -out small-legacy.p12
emit small-legacy.p12 "$PW" 1 EC:256 SHA1 utf16 "$RC2_40,$TDES" s ok
openssl pkcs12 -export -inkey ec256.key -in ec256.crt -passout env:EMPTY -keypbe NONE \
  -certpbe NONE -nomac -name s -out small-open.p12
emit small-open.p12 "" 1 EC:256 none - - s open

# BER re-encodings: indefinite lengths and OCTET STRINGs in chunks. For files with a MAC
# only the outer layer (PFX, authSafe, MacData): the MAC covers the AuthenticatedSafe's
# bytes, which stay as they are. A file with neither MAC nor encryption is re-encoded all
# the way down to the bags ("deep"), certificates excepted (X.509 is DER by definition).
openssl pkcs12 -export -inkey ec256.key -in ec256.crt -certfile chain.pem -passout env:EMPTY \
  -keypbe NONE -certpbe NONE -nomac -name s -out open-ec256.p12
/usr/bin/python3 - <<'PY'
DATA = bytes.fromhex('06092a864886f70d010701')   # OID pkcs7-data

def tlv(b, i):
    tag, n = b[i], b[i + 1]
    i += 2
    if n & 0x80:
        k, n = n & 0x7f, int.from_bytes(b[i:i + (n & 0x7f)], 'big')
        i += k
    return tag, b[i:i + n], i + n

def enc_len(n):
    if n < 0x80:
        return bytes([n])
    s = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return bytes([0x80 | len(s)]) + s

def chunked(val):
    return b'\x24\x80' + b''.join(b'\x04' + enc_len(len(val[j:j + 100])) + val[j:j + 100]
                                for j in range(0, len(val), 100)) + b'\0\0'

def ber(b, deep, data_content=False):
    out, i = b'', 0
    while i < len(b):
        tag, val, i = tlv(b, i)
        if tag & 0x20:
            # A data ContentInfo's [0] holds an OCTET STRING whose bytes are an encoding.
            inner = deep and tag == 0xa0 and out.endswith(DATA)
            out += bytes([tag, 0x80]) + ber(val, deep, inner) + b'\0\0'
        elif tag == 0x04 and data_content:
            out += chunked(ber(val, deep))
        elif tag == 0x04 and len(val) > 16:
            out += chunked(val)
        else:
            out += bytes([tag]) + enc_len(len(val)) + val
    return out

for src, dst, deep in (('small-mac.p12', 'small-ber.p12', False),
                       ('ossl-default-rsa.p12', 'ber-outer-rsa.p12', False),
                       ('open-ec256.p12', 'ber-deep-open.p12', True)):
    open(dst, 'wb').write(ber(open(src, 'rb').read(), deep))
PY
emit small-ber.p12 "$PW" 1 EC:256 SHA256 utf16 $A256 s ok
emit ber-outer-rsa.p12 "$PW" 3 RSA:2048 SHA256 utf16 $A256 kv-test-cert ok
emit ber-deep-open.p12 "" 3 EC:256 none - - s open

# ---- python3-cryptography ----
/usr/bin/python3 - <<'PY'
import os
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import (BestAvailableEncryption,
                                                          NoEncryption, PrivateFormat, pkcs12)
pw = os.environ['PW'].encode()
ld = lambda f: open(f, 'rb').read()
cas = [x509.load_pem_x509_certificate(ld(f)) for f in ('int.crt', 'root.crt')]
builder = PrivateFormat.PKCS12.encryption_builder
variants = {
    'bestavail': BestAvailableEncryption(pw),
    'noenc': NoEncryption(),
    '3des-sha1': builder().kdf_rounds(2048).hmac_hash(hashes.SHA1())
                 .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).build(pw),
    'aes256-sha512': builder().kdf_rounds(5000).hmac_hash(hashes.SHA512())
                     .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).build(pw),
}
for n in ('rsa', 'ec384'):
    key = serialization.load_pem_private_key(ld(n + '.key'), None)
    crt = x509.load_pem_x509_certificate(ld(n + '.crt'))
    for tag, enc in variants.items():
        open(f'py-{tag}-{n}.p12', 'wb').write(
            pkcs12.serialize_key_and_certificates(b'kv-test-cert', key, crt, cas, enc))
PY
for l in rsa ec384; do
  case $l in rsa) k=RSA:2048 ;; *) k=EC:384 ;; esac
  emit "py-bestavail-$l.p12" "$PW" 3 $k SHA256 utf16 $A256 kv-test-cert ok
  emit "py-noenc-$l.p12" "" 3 $k SHA256 zero-length - kv-test-cert ok
  emit "py-3des-sha1-$l.p12" "$PW" 3 $k SHA1 utf16 $TDES kv-test-cert ok
  emit "py-aes256-sha512-$l.p12" "$PW" 3 $k SHA512 utf16 $A256 kv-test-cert ok
done

# ---- Java keytool (PKCS12 keystores) ----
kt() { # keytool args...; its chatter goes to keytool.log, shown on failure
  if ! keytool "$@" >>keytool.log 2>&1; then
    cat keytool.log >&2
    exit 1
  fi
}
java_import() { # dest, extra -J options...
  d=$1
  shift
  kt "$@" -importkeystore -noprompt -srckeystore ossl-default-rsa.p12 -srcstoretype PKCS12 \
    -srcstorepass "$PW" -destkeystore "$d" -deststoretype PKCS12 -deststorepass "$PW"
}
java_import java-default-rsa.p12
emit java-default-rsa.p12 "$PW" 3 RSA:2048 SHA256 utf16 $A256 kv-test-cert ok
java_import java-legacy-rsa.p12 -J-Dkeystore.pkcs12.legacy
emit java-legacy-rsa.p12 "$PW" 3 RSA:2048 SHA1 utf16 "$RC2_40,$TDES" kv-test-cert ok
java_import java-prf-rsa.p12 \
  -J-Dkeystore.pkcs12.keyProtectionAlgorithm=PBEWithHmacSHA512AndAES_256 \
  -J-Dkeystore.pkcs12.certProtectionAlgorithm=PBEWithHmacSHA1AndAES_128 \
  -J-Dkeystore.pkcs12.macAlgorithm=HmacPBESHA384 -J-Dkeystore.pkcs12.macIterationCount=3000
emit java-prf-rsa.p12 "$PW" 3 RSA:2048 SHA384 utf16 "$A256,PBES2-AES-128-CBC" kv-test-cert ok
java_import java-prf2-rsa.p12 \
  -J-Dkeystore.pkcs12.keyProtectionAlgorithm=PBEWithHmacSHA384AndAES_128 \
  -J-Dkeystore.pkcs12.certProtectionAlgorithm=PBEWithHmacSHA224AndAES_256 \
  -J-Dkeystore.pkcs12.macAlgorithm=HmacPBESHA512
emit java-prf2-rsa.p12 "$PW" 3 RSA:2048 SHA512 utf16 "PBES2-AES-128-CBC,$A256" kv-test-cert ok
cp java-default-rsa.p12 java-trusted-rsa.p12
kt -importcert -noprompt -alias extra-ca -file root.crt -keystore java-trusted-rsa.p12 \
  -storetype PKCS12 -storepass "$PW"
emit java-trusted-rsa.p12 "$PW" 4 RSA:2048 SHA256 utf16 $A256 kv-test-cert ok
kt -genkeypair -alias kv-java -keyalg EC -groupname secp384r1 -dname CN=java.example.com \
  -validity 30 -storetype PKCS12 -keystore java-ec384.p12 -storepass "$PW"
emit java-ec384.p12 "$PW" 1 EC:384 SHA256 utf16 $A256 kv-java ok

# ---- NSS pk12util: BER with indefinite lengths throughout, 600000 iterations ----
mkdir nssdb
printf '%s' "$PW" >nss.pw
certutil -N -d sql:nssdb --empty-password
pk12util -i ossl-default-ec256.p12 -d sql:nssdb -w nss.pw >nss.log 2>&1
pk12util -o nss-ec256.p12 -n kv-test-cert -d sql:nssdb -w nss.pw >>nss.log 2>&1
emit nss-ec256.p12 "$PW" 3 EC:256 SHA256 utf16 "$A256,PBES2-AES-128-CBC" kv-test-cert ok

rm -f ./*.csr
