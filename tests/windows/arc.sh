#!/bin/sh
# identity_arc_windows.c under wine: runs WBUILD/tests/win/test_arc_windows.exe (make
# check-windows builds it against libkvvm.a) in a fresh wine prefix.
#   sh tests/windows/arc.sh [WBUILD]
wbuild=${1:-build-win}
. "$(dirname "$0")/lib.sh"
wine_run "$wbuild/tests/win/test_arc_windows.exe"
