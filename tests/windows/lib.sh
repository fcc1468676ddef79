# Sourced by the Windows test scripts: a fresh, headless wine prefix for this script alone
# (removed, its wineserver ended, on exit), and wine_run to run one built test exe in it.
set -u
wtmp=$(mktemp -d /tmp/kvvm-wine.XXXXXX)
export WINEPREFIX="$wtmp/wp" WINEDEBUG=-all
unset DISPLAY
trap 'wineserver -k 2>/dev/null; rm -rf "$wtmp"' EXIT
# One wineserver for the whole script: started on demand it ends a moment after its last
# client, and a test starting just then loses it ("recvmsg: Connection reset by peer").
mkdir -p "$WINEPREFIX"
wineserver -p

# wine_run EXE ARGS...: runs it from the current folder, prints its output with the count line
# "x: N passed, N failed" as "windows-x: ..." (what tests/run.sh adds up), and on failure the
# end of its stderr. Output goes to files, never a pipe: a wineserver that stays can hold a
# pipe open. Returns the exe's status; one that wrote no count line counts as one failure.
wine_run() {
  n=$(basename "$1" .exe)
  wine "$@" >"$wtmp/out" 2>"$wtmp/err"
  r=$?
  sed 's/^\([a-z_0-9]*\): \([0-9]* passed, \)/windows-\1: \2/' "$wtmp/out"
  grep -q ' passed, [0-9]* failed' "$wtmp/out" || echo "windows-$n: 0 passed, 1 failed (no count; exit $r)"
  [ $r = 0 ] || tail -30 "$wtmp/err"
  return $r
}
