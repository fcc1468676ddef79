#!/bin/sh
# The layering check (scripts/layers.py, docs/architecture.md) passes on the tree, and fails,
# naming the place, on what it exists to stop: a new include cycle, an include of a higher
# layer, an OS header in a portable folder, an OS type in a public header.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$top/tests/system/lib.sh"

layers() { /usr/bin/python3 "$top/scripts/layers.py" "$1" >"$tmp/out" 2>&1; }

if layers "$top"; then ok "the tree keeps its layers"; else bad "the tree keeps its layers"; cat "$tmp/out"; fi

# Each case: a fresh copy, one line added to one file, and the words the check must say.
broken() {  # what, file, line to add, expected text
  rm -rf "$tmp/t" && mkdir "$tmp/t" && cp -r "$top/src" "$top/include" "$tmp/t/"
  printf '%s\n' "$3" >>"$tmp/t/$2"
  if layers "$tmp/t"; then
    bad "$1: not found"
  else
    check "$1: found and named" "grep -q -- '$4' '$tmp/out'"
  fi
}
broken "a new cycle (sync -> plan -> sync)" src/service/sync.c '#include "kvvm/plan.h"' \
  'include cycle: .*plan -> sync'
broken "a higher layer (mem includes store)" src/base/mem.c '#include "kvvm/store.h"' \
  'src/base/mem.c: mem (base) includes store (store), a higher layer'
broken "an OS header in a portable file" src/store/hooks.c '#include <unistd.h>' \
  'src/store/hooks.c: portable file includes #include <unistd.h>'
broken "an OS type in a public header" include/kvvm/plan.h 'typedef pid_t kvvm_pid;' \
  'include/kvvm/plan.h: carries pid_t'
echo "layers: $passed passed, $failed failed"
[ "$failed" = 0 ]
