#!/usr/bin/python3
"""The compressed 24-hour run (issue 6, Proof): drives tests/soak/soak.c against the emulator.

usage: /usr/bin/python3 tests/soak/soak.py BUILD/soak/soak [HOURS [SEED]]     (or: make soak)
       with SEED, faults are drawn at random every hour, several at once (mixed_schedule)

soak.c runs the real engine (sync passes, store, hooks, report, status file) on kvvmd's
schedule with a fake clock; at each simulated hour it stops and this driver changes the vault:
new versions (16 in a day) and an hour of faults at a time
(403, 503, an IMDS outage, throttling with Retry-After, connection resets, 404, a version whose
content cannot be installed, truncated bodies) and the wall clock stepped a day forward or
back, the same kinds in each quarter of the day. At the end every certificate must be installed
at the vault's latest version (the file and the stable link too), the faults must have been
seen (certificates pending, retry passes), and neither memory (VmRSS) nor open descriptors may
grow between the first and the last quarter of the run. Nothing leaves the machine: the
identity endpoint is the emulator's IMDS on loopback and the vault host is pinned to it.
"""

import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "emulator"))
import emu  # noqa: E402

VAULT = "kvvmsoak"
HOST = VAULT + ".vault.azure.net"
CERTS = ["web", "api", "mail", "pem"]  # the last one is served as PEM, the others as PFX
POLL_S = 60
# RSS may wobble by allocator noise; a leak of 1 KiB per pass would add ~350 KiB per quarter.
RSS_SLACK_KB = 192


def make_cert(cn, d):
    key, crt, pfx = (os.path.join(d, n) for n in ("k.pem", "c.pem", "c.pfx"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "90",
                    "-subj", "/CN=" + cn, "-keyout", key, "-out", crt],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "pkcs12", "-export", "-inkey", key, "-in", crt, "-passout", "pass:",
                    "-out", pfx], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(pfx, "rb") as f:
        pfx_b64 = base64.b64encode(f.read()).decode()
    with open(crt) as f, open(key) as g:
        pem = f.read() + g.read()
    return pfx_b64, pem


class Vault(object):
    def __init__(self, e, tmp):
        self.e, self.tmp, self.n = e, tmp, 0
        self.latest = {}

    def rotate(self, name):
        self.n += 1
        pfx, pem = make_cert("{0}-{1}.example.com".format(name, self.n), self.tmp)
        if name == "pem":
            v = self.e.add_secret(HOST, name, pem, content_type="application/x-pem-file")
        else:
            v = self.e.add_secret(HOST, name, pfx)
        self.latest[name] = v
        return v


# hour -> list of (action, args); a fault stays until the "clear" of the next hour. Every
# quarter of the day (6 h) sees the same kinds of events, so the first quarter already took
# every path once and the last quarter is comparable with it.
def schedule():
    s = {}
    for q in range(4):
        b = 6 * q
        s[b + 0] = [("rotate", CERTS[q % 4]),
                    ("fault", dict(target="kv", mode="403", secret="api")),
                    ("fault", dict(target="kv", mode="404", secret="pem"))]
        s[b + 1] = [("clear", None),
                    ("fault", dict(target="kv", mode="reset", secret="web")),
                    ("fault", dict(target="kv", mode="429", secret="mail", retryAfter=30))]
        s[b + 2] = [("clear", None),
                    ("fault", dict(target="kv", mode="503")),      # the whole vault, an hour
                    ("rotate", CERTS[(q + 1) % 4])]                 # a rotation during it
        s[b + 3] = [("clear", None),
                    ("fault", dict(target="imds", mode="500")),    # tokens expire within the hour
                    ("garbage", "mail")]                           # content that cannot install
        s[b + 4] = [("clear", None),
                    ("fault", dict(target="kv", mode="truncate", secret="api")),
                    ("rotate", "mail")]                            # a good version after it
        s[b + 5] = [("clear", None),
                    ("rotate", CERTS[(q + 2) % 4]),                # the last one at hour 23
                    ("jump", 86400 if q % 2 == 0 else -86400)]     # the wall clock steps a day
    return s


# Faults the mixed mode draws from: (target, mode, extra) with the secret chosen at random
# (None: the whole vault or identity endpoint).
MIXED = [("kv", "403", {}), ("kv", "404", {}), ("kv", "reset", {}), ("kv", "truncate", {}),
         ("kv", "429", {"retryAfter": 20}), ("kv", "503", {}), ("kv", "500", {}),
         ("imds", "500", {}), ("imds", "410", {}), ("imds", "429", {})]


def mixed_schedule(seed, hours):
    """Random faults, several at once, drawn again every hour (seeded): the soak's kinds and
    more, mixed, with rotations and uninstallable versions among them. The last two hours
    are clean and end with a good version of anything whose latest was garbage, so the run
    must converge."""
    rng = random.Random(seed)
    s, garbage = {}, set()
    for h in range(hours):
        acts = [("clear", None)]
        if h < hours - 2:
            for _ in range(rng.randint(0, 3)):
                target, mode, extra = rng.choice(MIXED)
                spec = dict(target=target, mode=mode, **extra)
                if target == "kv" and rng.random() < 0.7:
                    spec["secret"] = rng.choice(CERTS)
                acts.append(("fault", spec))
            for name in CERTS:
                if rng.random() < 0.25:
                    acts.append(("rotate", name))
                    garbage.discard(name)
            if rng.random() < 0.05:
                acts.append(("jump", rng.choice([-1, 1]) * rng.randint(3600, 2 * 86400)))
            if rng.random() < 0.15:
                name = rng.choice(CERTS)
                acts.append(("garbage", name))
                garbage.add(name)
        elif h == hours - 2:
            acts += [("rotate", name) for name in sorted(garbage)]
        s[h] = acts
    return s


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    hours = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    # A third argument: a seed for mixed random faults (mixed_schedule) instead of the day's plan.
    mixed = int(sys.argv[3]) if len(sys.argv) > 3 else None
    work = tempfile.mkdtemp(prefix="kvvm-soak-")
    started = time.time()
    ok = True
    e = emu.Emulator(lifetime=900).start()
    try:
        vault = Vault(e, work)
        for name in CERTS:
            vault.rotate(name)
        settings = {"runtimeSettings": [{"handlerSettings": {"publicSettings": {
            "secretsManagementSettings": {
                "pollingIntervalInS": str(POLL_S), "requireInitialSync": True,
                "observedCertificates": ["https://{0}/secrets/{1}".format(HOST, n) for n in CERTS]},
            "authenticationSettings": {"msiEndpoint": e.imds_endpoint}}}}]}
        settings_path = os.path.join(work, "1.settings")
        with open(settings_path, "w") as f:
            json.dump(settings, f)
        env = e.client_env([HOST])
        for k in ("KVVM_STATE_DIR", "KVVM_STORE_ROOT", "KVVM_HOOKS_DIR"):
            env.pop(k, None)
        env["KVVM_HOOKS_DIR"] = os.path.join(work, "hooks")
        os.makedirs(env["KVVM_HOOKS_DIR"], mode=0o700)
        sched = schedule() if mixed is None else mixed_schedule(mixed, hours)
        err_path = os.path.join(work, "soak.stderr")
        # KVVM_SOAK_VALGRIND=1: the same run under valgrind (leaks, invalid accesses); memory
        # figures are valgrind's then, so the growth checks give way to its verdict.
        vg_log = os.path.join(work, "valgrind.log")
        wrap = ["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                "--log-file=" + vg_log] if os.environ.get("KVVM_SOAK_VALGRIND") else []
        with open(err_path, "w") as err:
            p = subprocess.Popen(wrap + [binary, settings_path, work, str(hours)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=err, env=env, universal_newlines=True,
                                 bufsize=1)
        result = None
        actions = 0
        for line in p.stdout:
            if line.startswith("H "):
                h = int(line.split()[1])
                jump = 0
                for what, arg in sched.get(h % 24 if mixed is None else h, []):
                    actions += 1
                    if what == "rotate":
                        vault.rotate(arg)
                    elif what == "fault":
                        e.fault(**arg)
                    elif what == "clear":
                        e.clear_faults()
                    elif what == "garbage":
                        e.add_secret(HOST, arg, emu.fake_pfx_b64())
                    elif what == "jump":
                        jump += arg
                p.stdin.write("jump %d\n" % jump if jump else "ok\n")
                p.stdin.flush()
            elif line.startswith("R "):
                result = json.loads(line[2:])
        rc = p.wait()
        if rc != 0 or result is None:
            with open(err_path) as f:
                sys.stderr.write(f.read()[-4000:])
            print("soak: FAIL: the soak program exited {0} without a result".format(rc))
            return 1

        samples = result["samples"]
        q = hours / 4.0
        # The planned day takes every path in its first quarter, so that quarter is the
        # baseline. Random faults may reach a path first later on: there the second quarter is
        # (the first is warm-up), which leaves growth between the middle and the end to show.
        first = [s for s in samples if (s[0] < q if mixed is None else q <= s[0] < 2 * q)]
        last = [s for s in samples if s[0] >= 3 * q]
        rss_first, rss_last = [s[1] for s in first], [s[1] for s in last]
        fd_first, fd_last = [s[2] for s in first], [s[2] for s in last]
        stats = e.stats(log=False)
        print("soak: {0} simulated hours in {1:.1f} s real: {2} passes ({3} of them retries only), "
              "{4} installs, {5:.0f} s of backoff skipped inside passes, {6} vault actions, "
              "{7} requests to the emulator".format(
                  round(result["sim_hours"], 2), result["real_s"], result["passes"], result["retry_passes"],
                  result["changed"], result["slept_in_passes_s"], actions, stats["requests"]))
        base = "first quarter" if mixed is None else "second quarter (baseline)"
        print("soak: VmRSS kB  " + base + ": start {0}, median {1:.0f}, max {2}; last quarter: median "
              "{3:.0f}, max {4}, end {5}".format(rss_first[0], statistics.median(rss_first), max(rss_first),
                                                  statistics.median(rss_last), max(rss_last), rss_last[-1]))
        print("soak: open fds  " + base + ": start {0}, max {1}; last quarter: max {2}, end {3}".format(
            fd_first[0], max(fd_first), max(fd_last), fd_last[-1]))
        print("soak: emulator by status: {0}".format(stats.get("by_status")))
        # The steady pass lists the vault (README, "Each pass: list, then fetch what changed").
        print("soak: list requests: {0}, secret GETs: {1}".format(
            stats["by_path"].get("kv /secrets", 0),
            sum(v for k, v in stats["by_path"].items() if k.startswith("kv /secrets/"))))
        hourly = {}
        for s in samples:
            hourly.setdefault(int(s[0]), []).append(s)
        print("soak: per hour (max VmRSS kB / max fds / passes with a certificate pending): " + ", ".join(
            "{0}: {1}/{2}/{3}".format(h, max(x[1] for x in v), max(x[2] for x in v), sum(1 for x in v if x[3]))
            for h, v in sorted(hourly.items())))

        def check(cond, what):
            nonlocal ok
            print("soak: {0}: {1}".format("ok" if cond else "FAIL", what))
            ok = ok and cond

        check(result["passes"] >= hours * 3600 / (POLL_S * 1.1) - 1, "a pass every poll interval")
        check(result["retry_passes"] > 0 and any(s[3] for s in samples),
              "the faults were seen (pending certificates, retry passes)")
        if wrap:
            with open(vg_log) as f:
                vg = f.read()
            print("soak: valgrind: " + (vg.strip().replace("\n", " | ")[-600:] or "nothing reported"))
            check(vg.strip() == "", "valgrind: no leak, no invalid access, no uninitialised use")
        else:
            check(max(rss_last) <= max(rss_first) + RSS_SLACK_KB,
                  "no memory growth: last-quarter max {0} kB <= first-quarter max {1} kB + {2}".format(
                      max(rss_last), max(rss_first), RSS_SLACK_KB))
            check(statistics.median(rss_last) <= statistics.median(rss_first) + RSS_SLACK_KB,
                  "no memory growth (medians {0:.0f} -> {1:.0f} kB)".format(
                      statistics.median(rss_first), statistics.median(rss_last)))
        check(max(fd_last) <= max(fd_first), "no descriptor growth ({0} -> {1})".format(
            max(fd_first), max(fd_last)))
        with open(os.path.join(work, "status", "1.status")) as f:
            top = json.load(f)[0]["status"]
        check(top["status"] == "success", "the last status file says success: {0}".format(
            top.get("formattedMessage", {}).get("message")))
        store = os.path.join(work, "store")
        for c in result["certs"]:
            name = c["url"].rsplit("/", 1)[1]
            want = vault.latest[name]
            link = os.path.join(store, "{0}.{1}".format(VAULT, name))
            target = os.readlink(link) if os.path.islink(link) else None
            print("soak: {0}: {1} {2} version {3} thumbprint {4}{5}".format(
                name, c["state"], c["err"], c["version"], c["thumbprint"],
                " ({0})".format(c["why"]) if c["why"] else ""))
            check(c["state"] == "installed" and c["err"] in ("ok", "OK", "success") or
                  (c["state"] == "installed" and not c["why"]),
                  "{0} installed without error".format(name))
            check(c["version"] == want, "{0} at the vault's latest version {1}".format(name, want))
            check(target == "{0}.{1}.{2}".format(VAULT, name, want) and os.path.isfile(link),
                  "{0}'s stable link points at the latest version ({1})".format(name, target))
        print("soak: {0} in {1:.0f} s".format("PASS" if ok else "FAIL", time.time() - started))
        return 0 if ok else 1
    finally:
        e.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("soak: kept " + work)


if __name__ == "__main__":
    sys.exit(main())
