#!/bin/sh
# The unit suite built with mingw (make check-windows builds WBUILD/tests/test_*.exe from the
# tests/unit files against libkvvm.a; the Makefile's WIN_UNIT_SKIP names the Linux-only ones
# and why, in WBUILD/tests/skipped.txt), run under wine in one fresh prefix, beside the
# native run. From the top folder, as natively: fixtures come from tests/data.
#   sh tests/windows/units.sh [WBUILD]
wbuild=${1:-build-win}
cd "$(dirname "$0")/../.." || exit 1
. tests/windows/lib.sh
rc=0
for t in "$wbuild"/tests/test_*.exe; do
  [ -f "$t" ] || continue
  start=$(date +%s)
  wine_run "$t" || rc=1
  echo "  ($(basename "$t" .exe): $(($(date +%s) - start)) s)"
done
# Each Linux-only test, said with its reason: a skip, never a pass.
sed 's/^\([a-z_0-9]*\): \(.*\)/windows-\1: skipped (Linux only: \2)/' "$wbuild/tests/skipped.txt"
exit $rc
