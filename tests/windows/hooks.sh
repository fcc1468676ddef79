#!/bin/sh
# The Windows hook runner (hooks_windows.c, hooks_acl_windows.c, hooks_proc_windows.c) under
# wine: runs WBUILD/tests/win/test_hooks_win.exe (make win-tests builds it against libkvvm.a)
# in a fresh wine prefix: hooks (.cmd, .bat, .exe, .ps1) run in order with their variables,
# exit codes, a timeout that ends a hook's child too, kvvm's stop event, the safety rule.
#   sh tests/windows/hooks.sh [WBUILD]
wbuild=${1:-build-win}
. "$(dirname "$0")/lib.sh"
wine_run "$wbuild/tests/win/test_hooks_win.exe"
