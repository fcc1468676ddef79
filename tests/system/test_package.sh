#!/bin/sh
# The package zip as the agent and a publisher meet it:
#   - its name is <Publisher>.<Type>__<version>.zip from manifest/extension.mk, and the same
#     version reaches `kvvm --version` inside it and the rendered publishing manifest;
#   - it holds exactly the handler manifest, seven binaries, the core library, the unit
#     template and a README, and unpacked (as built by default) stays under 2 MiB;
#   - it is reproducible: two fresh clones of this repository build byte-identical zips.
# KVVM_ZIP names the zip under test (make check passes it); otherwise dist/'s is used.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-package.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$top/tests/system/lib.sh"

name=$(mkval KVVM_PUBLISHER).$(mkval KVVM_TYPE)
version=$(mkval KVVM_VERSION)
zip=${KVVM_ZIP:-$top/dist/${name}__$version.zip}
[ "$build" = build ] || zip=${KVVM_ZIP:-$top/$build/dist/${name}__$version.zip}
check "the zip is named ${name}__$version.zip" "[ -f '$zip' ] && [ \"\$(basename '$zip')\" = '${name}__$version.zip' ]"

unzip -q "$zip" -d "$tmp/pkg"
(cd "$tmp/pkg" && find . -type f | sed 's|^\./||' | sort) >"$tmp/list"
printf '%s\n' HandlerManifest.json README.txt bin/disable bin/enable bin/install bin/kvvm \
  bin/kvvmd bin/uninstall bin/update lib/libkvvm.so share/kvvmd.service.in >"$tmp/want"
check "it holds exactly the manifest, 7 binaries, libkvvm.so, the unit template, README" \
  "cmp -s '$tmp/list' '$tmp/want'"
check "its HandlerManifest.json is the repository's" \
  "cmp -s '$tmp/pkg/HandlerManifest.json' '$top/HandlerManifest.json'"
chmod 0755 "$tmp"/pkg/bin/*
check "kvvm --version inside it prints $version" \
  "[ \"\$('$tmp/pkg/bin/kvvm' --version)\" = 'kvvm $version' ]"
MEDIALINK="https://example.blob.core.windows.net/kvvm/${name}__$version.zip" \
  sh "$top/scripts/render-manifest.sh" "$tmp/manifest.xml" >/dev/null
check "the publishing manifest carries the same version" \
  "grep -q '<Version>$version</Version>' '$tmp/manifest.xml'"
check "the publishing manifest names the same publisher and type" \
  "grep -q '<ProviderNameSpace>$(mkval KVVM_PUBLISHER)</ProviderNameSpace>' '$tmp/manifest.xml' &&
   grep -q '<Type>$(mkval KVVM_TYPE)</Type>' '$tmp/manifest.xml'"

# Two fresh clones, built side by side, must give the same bytes.
# Fresh builds with the defaults, whatever make invoked this test: make hands its command
# line's variables (check-sanitize's BUILD, SAN_FLAGS, CFLAGS) to what it runs both through
# MAKEFLAGS and as environment variables, so the clones build in an environment of their own.
for c in a b; do
  git clone -q "$top" "$tmp/$c" &&
    (cd "$tmp/$c" && env -i PATH="$PATH" HOME="${HOME:-/root}" make -s package \
      >"$tmp/$c.log" 2>&1) &
done
wait
za=$tmp/a/dist/${name}__$version.zip
zb=$tmp/b/dist/${name}__$version.zip
check "two fresh clones build the zip ($(du -b "$za" 2>/dev/null | cut -f1) bytes)" "[ -f '$za' ] && [ -f '$zb' ]"
check "byte for byte the same" "cmp '$za' '$zb'"
unzip -q "$za" -d "$tmp/unpacked"
size=$(du -sb "$tmp/unpacked" | awk '{print $1}')
check "unpacked it is under 2 MiB ($size bytes)" "[ $size -lt 2097152 ]"

echo "test_package: $passed passed, $failed failed"
[ "$failed" = 0 ]
