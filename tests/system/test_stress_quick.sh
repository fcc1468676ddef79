#!/bin/sh
# The fast part of make stress: SIGKILL of kvvmd at random moments and of each handler
# command (tests/stress/kill.py, with counts small enough for make check), and the scale-set
# simulation at 1,000 instances (tests/stress/scaleset.c) held to its invariants: every
# instance reports success, and after the first burst the polls stay under half the vault's
# limit.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-stress.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$top/tests/system/lib.sh"

/usr/bin/python3 "$top/tests/stress/kill.py" --build "$top/$build" --kills 25 --commands 10 \
  --certs 24 --json "$tmp/kill.json" >"$tmp/kill.out" 2>&1
rc=$?
sed -n 's/^/  /p' "$tmp/kill.out" | tail -6
check "25 kvvmd kills and 10 command kills: no torn file, no false success, no stale lock" \
  "[ $rc = 0 ]"

sim=$top/$build/stress/scaleset
"$sim" -n 1000 -h 3 -j >"$tmp/sim.json"
rc=$?
sed 's/^/  /' "$tmp/sim.json"
val() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$tmp/sim.json" "$1"; }
check "scale set of 1,000: every instance reports success" "[ $rc = 0 ] && [ \"\$(val never)\" = 0 ]"
check "the boot burst really met the limit (the vault answered 429s)" "[ \$(val refused_429) -gt 0 ]"
check "after the first burst the polls stay under half the limit per window" \
  "[ \$(val after_burst_peak_per_window) -le 2000 ]"

echo "stress_quick: $passed passed, $failed failed"
[ "$failed" = 0 ]
