#!/usr/bin/python3
"""make bench: kvvm beside what users would otherwise run, in one invocation, on one emulator.

    bench.py --build BUILD [--runs 3] [--peer-runs 3] [--sizes 1,100,1000] [--latencies 0,20]
             [--idle 20] [--out docs/benchmarks.md] [--json docs/benchmarks.json]

For each added latency L the emulator (tests/emulator/kvemu.py) holds 1000 Key Vault-style PFX
secrets (tests/bench/corpus.py). For each N, each client fetches the same N secrets and writes
them as PEM: kvvm (first sync, driven as the guest agent drives it: install, enable, the
status file saying success; tests/bench/kvvm_client.py), the Azure SDK for JavaScript one at a
time and all in flight, and a curl + jq + openssl shell loop (tests/bench/peers). Then, for
kvvm at the largest N: a steady-state pass over unchanged certificates (in one vault, which
kvvm lists, and spread over N vaults of one certificate each) and the idle service.
Beside them: PFX decoding in-process against `openssl pkcs12` (bench_p12) and the emulator's
own ceiling. Medians of the runs with their spread go to a Markdown table and to JSON.
kvvm's chain check reads a trust store of the system's roots plus the corpus's root
(corpus.trust), as a certificate from a public CA chains to a root the system trusts.

The store and the clients' output go to a freshly made ext4 file system (a loop file), so
every run creates files on the same kind of disk a new VM has, not on a build machine's
file system aged by earlier runs (whose inode allocation alone cost kvvm 1.8 s of kernel time
per 1000 certificates in an early measurement).
"""
import argparse
import base64
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "emulator"))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import emu  # noqa: E402
import kvvm_client  # noqa: E402

VAULT = "benchvault.vault.azure.net"
B = 16   # kvvm's requests in flight (KVVM_KV_MAX_IN_FLIGHT)


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


class FreshFs:
    """A new ext4 file system in a loop file, mounted for the run; a temp folder if that fails."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kvvm-benchfs.")
        self.img = self.dir + ".img"
        self.mounted = False
        try:
            with open(self.img, "wb") as f:
                f.truncate(512 << 20)
            sh("mkfs.ext4", "-q", "-F", self.img)
            sh("mount", "-o", "loop", self.img, self.dir)
            self.mounted = True
        except (subprocess.CalledProcessError, OSError):
            pass
        self.kind = "fresh ext4 (512 MiB loop file)" if self.mounted else "temp folder"

    def close(self):
        if self.mounted:
            subprocess.run(["umount", self.dir], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.path.exists(self.img):
            os.unlink(self.img)


def tree_rss_kib(root_pid):
    """VmRSS summed over a process and its descendants."""
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        st = kvvm_client.proc_status(pid)
        if st:
            total += kvvm_client.kib(st, "VmRSS")
        todo.extend(kids.get(pid, []))
    return total


def run_peer(cmd, env, emulator):
    """A peer as a process tree: wall (ours and its own), CPU of the tree, peak tree RSS."""
    emulator.reset_stats()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_kib(p.pid))
            time.sleep(0.02)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = p.communicate()
    wall = time.monotonic() - t0
    stop.set()
    t.join()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"ok": 0, "error": err[-400:]}
    st = emulator.stats(log=False)
    res.update(process_wall_s=wall, cpu_s=cpu, peak_rss_kib=peak[0],
               requests=st["by_target"].get("kv", 0), tls_handshakes=st["tls_handshakes"],
               peak_in_flight=st["peak_in_flight"], exit=p.returncode)
    return res


def peers(emulator, names, fs):
    node_env = dict(os.environ, NODE_EXTRA_CA_CERTS=emulator.ca_file)
    out = {}
    for client, cmd, env in (
            ("sdk-sequential", ["node", os.path.join(HERE, "peers", "sdk_bench.mjs"), "--mode",
                                "sequential"], node_env),
            ("sdk-parallel", ["node", os.path.join(HERE, "peers", "sdk_bench.mjs"), "--mode",
                              "parallel"], node_env),
            ("curl-loop", ["sh", os.path.join(HERE, "peers", "curl_loop.sh")], dict(os.environ))):
        work = tempfile.mkdtemp(dir=fs.dir)
        with open(os.path.join(work, "names"), "w") as f:
            f.write("\n".join(names) + "\n")
        os.makedirs(os.path.join(work, "out"))
        out[client] = run_peer(cmd + ["--emu", emulator.dir, "--vault", VAULT, "--names",
                                      os.path.join(work, "names"), "--out",
                                      os.path.join(work, "out")], env, emulator)
        shutil.rmtree(work, ignore_errors=True)
    return out


def request_cost(build, emulator, names, fs):
    """CPU of the same fetches alone (bench_fetch), three times."""
    work = tempfile.mkdtemp(dir=fs.dir)
    with open(os.path.join(work, "urls"), "w") as f:
        f.write("".join("https://%s/secrets/%s\n" % (VAULT, n) for n in names))
    with open(os.path.join(work, "token"), "w") as f:
        f.write(emulator.imds_token() + "\n")
    env = emulator.client_env([VAULT])
    out = [json.loads(sh(os.path.join(build, "bench", "bench_fetch"), os.path.join(work, "urls"),
                         os.path.join(work, "token"), env=env)) for _ in range(3)]
    shutil.rmtree(work, ignore_errors=True)
    return out


def spread_vaults(n):
    return ["bv%04d.vault.azure.net" % i for i in range(n)]


def steady_spread(build, emulator, names, files, fs):
    """The steady pass over N certificates in N vaults of one each: listing a vault is no
    cheaper than asking its one secret, so the pass must send what it sent before the
    listing existed (N requests)."""
    os.environ["KVVM_BENCH_FS"] = fs.dir
    hosts = spread_vaults(len(names))
    k = kvvm_client.Kvvm(os.path.join(build, "pkg"), emulator, hosts[0], names, vaults=hosts,
                         trust=corpus.trust(os.path.join(build, "bench", "corpus")))
    try:
        first = k.first_sync(emulator)
        return [k.steady_pass(emulator) for _ in range(3)] if first["ok"] else []
    finally:
        k.close()


def kvvm_runs(build, emulator, names, runs, fs, extras, idle_s):
    results, extra = [], {}
    os.environ["KVVM_BENCH_FS"] = fs.dir
    for r in range(runs):
        k = kvvm_client.Kvvm(os.path.join(build, "pkg"), emulator, VAULT, names,
                             trust=corpus.trust(os.path.join(build, "bench", "corpus")))
        try:
            results.append(k.first_sync(emulator))
            if extras and r == runs - 1:
                extra["steady"] = [k.steady_pass(emulator) for _ in range(3)]
                extra["idle"] = k.idle(idle_s)
                extra["requests_alone"] = request_cost(build, emulator, names, fs)
        finally:
            k.close()
    return results, extra


def med(rows, key):
    vals = [r[key] for r in rows if key in r and r[key] is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = open("/proc/cpuinfo").read()
    return {"cpu": cpu, "cores": os.cpu_count(), "sha_extensions": " sha_ni" in flags,
            "kernel": platform.release(),
            "debian": open("/etc/debian_version").read().strip(),
            "libcurl": sh("curl", "--version").split()[1],
            "openssl": sh("openssl", "version").strip(),
            "node": sh("node", "--version").strip()}


def decode_bench(build):
    out = sh(os.path.join(build, "bench", "bench_p12"), "-n", "1000")
    figs = {}
    for line in out.splitlines():
        m = re.match(r"(kvvm bundle|openssl pkcs12).*?([\d.]+) ms CPU each\s+([\d.]+) ms wall", line)
        if m:
            figs["kvvm" if m.group(1) == "kvvm bundle" else "openssl"] = {
                "cpu_ms": float(m.group(2)), "wall_ms": float(m.group(3))}
    return figs


def ceiling():
    out = sh("/usr/bin/python3", os.path.join(TOP, "tests", "emulator", "ceiling.py"),
             "--seconds", "3")
    figs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(keep-alive|new TLS connection per GET)\s+(\d+) ms latency:\s+(\d+)", line)
        if m:
            figs["%s %s ms" % (m.group(1), m.group(2))] = int(m.group(3))
    return figs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peer-runs", type=int, default=3)
    ap.add_argument("--sizes", default="1,100,1000")
    ap.add_argument("--latencies", default="0,20")
    ap.add_argument("--idle", type=float, default=20)
    ap.add_argument("--out", default=os.path.join(TOP, "docs", "benchmarks.md"))
    ap.add_argument("--json", default=os.path.join(TOP, "docs", "benchmarks.json"))
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    lats = [float(x) for x in a.latencies.split(",")]
    print("bench: corpus of %d PFX" % max(sizes), flush=True)
    files = corpus.make(os.path.join(a.build, "bench", "corpus"), max(sizes))
    sdk = os.path.join(TOP, "tests", "emulator", "sdk")
    if not os.path.isdir(os.path.join(sdk, "node_modules", "@azure", "keyvault-secrets")):
        sh("npm", "ci", "--no-audit", "--no-fund", cwd=sdk)
    doc = {"machine": machine(), "runs": a.runs, "peer_runs": a.peer_runs,
           "decode": decode_bench(a.build), "ceiling": ceiling(), "sync": []}
    fs = FreshFs()
    doc["store_fs"] = fs.kind
    try:
        for lat in lats:
            with emu.Emulator(latency_ms=lat, lifetime=7200) as e:
                names = ["c%04d" % i for i in range(max(sizes))]
                # Made a day ago, as certificates are: a version fetched within minutes of
                # its creation is asked again directly (listing.h, ambiguous).
                made = int(time.time()) - 86400
                for n, f, h in zip(names, files, spread_vaults(len(names))):
                    with open(f, "rb") as fh:
                        value = base64.b64encode(fh.read()).decode()
                    e.add_secret(VAULT, n, value, created=made)
                    e.add_secret(h, n, value, created=made)
                for n in sizes:
                    print("bench: L=%g ms N=%d: kvvm" % (lat, n), flush=True)
                    rows, extra = kvvm_runs(a.build, e, names[:n], a.runs, fs, n == max(sizes),
                                            a.idle)
                    if n == max(sizes):
                        print("bench: L=%g ms N=%d: kvvm steady pass, %d vaults" % (lat, n, n),
                              flush=True)
                        extra["steady_spread"] = steady_spread(a.build, e, names[:n], files, fs)
                    entry = {"latency_ms": lat, "n": n, "kvvm": rows, **extra, "peers": {}}
                    for r in range(a.peer_runs):
                        print("bench: L=%g ms N=%d: peers, run %d" % (lat, n, r + 1), flush=True)
                        for client, res in peers(e, names[:n], fs).items():
                            entry["peers"].setdefault(client, []).append(res)
                    doc["sync"].append(entry)
    finally:
        fs.close()
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=1)
    import report   # noqa: E402  (tests/bench/report.py)
    with open(a.out, "w") as f:
        f.write(report.markdown(doc))
    print("bench: wrote %s and %s" % (a.out, a.json))


if __name__ == "__main__":
    main()
