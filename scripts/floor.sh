#!/bin/sh
# What a package zip needs from the machine it runs on, read with objdump from its binaries:
#   libraries  the shared objects they name (NEEDED), besides the package's own libkvvm.so
#   glibc      the newest glibc symbol version they ask for, and the symbols that ask for it
#   versions   every other symbol version asked for (a libcurl built without symbol versions,
#              as on RHEL, SUSE and Amazon Linux, must not be asked for one)
# usage: scripts/floor.sh ZIP
set -eu
zip=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unzip -q "$zip" -d "$tmp"
elves=$(find "$tmp/bin" "$tmp/lib" -type f | sort)
# "(GLIBC_2.25) getrandom" for every undefined, versioned dynamic symbol.
for f in $elves; do
  objdump -T "$f" | awk '/\*UND\*/ && $(NF-1) ~ /^\(/ { print $(NF-1), $NF }'
done | sort -u >"$tmp/needs"
for f in $elves; do
  objdump -p "$f" | awk '$1 == "NEEDED" { print $2 }'
done | grep -v '^libkvvm\.so$' | sort -u | tr '\n' ' ' | sed 's/ $//; s/^/libraries: /'
echo
top=$(sed -n 's/^(GLIBC_\([0-9.]*\)).*/\1/p' "$tmp/needs" | sort -uV | tail -1)
syms=$(grep "^(GLIBC_$top)" "$tmp/needs" | awk '{ print $2 }' | sort -u | tr '\n' ' ' | sed 's/ $//')
echo "glibc: $top ($syms)"
other=$(grep -v '^(GLIBC_' "$tmp/needs" | awk '{ print $1 }' | tr -d '()' | sort -uV | tr '\n' ' ' |
  sed 's/ $//')
echo "versions: ${other:-none}"
