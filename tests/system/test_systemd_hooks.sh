#!/bin/sh
# Renewal hooks under a real systemd: a Debian 12 tree booted with systemd-nspawn --boot (its
# own systemd as PID 1), the built package staged there the way the guest agent lays it out,
# and its enable run there with no testing aids but the emulator's address and CA (so enable
# writes /etc/systemd/system/kvvmd.service and runs systemctl as on a VM). A hook in
# /etc/kvvm/hooks.d runs `systemctl reload dummy.service` from inside kvvmd's sandbox; the
# dummy service's ExecReload records each reload where only systemd can write it. Checked:
# the reloads happen at the install and at a renewal, the status is clean, a hook whose
# reload fails shows as "renewal hook failed", and `systemd-analyze security` is read online.
#   KVVM_BUILD     the build folder (default build; the package is $KVVM_BUILD/pkg)
#   KVVM_SYSD_LIMIT  seconds for the whole run (default 240)
# The container tree is made once with debootstrap under $KVVM_CHROOT_CACHE (default
# /var/cache/kvvm) as sysd-bookworm-<recipe>, and booted with --volatile=overlay: each run's
# writes go to a tmpfs and the tree stays as made. Needs root, systemd-container and network
# access to deb.debian.org the first time (make check installs systemd-container).
set -u
if [ -z "${KVVM_SYSD_TIMED:-}" ]; then
  KVVM_SYSD_TIMED=1 exec timeout -k 20 "${KVVM_SYSD_LIMIT:-240}" sh "$0" "$@"
fi
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-sysd.XXXXXX)
chmod 0755 "$tmp"
. "$top/tests/system/lib.sh"
start_s=$(date +%s)

command -v systemd-nspawn >/dev/null || {
  echo "systemd_hooks: systemd-nspawn missing (apt-get install systemd-container)" >&2
  exit 2
}
[ -x "$top/$build/pkg/bin/kvvmd" ] || { echo "systemd_hooks: build $build first" >&2; exit 2; }

# The tree: made once per recipe, in a folder renamed when complete.
cache=${KVVM_CHROOT_CACHE:-/var/cache/kvvm}
# libasan8 and libubsan1: make check-sanitize runs this test with sanitizer builds too.
pkgs=systemd,systemd-sysv,dbus,libcurl4,libasan8,libubsan1
recipe=$(printf 'bookworm %s\n' "$pkgs" | sha256sum | cut -c1-12)
tree=$cache/sysd-bookworm-$recipe
mkdir -p "$cache"
exec 9>"$cache/.sysd-lock"
flock 9
if [ ! -d "$tree" ]; then
  echo "systemd_hooks: debootstrap bookworm into $tree (once; about a minute)"
  rm -rf --one-file-system "$tree.tmp"
  if ! debootstrap --variant=minbase --include="$pkgs" bookworm "$tree.tmp" \
    http://deb.debian.org/debian >"$cache/sysd-debootstrap.log" 2>&1; then
    tail -20 "$cache/sysd-debootstrap.log" >&2
    rm -rf --one-file-system "$tree.tmp"
    exit 2
  fi
  mv "$tree.tmp" "$tree"
fi
flock -u 9

# Without systemd on the host nspawn cannot ask for a scope: it runs with --keep-unit in a
# cgroup of its own, made here (cgroup v1 name=systemd plus the unified v2 hierarchy, or a
# v2-only /sys/fs/cgroup) and removed after. Under a systemd host it runs in a scope.
machine=kvvmsysd$$
cgdirs=
if [ -d /run/systemd/system ]; then
  launch="systemd-run --quiet --scope --unit=$machine"
elif [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  cgdirs=/sys/fs/cgroup/$machine
  launch=
else
  for h in systemd unified; do
    [ -d "/sys/fs/cgroup/$h" ] && cgdirs="$cgdirs /sys/fs/cgroup/$h/$machine"
  done
  launch=
fi
nspawn_pid=
cleanup() {
  trap '' TERM INT HUP
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid"  # nspawn shuts the container down in order
    i=0
    while kill -0 "$nspawn_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$nspawn_pid" 2>/dev/null
  fi
  for d in $cgdirs; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  [ -f "$tmp/emu/emu.json" ] && kill "$(emu pid)" 2>/dev/null
  [ -n "${KEEP:-}" ] && { echo "kept $tmp"; return; }
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "systemd_hooks: interrupted or out of time" >&2; exit 1' TERM INT HUP

# The host's $tmp is /srv/kvvm-tmp in the container (not under /tmp: kvvmd has PrivateTmp).
ctmp=/srv/kvvm-tmp
cp -r "$top/$build/pkg" "$tmp/pkg"
cp "$top/scripts/stage-package.sh" "$tmp/"
# $launch is empty or a command to split into words.
# shellcheck disable=SC2016,SC2086
sh -c 'for d in $1; do mkdir -p "$d" && echo $$ >"$d/cgroup.procs" || exit 1; done
  shift; exec "$@"' sh "$cgdirs" $launch systemd-nspawn --quiet -D "$tree" --boot \
  --machine="$machine" --register=no --keep-unit --console=passive --volatile=overlay \
  --bind="$tmp:$ctmp" >"$tmp/nspawn.log" 2>&1 &
nspawn_pid=$!

# The container's PID 1 is nspawn's child once it runs systemd.
leader=
i=0
while [ $i -lt 100 ]; do
  for p in $(pgrep -P "$nspawn_pid"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ] && leader=$p
  done
  [ -n "$leader" ] && break
  sleep 0.1
  i=$((i + 1))
done
in_ct() { nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
state=
if [ -n "$leader" ]; then
  i=0
  while [ $i -lt 300 ]; do
    state=$(in_ct systemctl is-system-running 2>/dev/null)
    case "$state" in running | degraded) break ;; esac
    sleep 0.1
    i=$((i + 1))
  done
fi
check "systemd boots as PID 1 in the container (state: ${state:-none}, $(($(date +%s) - start_s)) s)" \
  "[ '$state' = running ] || [ '$state' = degraded ]"
if [ "$failed" != 0 ]; then
  sed 's/^/  nspawn: /' "$tmp/nspawn.log"
  exit 1
fi
echo "  $(in_ct systemctl --version | head -1); $(in_ct cat /etc/debian_version | sed 's/^/Debian /')"

start_emulator
vault=myvault.vault.azure.net
ver=$(mkval KVVM_VERSION)
name=$(mkval KVVM_PUBLISHER).$(mkval KVVM_TYPE)
pkg=/var/lib/waagent/$name-$ver
log=/var/log/azure/$name
store=/var/lib/waagent/Microsoft.Azure.KeyVault.Store
status=$pkg/status/1.status
v1=$(add_pfx web www.contoso.com)

# The dummy service records reloads in its StateDirectory, which kvvmd's sandbox cannot
# write; the hook reloads the unit named in /etc/kvvm/reload-target.
in_ct sh -ec "
. $ctmp/stage-package.sh
stage_package $ctmp/pkg $pkg $log
cat >$pkg/config/1.settings <<END
{\"runtimeSettings\": [{\"handlerSettings\": {\"publicSettings\": {
  \"secretsManagementSettings\": {\"pollingIntervalInS\": \"3600\", \"requireInitialSync\": true,
    \"observedCertificates\": [\"https://$vault/secrets/web\"]},
  \"authenticationSettings\": {\"msiEndpoint\": \"http://127.0.0.1:$(emu imds_port)/metadata/identity\"}}}}]}
END
cat >/etc/systemd/system/dummy.service <<'END'
[Service]
StateDirectory=dummy
ExecStart=/bin/sh -c 'echo started >>/var/lib/dummy/log; exec sleep infinity'
ExecReload=/bin/sh -c 'echo reloaded >>/var/lib/dummy/log'
END
systemctl daemon-reload
systemctl start dummy.service
mkdir -p -m 0755 /etc/kvvm/hooks.d
echo dummy.service >/etc/kvvm/reload-target
cat >/etc/kvvm/hooks.d/50-reload <<'END'
#!/bin/sh
echo \"event=\$KVVM_HOOK_EVENT version=\$KVVM_VERSION cgroup=\$(grep -o '/system.slice/[^/]*' /proc/self/cgroup | head -1)\"
if touch /etc/kvvm-hook-probe 2>/dev/null; then echo 'sandbox: /etc writable'; else echo 'sandbox: /etc read-only'; fi
exec systemctl reload \"\$(cat /etc/kvvm/reload-target)\"
END
chmod 0755 /etc/kvvm/hooks.d/50-reload
"
check "package staged, dummy.service running, hook in place" \
  "in_ct systemctl is-active --quiet dummy.service && in_ct test -x /etc/kvvm/hooks.d/50-reload"

# enable as the agent runs it: only the emulator's address and CA are testing aids.
ct_env="ConfigSequenceNumber=1 AZURE_GUEST_AGENT_EXTENSION_PATH=$pkg KVVM_CA_FILE=$ctmp/emu/ca.pem
  KVVM_CONNECT_TO=$vault:443:127.0.0.1:$(emu kv_port)"
# shellcheck disable=SC2086
handler() { in_ct env $ct_env "$pkg/bin/$1" >"$tmp/out.$1" 2>&1; }
reloads() { in_ct sh -c 'grep -c reloaded /var/lib/dummy/log' 2>/dev/null || echo 0; }
waitfor() {  # condition, seconds
  i=0
  while ! eval "$1" && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  eval "$1"
}
handler install
check "install succeeds" "[ $? = 0 ]"
handler enable
check "enable succeeds under systemd" "[ $? = 0 ]"
unit=/etc/systemd/system/kvvmd.service
check "enable wrote $unit, running this package's kvvmd" \
  "in_ct grep -qx 'ExecStart=$pkg/bin/kvvmd' $unit"
check "systemd runs kvvmd.service (enabled, active)" \
  "in_ct systemctl is-enabled --quiet kvvmd.service && in_ct systemctl is-active --quiet kvvmd.service"
in_ct "$pkg/bin/kvvm" wait --timeout 30 >"$tmp/out.wait" 2>&1
check "kvvm wait: the first sync completes" "[ $? = 0 ]"
check "the certificate is installed" "[ \"\$(in_ct readlink $store/myvault.web)\" = myvault.web.$v1 ]"
check "the hook reloaded dummy.service from inside kvvmd's unit (install and pass: 2 reloads)" \
  "waitfor '[ \$(reloads) -ge 2 ]' 10"
# kvvmd logs to kvvm.log, or to stderr (the journal) when it cannot open it: hook lines are
# looked for in both.
logs() {
  { in_ct cat "$log/kvvm.log"; in_ct journalctl -q -u kvvmd.service --no-pager -o cat; } \
    >"$tmp/kvvm.log" 2>/dev/null
}
logs
check "kvvmd writes kvvm.log in the agent's log folder ($log) from inside its unit" \
  "! grep -q 'cannot open $log/kvvm.log' '$tmp/kvvm.log' && grep -q '^[^ ]* kvvmd\[' '$tmp/kvvm.log'"
check "the hook ran in kvvmd.service's cgroup" \
  "grep -q 'hook 50-reload: event=install .*cgroup=/system.slice/kvvmd.service$' '$tmp/kvvm.log'"
check "the hook ran in the sandbox (/etc read-only to it)" \
  "grep -q 'hook 50-reload: sandbox: /etc read-only' '$tmp/kvvm.log'"
check "the status is success with the certificate's substatus clean" \
  "waitfor 'in_ct cat $status | grep -q \"\\\"status\\\": *\\\"success\\\", *\\\"code\\\": *0\"' 10 &&
   ! in_ct grep -q 'hook failed' $status"

# A renewal: the hook runs again with renew, and reloads again.
before=$(reloads)
v2=$(add_pfx web www.contoso.com)
in_ct "$pkg/bin/kvvm" sync-now >/dev/null 2>&1
check "a renewal is installed after kvvm sync-now" \
  "waitfor '[ \"\$(in_ct readlink $store/myvault.web)\" = myvault.web.$v2 ]' 20"
check "the renewal's hooks reloaded dummy.service again (renew and pass)" \
  "waitfor '[ \$(reloads) -ge $((before + 2)) ]' 10"
logs
check "the log shows the renew event for the new version" \
  "grep -q 'hook 50-reload: event=renew version=$v2' '$tmp/kvvm.log'"
check "the status is still clean" \
  "waitfor '! in_ct grep -q \"hook failed\" $status && in_ct grep -q \"\\\"status\\\": *\\\"success\\\"\" $status' 10"

# The control: a reload systemd refuses (no such unit) fails the hook, and the status says so.
in_ct sh -c 'echo kvvm-no-such.service >/etc/kvvm/reload-target'
add_pfx web www.contoso.com >/dev/null
in_ct "$pkg/bin/kvvm" sync-now >/dev/null 2>&1
check "a renewal whose reload fails: substatus says renewal hook failed" \
  "waitfor 'in_ct grep -q \"renewal hook failed: 50-reload exited\" $status' 20"
in_ct cat "$status" >"$tmp/status"
echo "  $(grep -o 'renewal hook failed: [^"]*' "$tmp/status" | head -1)"
in_ct sh -c 'echo dummy.service >/etc/kvvm/reload-target'

# The unit as this systemd loads it (online, with the kernel's view).
in_ct systemd-analyze security --no-pager kvvmd.service >"$tmp/sec" 2>&1
score=$(sed -n 's/.*Overall exposure level for kvvmd.service: \([0-9.]*\).*/\1/p' "$tmp/sec")
in_ct systemd-analyze security --offline=true --no-pager $unit >"$tmp/sec-offline" 2>&1
offline=$(sed -n 's/.*Overall exposure level for kvvmd.service: \([0-9.]*\).*/\1/p' "$tmp/sec-offline")
echo "  systemd-analyze security kvvmd.service in the container: online ${score:-?}, offline ${offline:-?}"
check "online exposure score at most 2.5" "awk 'BEGIN{exit !(\"${score:-99}\" + 0 <= 2.5)}'"

handler disable
check "disable stops kvvmd.service" "[ $? = 0 ] && ! in_ct systemctl is-active --quiet kvvmd.service"
check "disable takes kvvmd.service off the boot" "! in_ct systemctl is-enabled --quiet kvvmd.service"
handler enable
check "enable after disable: enabled and active again" \
  "in_ct systemctl is-enabled --quiet kvvmd.service && in_ct systemctl is-active --quiet kvvmd.service"
handler disable
handler uninstall
check "uninstall removes the unit" "[ $? = 0 ] && ! in_ct test -e $unit"

echo "systemd_hooks: $passed passed, $failed failed ($(($(date +%s) - start_s)) s)"
if [ "$failed" != 0 ]; then
  echo "  kvvm.log and kvvmd's journal (tail):"
  logs
  tail -40 "$tmp/kvvm.log" | sed 's/^/  /'
fi
[ "$failed" = 0 ]
