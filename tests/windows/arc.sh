#!/bin/sh
# identity_arc_windows.c under wine: cross-builds tests/windows/test_arc_windows.c with only
# the files it tests and runs it in a fresh wine prefix.
#   sh tests/windows/arc.sh      (needs mingw-w64 and wine; none of the cross-built libraries)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
export WINEPREFIX="$tmp/wp" WINEDEBUG=-all
trap 'wineserver -k 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$top"
# The flags of the Makefile's Windows build (WIN_CPPFLAGS, WARN).
x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
  -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wcast-qual -Wvla -Wundef -Wwrite-strings \
  -O2 -Iinclude -Isrc -D_WIN32_WINNT=0x0601 -DWIN32_LEAN_AND_MEAN \
  -DUNICODE -D_UNICODE -D__USE_MINGW_ANSI_STDIO=1 -static -o "$tmp/t.exe" \
  tests/windows/test_arc_windows.c src/windows/identity_arc_windows.c \
  src/windows/paths_windows.c src/windows/win_util.c \
  -liphlpapi -lws2_32 -ladvapi32 -lshell32 -lole32 -luuid || exit 1
# Output to files, never a pipe: a persistent wineserver can hold a pipe open.
wine "$tmp/t.exe" >"$tmp/out" 2>"$tmp/err"
rc=$?
cat "$tmp/out"
[ $rc = 0 ] || cat "$tmp/err"
exit $rc
