#!/bin/sh
# Cross-build the base layer's Windows tests (tests/windows/test_log_windows.c,
# test_clock_rand_windows.c) with the files they test, and run them under wine in a fresh
# prefix. Usage: sh tests/windows/base.sh [OUT]
# (KVVM_WIN_PREFIX: the cross libraries, else what scripts/win-deps.sh prints)
set -eu
out=${1:-build/windows}
prefix=${KVVM_WIN_PREFIX:-$(sh scripts/win-deps.sh)}
mkdir -p "$out"
cc() { # exe, sources...
  exe=$1
  shift
  x86_64-w64-mingw32-gcc -std=c11 -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes \
    -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wcast-qual -Wvla -Wundef -Wwrite-strings \
    -Iinclude -Isrc -I"$prefix/include" -o "$out/$exe" "$@" src/base/log.c \
    src/windows/log_windows.c src/windows/win_util.c -L"$prefix/lib" -lz -lbcrypt -static
}
cc test_log_windows.exe tests/windows/test_log_windows.c
cc test_clock_rand_windows.exe tests/windows/test_clock_rand_windows.c \
  src/windows/clock_windows.c src/windows/rand_windows.c
wp=$(mktemp -d /tmp/kvvm-wine-base.XXXXXX)
rc=0
for t in test_log_windows test_clock_rand_windows; do
  WINEPREFIX=$wp WINEDEBUG=-all wine "$out/$t.exe" >"$out/$t.out" 2>"$out/$t.err" || rc=1
  cat "$out/$t.out"
  grep -v '^wine: ' "$out/$t.err" || true
done
WINEPREFIX=$wp wineserver -k 2>/dev/null || true
rm -rf "$wp"
exit $rc
