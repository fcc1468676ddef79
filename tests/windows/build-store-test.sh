#!/bin/sh
# Build tests/windows/test_store_win.exe with mingw-w64 against the cross-built libraries
# (scripts/win-deps.sh) and run it under wine in a fresh WINEPREFIX, with RSA (and EC)
# certificates made by openssl for this run. Until `make windows` exists this is the list of
# sources and flags the Windows store needs:
#   src/base/{err,mem}.c, src/certmat/*.c, src/settings/*.c,
#   src/store/{installed,store}.c, src/windows/{store_windows,win_util}.c
#   + tests/windows/shim_windows.c (log, clock, fileio: until core's Windows files land)
#   -std=c11 -D__USE_MINGW_ANSI_STDIO=1 -D_WIN32_WINNT=0x0601 -Iinclude -Isrc
#   -I<prefix>/include -Itests/windows/include -D_GNU_SOURCE (arpa/inet.h for certmat_bundle.c)
#   -include tests/windows/include/kvvm_test_compat.h (gmtime_r, timegm, explicit_bzero, ...)
#   -L<prefix>/lib $(cat <prefix>/libs.txt) -lncrypt
#   sh tests/windows/build-store-test.sh [OUTDIR]     (default build/win)
set -eu
cd "$(dirname "$0")/../.."
out=${1:-build/win}
prefix=$(sh "${KVVM_WIN_DEPS:-/work/main/scripts/win-deps.sh}")
mkdir -p "$out/obj" "$out/data"
CC=x86_64-w64-mingw32-gcc
WARN="-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith
 -Wformat=2 -Wcast-qual -Wvla -Wundef -Wwrite-strings"
FLAGS="-std=c11 -O1 -g $WARN -D__USE_MINGW_ANSI_STDIO=1 -D_WIN32_WINNT=0x0601 -Iinclude -Isrc
 -I$prefix/include -Itests/windows/include -D_GNU_SOURCE
 -include tests/windows/include/kvvm_test_compat.h"
srcs="src/base/err.c src/base/mem.c $(ls src/certmat/*.c) $(ls src/settings/*.c)
 src/store/installed.c src/store/store.c src/windows/store_windows.c src/windows/win_util.c
 tests/windows/shim_windows.c tests/windows/test_store_win.c"
objs=""
for s in $srcs; do
  o="$out/obj/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')"
  # shellcheck disable=SC2086
  $CC $FLAGS -c "$s" -o "$o"
  objs="$objs $o"
done
# shellcheck disable=SC2046,SC2086  # libs.txt is a list of flags: split on purpose
$CC -o "$out/test_store_win.exe" $objs -L"$prefix/lib" $(cat "$prefix/libs.txt") -lncrypt

# Test certificates: a root and two RSA leaves under it (PEM: leaf, root, key), and an EC one.
d=$out/data
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=kvvm test root" -days 30 \
  -keyout "$d/root.key" -out "$d/root.crt" 2>/dev/null
for v in v1 v2; do
  openssl req -newkey rsa:2048 -nodes -subj "/CN=web-$v.example.com" -keyout "$d/$v.key" \
    -out "$d/$v.csr" 2>/dev/null
  printf 'subjectAltName=DNS:web.example.com\n' >"$d/ext"
  openssl x509 -req -in "$d/$v.csr" -CA "$d/root.crt" -CAkey "$d/root.key" -CAcreateserial \
    -days 20 -extfile "$d/ext" -out "$d/$v.crt" 2>/dev/null
  cat "$d/$v.crt" "$d/root.crt" "$d/$v.key" >"$d/$v.pem"
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=ec.example.com" \
  -days 20 -keyout "$d/ec.key" -out "$d/ec.crt" 2>/dev/null
cat "$d/ec.crt" "$d/ec.key" >"$d/ec.pem"
rm -rf "$d/state"

# A fresh prefix per run: the machine store starts empty.
wp=$(mktemp -d /tmp/kvvm-wstore-wp.XXXXXX)
rc=0
windir=Z:$(cd "$d" && pwd | tr / "\\\\")   # wine maps / to Z:
WINEPREFIX=$wp WINEDEBUG=-all wine "$out/test_store_win.exe" "$windir" \
  >"$out/test.out" 2>"$out/test.err" || rc=$?
WINEPREFIX=$wp wineserver -k 2>/dev/null || true
rm -rf "$wp"
cat "$out/test.out"
[ "$rc" = 0 ] || { cat "$out/test.err"; exit "$rc"; }
