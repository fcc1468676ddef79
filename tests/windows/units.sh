#!/bin/sh
# The unit suite built with mingw (make check-windows builds WBUILD/tests/*.exe from the
# tests/unit files that test portable modules; the Makefile's WIN_UNIT_SKIP names the
# Linux-only ones and why), run under wine in one fresh prefix, beside the native run.
#   sh tests/windows/units.sh WBUILD
set -u
wbuild=$1
tmp=$(mktemp -d)
export WINEPREFIX="$tmp/wp" WINEDEBUG=-all
trap 'wineserver -k 2>/dev/null; rm -rf "$tmp"' EXIT
rc=0
for t in "$wbuild"/tests/test_*.exe; do
  [ -f "$t" ] || continue
  # Output to files, never a pipe: a persistent wineserver can hold a pipe open.
  (cd "$tmp" && wine "$t" >"$tmp/out" 2>"$tmp/err")
  r=$?
  n=$(basename "$t" .exe)
  sed "s/^\([a-z_0-9]*\): \([0-9]* passed\)/windows-\1: \2/" "$tmp/out" | grep ' passed, ' ||
    echo "windows-$n: 0 passed, 1 failed"
  if [ $r != 0 ]; then
    rc=1
    tail -20 "$tmp/err"
  fi
done
exit $rc
