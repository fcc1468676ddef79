#!/bin/sh
# The store on a full disk and on a read-only file system: the certificate's error says so in
# words, the version installed before stays whole and linked, and the next pass after space
# returns (or the file system is writable again) installs the new version. The store is a
# small tmpfs of this test's own; the engine is `kvvm run --once` (one pass of kvvmd's code)
# against the emulator.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
# The mounts go away with this test's mount namespace, however it ends.
if [ -z "${KVVM_DISK_NS:-}" ]; then
  KVVM_DISK_NS=1 exec unshare --mount --propagation private sh "$0" "$@"
fi
tmp=$(mktemp -d /tmp/kvvm-disk.XXXXXX)
trap 'umount "$tmp/store" 2>/dev/null; rm -rf "$tmp"' EXIT
. "$top/tests/system/lib.sh"
kvvm=$top/$build/pkg/bin/kvvm

start_emulator
vault=myvault.vault.azure.net
export KVVM_CA_FILE=$tmp/emu/ca.pem KVVM_CONNECT_TO=$vault:443:127.0.0.1:$(emu kv_port)
export KVVM_STATE_DIR=$tmp/state KVVM_STORE_ROOT=$tmp/store KVVM_HOOKS_DIR=$tmp/no-hooks
mkdir -p "$tmp/store"
# 256 KiB: room for the first version and a little more.
mount -t tmpfs -o size=256k,mode=0755 kvvm-test "$tmp/store"
cat >"$tmp/run.json" <<END
{"secretsManagementSettings": {"pollingIntervalInS": "3600",
   "observedCertificates": ["https://$vault/secrets/web"]},
 "authenticationSettings": {"msiEndpoint": "http://127.0.0.1:$(emu imds_port)/metadata/identity"}}
END
link=$tmp/store/myvault.web
intact() {  # the stable name resolves to version $1, and that file is a whole PEM bundle
  [ "$(readlink "$link")" = "myvault.web.$1" ] &&
    openssl x509 -noout -in "$link" 2>/dev/null &&
    openssl pkey -noout -in "$link" 2>/dev/null
}

v1=$(add_pfx web www.contoso.com)
"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
check "first version installed on the small file system" "[ $? = 0 ] && intact $v1"

# Full: fill what is left, then a new version arrives.
dd if=/dev/zero of="$tmp/store/filler" bs=4k 2>/dev/null
v2=$(add_pfx web www.contoso.com)
"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
rc=$?
check "disk full: run --once exits 1 (a new version could not be installed)" "[ $rc = 1 ]"
check "disk full: the error names the disk being full" \
  "grep -qi 'No space left on device' '$tmp/out'"
check "disk full: version $v1 is still linked and whole" "intact $v1"
check "disk full: no temp file is left in the store" "! ls -a '$tmp/store' | grep -q '^\.kvvm-tmp'"
check "disk full: kvvm status shows the error on the certificate" \
  "'$kvvm' status --json 2>/dev/null | grep -qi 'no space left'"
rm -f "$tmp/store/filler"
"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
check "space back: the next pass installs $v2" "[ $? = 0 ] && intact $v2"

# Read-only: the file system is remounted read-only under kvvm, then a new version arrives.
mount -o remount,ro "$tmp/store"
v3=$(add_pfx web www.contoso.com)
"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
rc=$?
check "read-only: run --once exits 1" "[ $rc = 1 ]"
check "read-only: the error names the read-only file system" \
  "grep -qi 'read-only file system' '$tmp/out'"
check "read-only: version $v2 is still linked and whole" "intact $v2"
mount -o remount,rw "$tmp/store"
"$kvvm" run --config "$tmp/run.json" --once >"$tmp/out" 2>&1
check "writable again: the next pass installs $v3" "[ $? = 0 ] && intact $v3"

echo "disk_faults: $passed passed, $failed failed"
[ "$failed" = 0 ]
