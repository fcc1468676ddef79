#!/bin/sh
# Cross-build tests/windows/test_log_windows.c with the log's files (log.c, log_windows.c,
# win_util.c) and run it under wine in a fresh prefix. Usage: sh tests/windows/log.sh [OUT]
# (KVVM_WIN_PREFIX: the cross libraries, else what scripts/win-deps.sh prints)
set -eu
out=${1:-build/windows}
prefix=${KVVM_WIN_PREFIX:-$(sh scripts/win-deps.sh)}
mkdir -p "$out"
x86_64-w64-mingw32-gcc -std=c11 -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes \
  -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wcast-qual -Wvla -Wundef -Wwrite-strings \
  -Iinclude -Isrc -I"$prefix/include" -o "$out/test_log_windows.exe" \
  tests/windows/test_log_windows.c src/base/log.c src/windows/log_windows.c \
  src/windows/win_util.c -L"$prefix/lib" -lz -static
wp=$(mktemp -d /tmp/kvvm-wine-log.XXXXXX)
rc=0
WINEPREFIX=$wp WINEDEBUG=-all wine "$out/test_log_windows.exe" >"$out/test_log.out" \
  2>"$out/test_log.err" || rc=$?
WINEPREFIX=$wp wineserver -k 2>/dev/null || true
rm -rf "$wp"
cat "$out/test_log.out" "$out/test_log.err"
exit $rc
