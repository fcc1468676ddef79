#!/bin/sh
# The base layer's Windows files under wine: log.c over log_windows.c, clock_windows.c and
# rand_windows.c, through WBUILD/tests/win/test_{log,clock_rand}_windows.exe (make
# check-windows builds them against libkvvm.a), in a fresh wine prefix.
#   sh tests/windows/base.sh [WBUILD]
wbuild=${1:-build-win}
. "$(dirname "$0")/lib.sh"
rc=0
for t in log clock_rand; do
  wine_run "$wbuild/tests/win/test_${t}_windows.exe" || rc=1
done
exit $rc
