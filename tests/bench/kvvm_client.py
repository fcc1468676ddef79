"""kvvm driven as the guest agent drives it, for the benchmark (tests/bench/bench.py).

A package folder is laid out in a temporary root the way the agent lays it out (the package
zip's tree, HandlerEnvironment.json, config/1.settings naming N certificates); `install` and
`enable` run; the clock stops when the status file says `success`. kvvmd and its pass worker
(a child process for each pass) are sampled from /proc every few milliseconds meanwhile: RSS and
anonymous RSS summed over the two (a page the worker shares with kvvmd after the fork counts
twice: an upper bound), and the proportional share (Pss_Anon, the exact figure). CPU is kvvmd's
own plus its reaped children's. The emulator's counters give the requests, TLS handshakes and
peak requests in flight.
"""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        return None
    return out


def kib(status, key):
    return int(status.get(key, "0 kB").split()[0])


def cpu_split(pid):
    """(utime, stime) of the process and its reaped children (the pass workers), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return ((int(fields[11]) + int(fields[13])) / TICK,
            (int(fields[12]) + int(fields[14])) / TICK)


def tree(pid):
    """pid and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def pss_anon(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid):
    return sum(cpu_split(pid))


class Sampler(threading.Thread):
    """Peak VmRSS, RssAnon and Pss_Anon of a process and its descendants (summed), sampled
    every 2 ms until stopped."""

    def __init__(self, pid_fn):
        super().__init__(daemon=True)
        self.pid_fn, self.stop_ev = pid_fn, threading.Event()
        self.peak_rss = self.peak_anon = self.peak_pss_anon = 0

    def sample(self, pid):
        rss = anon = pss = 0
        for p in tree(pid):
            st = proc_status(p)
            if st:
                rss, anon = rss + kib(st, "VmRSS"), anon + kib(st, "RssAnon")
                pss += pss_anon(p)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_anon = max(self.peak_anon, anon)
        self.peak_pss_anon = max(self.peak_pss_anon, pss)

    def run(self):
        while not self.stop_ev.is_set():
            pid = self.pid_fn()
            if pid:
                self.sample(pid)
            time.sleep(0.002)

    def stop(self):
        self.stop_ev.set()
        self.join()


class Kvvm:
    """One staged package and its kvvmd, for one first sync and what follows it."""

    def __init__(self, pkg_tree, emu, vault, names, poll_s=3600, vaults=None, trust=None):
        """vaults: one vault per name instead of `vault` for all (the steady pass's spread
        case). trust: the trust store of the chain check (corpus.trust), so that the
        certificates chain to a trusted root as a public CA's do."""
        self.root = tempfile.mkdtemp(prefix="kvvm-bench.", dir=os.environ.get("KVVM_BENCH_FS"))
        self.pkg = os.path.join(self.root, "lib", "Kvvm.Azure.KeyVaultCerts-bench")
        shutil.copytree(pkg_tree, self.pkg)
        for d in ("config", "status"):
            os.makedirs(os.path.join(self.pkg, d))
        log = os.path.join(self.root, "log")
        os.makedirs(log)
        with open(os.path.join(self.pkg, "HandlerEnvironment.json"), "w") as f:
            json.dump([{"version": 1.0, "handlerEnvironment": {
                "logFolder": log, "configFolder": os.path.join(self.pkg, "config"),
                "statusFolder": os.path.join(self.pkg, "status"),
                "heartbeatFile": os.path.join(self.pkg, "heartbeat.log")}}], f)
        hosts = vaults or [vault] * len(names)
        urls = ["https://%s/secrets/%s" % (h, n) for h, n in zip(hosts, names)]
        settings = {"runtimeSettings": [{"handlerSettings": {"publicSettings": {
            "secretsManagementSettings": {"pollingIntervalInS": str(poll_s),
                                          "requireInitialSync": True,
                                          "observedCertificates": urls},
            "authenticationSettings": {"msiEndpoint": emu.imds_endpoint}}}}]}
        with open(os.path.join(self.pkg, "config", "1.settings"), "w") as f:
            json.dump(settings, f)
        self.state = os.path.join(self.root, "state")
        self.store = os.path.join(self.root, "store")
        self.status = os.path.join(self.pkg, "status", "1.status")
        self.phases = os.path.join(self.root, "phases.jsonl")
        self.env = emu.client_env(sorted(set(hosts)), base=dict(os.environ))
        self.env.update(KVVM_STATE_DIR=self.state, KVVM_STORE_ROOT=self.store,
                        KVVM_HOOKS_DIR=os.path.join(self.root, "hooks.d"),
                        KVVM_SERVICE_MODE="detached", ConfigSequenceNumber="1",
                        AZURE_GUEST_AGENT_EXTENSION_PATH=self.pkg,
                        KVVM_PHASES_FILE=self.phases)
        if trust:
            self.env["KVVM_TRUST_FILE"] = trust

    def run(self, cmd, *args):
        subprocess.run([os.path.join(self.pkg, "bin", cmd), *args], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pid(self):
        try:
            with open(os.path.join(self.state, "kvvmd.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def status_is(self, want, since_mtime=0.0, timeout=600):
        """Waits until the status file, rewritten after since_mtime, says want."""
        end, last = time.monotonic() + timeout, None
        while time.monotonic() < end:
            try:
                m = os.stat(self.status).st_mtime_ns
            except OSError:
                m = None
            if m is not None and m != last and m > since_mtime:
                last = m
                with open(self.status) as f:
                    text = f.read()
                try:
                    if json.loads(text)[0]["status"]["status"] == want:
                        return True
                except (ValueError, KeyError, IndexError):
                    pass   # caught mid-rename: read again at the next change
            time.sleep(0.003)
        return False

    def first_sync(self, emu):
        """enable -> success: wall, kvvmd CPU, peak RSS, requests, handshakes, in flight."""
        emu.reset_stats()
        sampler = Sampler(self.pid)
        sampler.start()
        t0 = time.monotonic()
        self.run("install")
        self.run("enable")
        ok = self.status_is("success")
        wall = time.monotonic() - t0
        sampler.stop()
        st = emu.stats(log=False)
        pid = self.pid()
        user, system = cpu_split(pid)
        return {"ok": ok, "wall_s": wall, "cpu_s": user + system, "user_s": user, "sys_s": system,
                "peak_rss_kib": sampler.peak_rss,
                "peak_anon_kib": sampler.peak_anon, "peak_pss_anon_kib": sampler.peak_pss_anon,
                "requests": st["by_target"].get("kv", 0),
                "token_requests": st["by_target"].get("imds", 0),
                "tls_handshakes": st["tls_handshakes"], "peak_in_flight": st["peak_in_flight"],
                "phases": self.pass_phases(1)}

    def pass_phases(self, n, timeout=5.0):
        """The worker's per-phase totals of pass n (KVVM_PHASES_FILE): it appends them just
        after its answer, so they may land a moment after the status says success."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with open(self.phases) as f:
                    lines = f.read().splitlines()
                if len(lines) >= n:
                    return json.loads(lines[n - 1])
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        return None

    def files(self):
        out = {}
        for name in os.listdir(self.store):
            s = os.lstat(os.path.join(self.store, name))
            out[name] = (s.st_ino, s.st_mtime_ns)
        return out

    def steady_pass(self, emu):
        """One pass over unchanged certificates, asked for with `kvvm sync-now`."""
        before, pid = self.files(), self.pid()
        emu.reset_stats()
        cpu0, m0 = cpu_s(pid), os.stat(self.status).st_mtime_ns
        t0 = time.monotonic()
        self.run("kvvm", "sync-now")
        ok = self.status_is("success", since_mtime=m0)
        wall = time.monotonic() - t0
        cpu = cpu_s(pid) - cpu0
        after = self.files()
        st = emu.stats(log=False)
        rewritten = sum(1 for k, v in after.items() if before.get(k) != v)
        return {"ok": ok, "wall_s": wall, "cpu_s": cpu, "files_rewritten": rewritten,
                "files": len(after), "requests": st["by_target"].get("kv", 0),
                "list_requests": st["by_path"].get("kv /secrets", 0)}

    def idle(self, seconds):
        """kvvmd between passes: RSS, anonymous RSS, and how often it woke up."""
        pid = self.pid()
        s0 = proc_status(pid)
        cpu0 = cpu_s(pid)
        time.sleep(seconds)
        s1 = proc_status(pid)
        switches = sum(kib(s1, k) - kib(s0, k) for k in ("voluntary_ctxt_switches",
                                                          "nonvoluntary_ctxt_switches"))
        return {"seconds": seconds, "rss_kib": kib(s1, "VmRSS"), "anon_kib": kib(s1, "RssAnon"),
                "processes": len(tree(pid)),
                "wakeups": switches, "wakeups_per_min": switches * 60.0 / seconds,
                "cpu_s": cpu_s(pid) - cpu0}

    def close(self):
        for cmd in ("disable", "uninstall"):
            try:
                self.run(cmd)
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
