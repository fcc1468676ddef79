#!/bin/sh
# Prepares the Windows cross-build: mingw-w64, wine, and static jansson, mbedTLS, zlib and
# libcurl (Schannel) built from Debian's own sources, so the Windows binaries carry the same
# library versions and security patches as the Linux build.
#   scripts/win-deps.sh     prints the prefix (include/, lib/, libs.txt) on stdout
# The result is cached per version of this script: /var/cache/kvvm/mingw-<sha256(script)[:12]>.
# Editing this file therefore rebuilds; a finished cache answers in milliseconds.
set -eu

root=/var/cache/kvvm
key=$(sha256sum "$0" | cut -c1-12)
cache=$root/mingw-$key
# Fast path first: make calls this on every Windows build.
if [ -e "$cache/.done" ]; then echo "$cache/prefix"; exit 0; fi

say() { echo "kvvm: $*" >&2; }

# cmake for jansson (Debian's orig tarball has no configure); autotools because curl's
# Debian patches edit Makefile.am, so configure must be regenerated as debian/rules does.
pkgs="gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 wine wine64 libz-mingw-w64-dev dpkg-dev
 xz-utils make cmake autoconf automake libtool perl"
missing=""
for p in $pkgs; do
  case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" in
    *" installed") ;;
    *) missing="$missing $p" ;;
  esac
done
if [ "$(id -u)" != 0 ]; then
  # Installing packages, adding deb-src and writing /var/cache all need root.
  [ -n "$missing" ] && say "missing Debian packages:$missing"
  say "run as root: sudo $0"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# One builder at a time (parallel make); the loser finds the winner's result.
mkdir -p "$root"
exec 9>"$root/.lock"
flock 9
if [ -e "$cache/.done" ]; then echo "$cache/prefix"; exit 0; fi

# apt-get source needs a deb-src entry; Debian's default sources have none.
# shellcheck disable=SC2016 # apt's own $(FIELD) syntax, not the shell's
if ! apt-get indextargets --format '$(CREATED_BY) $(RELEASE)' | grep -qx 'Sources bookworm'; then
  say "adding deb-src for bookworm"
  cat >/etc/apt/sources.list.d/kvvm-src.sources <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
# Always refresh: security updates replace source versions and the old files leave the mirror.
apt-get update -qq
if [ -n "$missing" ]; then
  say "installing Debian packages:$missing"
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Build beside the final folder and rename it at the end, so an interrupted build never
# looks done. A failed stage is kept for its logs and removed by the next run.
stage=$root/mingw-$key.tmp.$$
work=$(mktemp -d /tmp/kvvm-win-deps.XXXXXX)
trap 'rm -rf "$work"' EXIT; trap 'exit 1' HUP INT TERM  # dash skips EXIT traps on signals
p=$stage/prefix
mkdir -p "$p/include" "$p/lib" "$stage/logs"
export CFLAGS=-O2
host=x86_64-w64-mingw32

# run NAME CMD...: the output goes to the log; on failure show its tail and stop.
run() {
  n=$1; shift
  if ! "$@" >>"$stage/logs/$n.log" 2>&1; then
    tail -n 40 "$stage/logs/$n.log" >&2
    say "$n failed; full log: $stage/logs/$n.log"
    exit 1
  fi
}

# apt verifies the sources against the signed Release file; no --allow-unauthenticated.
# _apt must own the folder or apt downloads unsandboxed (and warns).
chown _apt "$work" 2>/dev/null || true
say "fetching Debian sources"
run sources sh -c "cd '$work' && apt-get source -q jansson mbedtls curl"
# Pin the upstream versions the project is written against; a Debian revision may change.
for d in "$work"/jansson-2.14 "$work"/mbedtls-2.28.* "$work"/curl-7.88.1; do
  [ -d "$d" ] || { say "not among the Debian sources: $d"; ls "$work" >&2; exit 1; }
done

say "zlib (from libz-mingw-w64-dev)"
cp /usr/$host/include/zlib.h /usr/$host/include/zconf.h "$p/include/"
cp /usr/$host/lib/libz.a "$p/lib/"

say "mbedTLS"
# Upstream default config: Debian's rules (not run here) add threading, which Windows
# does not need. Only the libraries; programs and tests would not run here anyway.
m=$(echo "$work"/mbedtls-2.28.*)
run mbedtls make -C "$m" -j2 lib CC=$host-gcc AR=$host-ar WINDOWS=1 CFLAGS=-O2
cp -R "$m/include/mbedtls" "$p/include/"
cp "$m"/library/libmbedtls.a "$m"/library/libmbedx509.a "$m"/library/libmbedcrypto.a "$p/lib/"

say "jansson"
j=$work/jansson-2.14
run jansson cmake -S "$j" -B "$j/build" -DCMAKE_SYSTEM_NAME=Windows \
  -DCMAKE_C_COMPILER=$host-gcc -DCMAKE_RC_COMPILER=$host-windres \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE=-O2 -DJANSSON_BUILD_SHARED_LIBS=OFF \
  -DJANSSON_BUILD_DOCS=OFF -DJANSSON_EXAMPLES=OFF -DJANSSON_WITHOUT_TESTS=ON
run jansson cmake --build "$j/build" -j2
cp "$j/build/include/jansson.h" "$j/build/include/jansson_config.h" "$p/include/"
cp "$j/build/lib/libjansson.a" "$p/lib/"

say "curl"
c=$work/curl-7.88.1
# Debian's last two patches rename the library for its GnuTLS/NSS flavours; debian/rules
# pops them before building the default one, and so do we.
run curl sh -c "cd '$c' && patch -R -p1 <debian/patches/99_nss.patch && patch -R -p1 <debian/patches/90_gnutls.patch"
run curl sh -c "cd '$c' && autoreconf -fi"
# Schannel only: no OpenSSL on Windows, the OS's TLS and certificate store instead.
# No pthreads: curl's resolver then uses Windows threads, and winpthread stays out.
# (7.88.1 has no --disable-docs.)
run curl sh -c "cd '$c' && ./configure --host=$host --prefix=/nonexistent \
  --disable-shared --enable-static --with-schannel --without-openssl --without-gnutls \
  --with-zlib='$p' --disable-ldap --disable-ldaps --without-libpsl --without-brotli \
  --without-zstd --without-libssh2 --without-nghttp2 --without-librtmp --without-libidn2 \
  --disable-pthreads --disable-manual"
run curl make -C "$c/lib" -j2
mkdir -p "$p/include/curl"
cp "$c"/include/curl/*.h "$p/include/curl/"
cp "$c/lib/.libs/libcurl.a" "$p/lib/"

# Link line for a static exe using all four, in static-link order. curl's own system
# libraries come from its configure (libcurl.pc); mbedTLS and jansson seed from
# CryptGenRandom (advapi32). Compile users with -DCURL_STATICLIB.
sys=$(sed -n 's/^Libs.private://p' "$c/libcurl.pc")
libs=""
for l in -lcurl -lmbedtls -lmbedx509 -lmbedcrypto -ljansson -lz $sys -ladvapi32; do
  case "$l" in -l*) case " $libs " in *" $l "*) ;; *) libs="$libs $l" ;; esac ;; esac
done
echo "${libs# }" >"$p/libs.txt"

touch "$stage/.done"
# Other versions of this script's caches (and failed stages) are dead weight.
for d in "$root"/mingw-*; do [ "$d" = "$stage" ] || rm -rf "$d"; done
mv -T "$stage" "$cache"
say "built $cache"
echo "$cache/prefix"
