#!/bin/sh
# Installs the Debian packages a make target needs, and nothing else.
#   scripts/deps.sh build   compiler and the four libraries
#   scripts/deps.sh test    build + what the test suites run (the real guest agent, openssl, ...)
#   scripts/deps.sh fuzz    build + clang (libFuzzer, sanitizers)
#   scripts/deps.sh release what make release needs on the host (debootstrap)
#   scripts/deps.sh bench   test + the benchmark peers' tools (jq, curl)
# As root it runs apt-get; otherwise it prints the exact command and fails, so nothing is
# ever half-installed by hand.
set -eu

build_pkgs="gcc binutils make pkg-config libc6-dev libcurl4-openssl-dev libjansson-dev libmbedtls-dev zlib1g-dev"
# MBEDTLS_DIR set: the build uses an mbedTLS built there (the release chroot), not Debian's.
if [ -n "${MBEDTLS_DIR:-}" ]; then
  build_pkgs=$(echo "$build_pkgs" | sed 's/ libmbedtls-dev//')
fi

# waagent: the real Linux guest agent, driven by tests/agent; python3 is Debian's /usr/bin/python3,
# which is the interpreter that sees waagent's modules. systemd provides systemd-analyze.
# python3-cryptography, default-jre-headless (keytool) and libnss3-tools (pk12util) make the
# PKCS#12 files other producers write, generated at test time.
test_pkgs="$build_pkgs waagent python3 openssl systemd unzip python3-cryptography default-jre-headless libnss3-tools valgrind iproute2 acl"

# debootstrap makes the release chroot (scripts/release.sh); binutils' objdump reads the floor.
release_pkgs="debootstrap binutils git unzip"
test_pkgs="$test_pkgs debootstrap git"
# systemd-nspawn boots a Debian 12 tree with its own systemd for the hooks test
# (tests/system/test_systemd_hooks.sh).
test_pkgs="$test_pkgs systemd-container"
# Debian's node_exporter scrapes kvvm's metrics file in tests/system/test_metrics.sh, which
# starts its own on loopback: the package's service is never started nor left enabled.
test_pkgs="$test_pkgs prometheus-node-exporter"
# A real nginx reads fileLayout's fullchain and key pair across a renewal in
# tests/system/test_file_layout.sh, which runs its own on loopback: the package's service is
# never started (policy-rc.d below) nor left enabled.
test_pkgs="$test_pkgs nginx"

# make bench: the peers' tools (tests/bench/peers: curl + jq loop; node runs the SDK).
bench_pkgs="$test_pkgs jq curl"

# clang and its runtime for libFuzzer and the sanitizers.
fuzz_pkgs="$build_pkgs clang"

case "${1:-build}" in
  build) want=$build_pkgs ;;
  test) want=$test_pkgs ;;
  fuzz) want=$fuzz_pkgs ;;
  release) want=$release_pkgs ;;
  bench) want=$bench_pkgs ;;
  *) echo "usage: $0 build|test|fuzz|release|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$s" in
    *" installed") ;;
    *) missing="$missing $p" ;;
  esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "kvvm: missing Debian packages:$missing" >&2
  echo "kvvm: install them with: sudo apt-get install -y$missing" >&2
  exit 1
fi

echo "kvvm: installing Debian packages:$missing" >&2
# The guest agent package must never start its service on a build or CI machine: a
# temporary policy-rc.d refuses service starts while its postinst runs.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { [ "$own_policy" = 1 ] && rm -f "$policy"; return 0; }
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
case " $missing " in
  *" prometheus-node-exporter "*)
    systemctl disable --quiet prometheus-node-exporter.service 2>/dev/null || true
    systemctl stop prometheus-node-exporter.service 2>/dev/null || true ;;
esac
case " $missing " in
  *" nginx "*)
    systemctl disable --quiet nginx.service 2>/dev/null || true
    systemctl stop nginx.service 2>/dev/null || true ;;
esac
