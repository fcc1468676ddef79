#!/bin/sh
# Render manifest/manifest.xml.in (OS windows: manifest-windows.xml.in) to OUT with the
# publisher, type and version of manifest/extension.mk (the one place that names them; the
# Windows package is its own type, KVVM_TYPE_WINDOWS). VERSION=x.y.z overrides the version as
# `make package VERSION=...` does; MEDIALINK=URL fills in the package blob's URL (empty if unset).
# usage: render-manifest.sh OUT [linux|windows]
set -eu
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 OUT [linux|windows]" >&2; exit 2; }
os=${2:-linux}
top=$(cd "$(dirname "$0")/.." && pwd)
mk=$top/manifest/extension.mk
get() { sed -n "s/^$1[[:space:]]*:=[[:space:]]*\([^[:space:]]*\).*/\1/p" "$mk"; }
publisher=$(get KVVM_PUBLISHER)
case "$os" in
  linux) type=$(get KVVM_TYPE); in=manifest.xml.in ;;
  windows) type=$(get KVVM_TYPE_WINDOWS); in=manifest-windows.xml.in ;;
  *) echo "$0: OS is linux or windows, not $os" >&2; exit 2 ;;
esac
version=${VERSION:-$(get KVVM_VERSION)}
medialink=${MEDIALINK:-}
for v in "$publisher" "$type" "$version"; do
  [ -n "$v" ] || { echo "$0: $mk lacks KVVM_PUBLISHER, KVVM_TYPE or KVVM_VERSION" >&2; exit 1; }
done
esc() { printf '%s' "$1" | sed -e 's/[&|\\]/\\&/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }
# & is escaped for sed first; the XML escape of & in a URL comes next.
ml=$(printf '%s' "$medialink" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/[&|\\]/\\&/g')
sed -e "s|@PUBLISHER@|$(esc "$publisher")|g" -e "s|@TYPE@|$(esc "$type")|g" \
  -e "s|@VERSION@|$(esc "$version")|g" -e "s|@MEDIALINK@|$ml|g" \
  "$top/manifest/$in" >"$1.tmp"
mv "$1.tmp" "$1"
