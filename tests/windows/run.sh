#!/bin/sh
# The Windows tier (make check-windows, and make check): every Windows test under wine, each
# in a fresh WINEPREFIX of its own, headless. Each prints "windows-<suite>: N passed, N failed"
# lines (", N skipped" after), which tests/run.sh adds up; a check that wine cannot make
# faithfully says "skipped" and why, and is never counted passed. make check-windows builds
# what it runs (WBUILD/tests: the unit exes; WBUILD/tests/win: the Windows-only ones).
#   sh tests/windows/run.sh WBUILD WZIP
set -u
wbuild=$1
wzip=$2
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
export WINEDEBUG=-all
unset DISPLAY
rc=0
t0=$(date +%s)
step() {  # name, command...
  name=$1
  shift
  start=$(date +%s)
  "$@" || { rc=1; echo "$name: exited with failure"; }
  echo "  ($name: $(($(date +%s) - start)) s)"
}
step imports sh tests/windows/test_imports.sh "$wzip"
step units sh tests/windows/units.sh "$wbuild"
step fileio sh tests/windows/fileio.sh "$wbuild"
step base sh tests/windows/base.sh "$wbuild"
step arc sh tests/windows/arc.sh "$wbuild"
step store sh tests/windows/store.sh "$wbuild"
step hooks sh tests/windows/hooks.sh "$wbuild"
step keyacl sh tests/windows/keyacl.sh "$wbuild"
step service /usr/bin/python3 tests/windows/test_service_win.py "$wbuild"
step agent env KVVM_WIN_ZIP="$wzip" /usr/bin/python3 tests/windows/test_agent_win.py
echo "  (windows tier: $(($(date +%s) - t0)) s)"
exit $rc
