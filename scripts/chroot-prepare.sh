#!/bin/sh
# Runs inside the release chroot (scripts/release.sh), once, when the chroot is made: builds
# mbedTLS 2.28 as static libraries into /opt/mbedtls. The chroot's own release ships 2.16,
# so the source is Debian 12's package (apt-get source checks its signature against the
# archive keyring), configured the way Debian's debian/rules configures it, so the release
# build links the same mbedTLS features the tests on Debian 12 exercise.
set -eu
echo "deb-src http://deb.debian.org/debian bookworm main" >/etc/apt/sources.list.d/mbedtls-src.list
apt-get update -q >/dev/null
mkdir -p /usr/src/mbedtls
cd /usr/src/mbedtls
apt-get source -q mbedtls/bookworm >/dev/null 2>&1
cd mbedtls-2.28.*
# Debian's override_dh_auto_configure, option for option.
for opt in MBEDTLS_DEPRECATED_WARNING MBEDTLS_HAVEGE_C MBEDTLS_MD2_C MBEDTLS_MD4_C \
  MBEDTLS_THREADING_C MBEDTLS_THREADING_PTHREAD MBEDTLS_CMAC_C MBEDTLS_SSL_DTLS_SRTP; do
  python3 scripts/config.py set "$opt"
done
# The same hardening flags Debian builds its libraries with; -fPIC: they go into libkvvm.so.
make -C library -j"$(nproc)" static CFLAGS="$(dpkg-buildflags --get CFLAGS) -fPIC" >/dev/null
mkdir -p /opt/mbedtls/lib
cp -r include /opt/mbedtls/
cp library/libmbedtls.a library/libmbedx509.a library/libmbedcrypto.a /opt/mbedtls/lib/
rm -f /etc/apt/sources.list.d/mbedtls-src.list
echo "mbedTLS $(basename "$PWD" | sed 's/^mbedtls-//') in /opt/mbedtls"
