#!/bin/sh
# Runs every test tier and ends with one line "N passed, N failed" over all of them:
#   unit     tests/unit/test_*.c, one binary each (built by make)
#   system   tests/system/test_*.sh: the unit file, the systemd code path, the commands
#   emulator tests/emulator: the Key Vault + IMDS + Arc emulator, and the official Azure SDK
#            for JavaScript against it (its fidelity check)
#   agent    tests/agent: the package zip driven through the real guest agent's code
#   windows  tests/windows/run.sh: the unit suite and the Windows tests cross-built, under wine
#            (KVVM_WBUILD, KVVM_WZIP: the Windows build folder and zip; skipped when unset)
# usage: tests/run.sh BUILD_DIR ZIP
set -u
build=$1
zip=$2
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Every tier prints lines "suite: N passed, N failed"; add them up.
count() {
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
      *": "*" passed, "*" failed"*)
        p=$(printf '%s' "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p')
        f=$(printf '%s' "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p')
        passed=$((passed + ${p:-0}))
        failed=$((failed + ${f:-0}))
        ;;
    esac
  done <"$log"
}

run() {  # name, command...
  name=$1
  shift
  start=$(date +%s)
  if "$@" >"$log" 2>&1; then rc=0; else rc=$?; fi
  count
  if [ "$rc" != 0 ] && ! grep -q ' passed, [1-9][0-9]* failed' "$log"; then
    # A suite that died without saying what failed counts as one failure.
    echo "$name: exited $rc"
    failed=$((failed + 1))
  fi
  echo "  ($name: $(($(date +%s) - start)) s)"
}

for t in "$build"/tests/test_*; do
  [ -x "$t" ] && run "$(basename "$t")" "$t"
done
for t in tests/system/test_*.sh; do
  [ -f "$t" ] && run "$(basename "$t")" env KVVM_BUILD="$build" sh "$t"
done
run emulator /usr/bin/python3 tests/pysuite.py emulator tests/emulator
run agent env KVVM_BUILD="$build" KVVM_ZIP="$zip" /usr/bin/python3 tests/pysuite.py agent tests/agent
if [ -n "${KVVM_WBUILD:-}" ]; then
  run windows sh tests/windows/run.sh "$KVVM_WBUILD" "$KVVM_WZIP"
fi

echo "check: $passed passed, $failed failed"
[ "$failed" = 0 ]
