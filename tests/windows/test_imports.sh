#!/bin/sh
# The Windows executables import only Windows' own DLLs, exactly the list the README gives
# (between its "windows-dlls" markers), so the package needs nothing installed beside it.
#   sh tests/windows/test_imports.sh WZIP
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$top/tests/system/lib.sh"
unzip -q "$1" -d "$tmp/pkg"
sed -n '/<!-- windows-dlls -->/,/<!-- \/windows-dlls -->/p' "$top/README.md" |
  sed -n 's/^- `\([^`]*\)`.*/\1/p' | tr 'A-Z' 'a-z' | sort -u >"$tmp/allowed"
check "the README lists the DLLs ($(wc -l <"$tmp/allowed"))" "[ -s '$tmp/allowed' ]"
n=0
for exe in "$tmp"/pkg/bin/*.exe; do
  n=$((n + 1))
  x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\tDLL Name: //p' | tr 'A-Z' 'a-z' |
    sort -u >"$tmp/got"
  extra=$(comm -23 "$tmp/got" "$tmp/allowed" | tr '\n' ' ')
  check "$(basename "$exe") imports only listed system DLLs${extra:+ (not listed: $extra)}" \
    "[ -z '$extra' ]"
done
check "seven executables" "[ $n = 7 ]"
echo "windows-imports: $passed passed, $failed failed"
[ "$failed" = 0 ]
