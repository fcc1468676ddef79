#!/bin/sh
# The release zip (scripts/release.sh: built in a Debian 11 chroot) runs where the README says:
#   - objdump: glibc symbol versions no newer than 2.26 (SLES 15; RHEL 8 has 2.28, Ubuntu
#     20.04 and Debian 11 2.31), no symbol versions from zlib, and no libraries beyond libc,
#     libdl, libpthread and libz.so.1 (libcurl.so.4 is loaded at run time: src/curlapi.h);
#   - the sources use only libcurl names of 7.61 (RHEL 8) or older, except those
#     scripts/curl-floor.txt marks as checked at run time;
#   - in the Debian 11 chroot, the packaged binaries do the whole job against the emulator
#     (running on this host, reached over loopback): install, enable, the certificate files,
#     a rotation through `kvvm sync-now`, disable, uninstall; nothing is printed about
#     missing symbol versions.
# KVVM_RELEASE_ZIP names the zip (make check builds it); without it this test builds one.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
# Everything below runs in a mount namespace of its own: the bind mounts into the chroot go
# away with this test, however it ends.
if [ -z "${KVVM_RELEASE_NS:-}" ]; then
  KVVM_RELEASE_NS=1 exec unshare --mount --propagation private sh "$0" "$@"
fi
tmp=$(mktemp -d /tmp/kvvm-release.XXXXXX)
. "$top/tests/system/lib.sh"

root=$(sh "$top/scripts/release.sh" --chroot)
zip=${KVVM_RELEASE_ZIP:-}
if [ -z "$zip" ]; then
  sh "$top/scripts/release.sh" "$tmp/dist" >/dev/null
  zip=$(ls "$tmp"/dist/*.zip)
fi
cleanup() {
  [ -x "$pkg/bin/disable" ] && in_chroot "$pkg/bin/disable" >/dev/null 2>&1
  umount "$root$tmp" "$root/proc" 2>/dev/null
  rmdir "$root$tmp" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# The floor, read off the zip's binaries.
sh "$top/scripts/floor.sh" "$zip" >"$tmp/floor"
sed 's/^/  /' "$tmp/floor"
glibc=$(sed -n 's/^glibc: \([0-9.]*\).*/\1/p' "$tmp/floor")
check "glibc symbol versions asked for are 2.26 or older (got $glibc)" \
  "[ -n '$glibc' ] && [ \"\$(printf '%s\n2.26\n' '$glibc' | sort -V | tail -1)\" = 2.26 ]"
check "no symbol versions asked of libcurl, zlib or any other library" \
  "grep -qx 'versions: none' '$tmp/floor'"
check "libraries: libc, libdl, libpthread and libz.so.1 only (libcurl is loaded when needed)" \
  "grep -qx 'libraries: libc.so.6 libdl.so.2 libpthread.so.0 libz.so.1' '$tmp/floor'"
check "unpacked, the release package is under 2 MiB" \
  "[ \$(unzip -l '$zip' | tail -1 | awk '{print \$1}') -lt 2097152 ]"

# libcurl names: every one the sources use (comments stripped) is in curl-floor.txt, and any
# newer than 7.61.0 is marked runtime.
for f in "$top"/src/*/*.c; do gcc -fpreprocessed -dD -E -P "$f"; done 2>/dev/null |
  grep -ohE '\b(CURL[A-Z0-9_]*[A-Z0-9]|curl_[a-z_]+)\b' | sort -u >"$tmp/used"
grep -v '^#' "$top/scripts/curl-floor.txt" >"$tmp/table"
missing=$(awk 'NR == FNR { t[$1] = 1; next } !($1 in t)' "$tmp/table" "$tmp/used" | tr '\n' ' ')
check "every libcurl name the sources use is dated in curl-floor.txt (${missing:-all are})" \
  "[ -z '$missing' ]"
newer=$(awk '$3 != "runtime" { split($2, v, "."); n = v[1] * 10000 + v[2] * 100 + v[3];
  if (n > 76100) print $1 }' "$tmp/table" | tr '\n' ' ')
check "names newer than libcurl 7.61.0 are only used behind a run-time check (${newer:-none other})" \
  "[ -z '$newer' ]"
check "the run-time check in http.c gates CURLOPT_CAINFO_BLOB on 7.77.0 (0x074d00)" \
  "grep -q 'version_num >= 0x074d00' '$top/src/vault/http.c'"

# The packaged binaries in the Debian 11 chroot. $tmp is bind-mounted at the same path
# inside, so paths mean the same thing on both sides.
mkdir -p "$root$tmp" && mount --bind "$tmp" "$root$tmp" && mount -t proc proc "$root/proc"
in_chroot() { chroot "$root" "$@"; }
start_emulator
vault=myvault.vault.azure.net
pkg=$tmp/lib/Kvvm.Azure.KeyVaultCerts-release
unzip -q "$zip" -d "$tmp/unzipped"
chmod 0755 "$tmp"/unzipped/bin/*
. "$top/scripts/stage-package.sh"
stage_package "$tmp/unzipped" "$pkg" "$tmp/log"
v1=$(add_pfx web "www.contoso.com")
cat >"$pkg/config/1.settings" <<END
{"runtimeSettings": [{"handlerSettings": {"publicSettings": {
  "secretsManagementSettings": {"pollingIntervalInS": "3600", "requireInitialSync": true,
    "observedCertificates": ["https://$vault/secrets/web"]},
  "authenticationSettings": {"msiEndpoint": "http://127.0.0.1:$(emu imds_port)/metadata/identity"}}}}]}
END
export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=$vault:443:127.0.0.1:$(emu kv_port)
export KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$tmp/store KVVM_SERVICE_MODE=detached
export KVVM_HOOKS_DIR=$tmp/hooks.d ConfigSequenceNumber=1 AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg

check "in the chroot: Debian 11 (glibc $(in_chroot ldd --version | sed -n '1s/.* //p'))" \
  "grep -q '^11\.' '$root/etc/debian_version'"
in_chroot "$pkg/bin/kvvm" --version >"$tmp/out" 2>"$tmp/err"
check "kvvm --version runs there and prints the zip's version" \
  "grep -qx \"kvvm \$(basename '$zip' .zip | sed 's/.*__//')\" '$tmp/out'"
check "nothing on stderr (no 'no version information available')" "[ ! -s '$tmp/err' ]"
in_chroot "$pkg/bin/install" >"$tmp/out" 2>&1
check "install succeeds there" "[ $? = 0 ]"
in_chroot "$pkg/bin/enable" >"$tmp/out" 2>&1
check "enable succeeds there (and starts kvvmd)" "[ $? = 0 ]"
in_chroot "$pkg/bin/kvvm" wait --timeout 30 >"$tmp/out" 2>&1
check "kvvm wait: the first sync completes" "[ $? = 0 ]"
check "the certificate is installed under its stable name, root-only" \
  "[ \"\$(readlink '$tmp/store/myvault.web')\" = myvault.web.$v1 ] &&
   [ \"\$(stat -L -c %a '$tmp/store/myvault.web')\" = 600 ]"
check "the status file says success" \
  "grep -q '\"status\": *\"success\", *\"code\"' '$pkg/status/1.status'"
v2=$(add_pfx web "www.contoso.com")
in_chroot "$pkg/bin/kvvm" sync-now >"$tmp/out" 2>&1
i=0
while [ "$(readlink "$tmp/store/myvault.web")" != "myvault.web.$v2" ] && [ $i -lt 100 ]; do
  sleep 0.1
  i=$((i + 1))
done
check "a rotation is installed after kvvm sync-now" \
  "[ \"\$(readlink '$tmp/store/myvault.web')\" = myvault.web.$v2 ]"
in_chroot "$pkg/bin/disable" >"$tmp/out" 2>&1
check "disable succeeds there" "[ $? = 0 ]"
in_chroot "$pkg/bin/uninstall" >"$tmp/out" 2>&1
check "uninstall succeeds there" "[ $? = 0 ]"
check "the log has no warnings from the dynamic linker" \
  "[ -s '$tmp/log/kvvm.log' ] && ! grep -q 'version information' '$tmp/log/kvvm.log'"

echo "test_release: $passed passed, $failed failed"
[ "$failed" = 0 ]
