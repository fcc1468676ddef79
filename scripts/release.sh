#!/bin/sh
# make release: the package zip, built inside a Debian 11 (bullseye) chroot. Bullseye is the
# oldest release deb.debian.org still serves; building there keeps the binaries' glibc and
# libcurl needs at what older distributions have (the measured floor: README, "Where it
# runs"). mbedTLS 2.28 is built from Debian 12's source in the chroot (scripts/chroot-prepare.sh).
#   scripts/release.sh OUT_DIR [VERSION]
#   scripts/release.sh --chroot     makes the chroot if needed and prints its path (tests run
#                                   the released binaries in it)
# The chroot is made once, with debootstrap, and kept under $KVVM_CHROOT_CACHE (default
# /var/cache/kvvm), keyed by this script and chroot-prepare.sh: change either and a new one is
# made. Only the repository's tracked files go into the build, as they are in the work tree.
set -eu
out=$1
version=${2:-}
top=$(cd "$(dirname "$0")/.." && pwd)
suite=bullseye
mirror=http://deb.debian.org/debian
cache=${KVVM_CHROOT_CACHE:-/var/cache/kvvm}
pkgs=gcc,make,libc6-dev,binutils,pkg-config,libcurl4-openssl-dev,libjansson-dev,zlib1g-dev
pkgs=$pkgs,python3,dpkg-dev,xz-utils,ca-certificates
recipe=$(cat "$top/scripts/release.sh" "$top/scripts/chroot-prepare.sh" | sha256sum | cut -c1-12)
root=$cache/$suite-$recipe
path=/usr/sbin:/usr/bin:/sbin:/bin

# Made in a folder of its own and renamed when complete, so an interrupted run leaves no
# chroot that looks usable.
make_chroot() {
  tmp=$root.tmp.$$
  rm -rf --one-file-system "$tmp"
  echo "release: debootstrap $suite into $root (once; about a minute)" >&2
  if ! debootstrap --variant=minbase --include="$pkgs" "$suite" "$tmp" "$mirror" \
    >"$cache/debootstrap.log" 2>&1; then
    tail -20 "$cache/debootstrap.log" >&2
    echo "release: debootstrap $suite failed (full log: $cache/debootstrap.log)" >&2
    rm -rf --one-file-system "$tmp"
    exit 1
  fi
  cp "$top/scripts/chroot-prepare.sh" "$tmp/tmp/"
  chroot "$tmp" env -i PATH=$path HOME=/root sh /tmp/chroot-prepare.sh >&2
  mkdir -p "$tmp/build"
  mv "$tmp" "$root"
}

mkdir -p "$cache"
# One maker at a time; chroots of earlier recipes go.
exec 9>"$cache/.lock"
flock 9
for old in "$cache/$suite"-*; do
  [ -e "$old" ] && [ "$old" != "$root" ] && rm -rf --one-file-system "$old"
done
[ -d "$root" ] || make_chroot
flock -u 9
if [ "$out" = --chroot ]; then
  echo "$root"
  exit 0
fi

mkdir -p "$out"
work=$(mktemp -d "$root/build/kvvm.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
(cd "$top" && git ls-files -z | tar -c --null -T -) | tar -x -C "$work"
chroot "$root" env -i PATH=$path HOME=/root LANG=C.UTF-8 make -C "${work#"$root"}" -s -j"$(nproc)" \
  package CI=true MBEDTLS_DIR=/opt/mbedtls ${version:+VERSION=$version} >"$work.log" 2>&1 || {
  cat "$work.log" >&2
  rm -f "$work.log"
  exit 1
}
rm -f "$work.log"
for z in "$work"/dist/*.zip; do
  cp "$z" "$out/"
  echo "release: $out/$(basename "$z") (built in Debian $(cat "$root/etc/debian_version"))"
  sh "$top/scripts/floor.sh" "$out/$(basename "$z")"
done
