#!/bin/sh
# The base layer's Windows files under wine: cross-builds tests/windows/test_log_windows.c
# (log.c over log_windows.c) and test_clock_rand_windows.c with only the files they test,
# and runs them in a fresh wine prefix.
#   sh tests/windows/base.sh   (needs mingw-w64, wine and the cross-built zlib:
#                               KVVM_WIN_PREFIX, else the prefix scripts/win-deps.sh prints)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
prefix=${KVVM_WIN_PREFIX:-$(sh scripts/win-deps.sh)} || exit 1
tmp=$(mktemp -d)
export WINEPREFIX="$tmp/wp" WINEDEBUG=-all
trap 'wineserver -k 2>/dev/null; rm -rf "$tmp"' EXIT
cc() { # exe, sources... (the flags of the Makefile's Windows build: WIN_CPPFLAGS, WARN)
  exe=$1
  shift
  x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
    -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wcast-qual -Wvla -Wundef -Wwrite-strings \
    -O2 -Iinclude -Isrc -I"$prefix/include" -D_WIN32_WINNT=0x0601 -DWIN32_LEAN_AND_MEAN \
    -DUNICODE -D_UNICODE -D__USE_MINGW_ANSI_STDIO=1 -static -o "$tmp/$exe" "$@" \
    src/base/log.c src/windows/log_windows.c src/windows/win_util.c \
    -L"$prefix/lib" -lz -lbcrypt
}
cc log.exe tests/windows/test_log_windows.c || exit 1
cc clock_rand.exe tests/windows/test_clock_rand_windows.c src/windows/clock_windows.c \
  src/windows/rand_windows.c || exit 1
rc=0
for t in log clock_rand; do
  # Output to files, never a pipe: a persistent wineserver can hold a pipe open.
  wine "$tmp/$t.exe" >"$tmp/out" 2>"$tmp/err"
  r=$?
  cat "$tmp/out"
  [ $r = 0 ] || { cat "$tmp/err"; rc=1; }
done
exit $rc
