#!/usr/bin/python3
"""SIGKILL at random moments: kvvmd in the middle of passes that install and rotate
certificates, and each handler command in the middle of its work. After every kill:

  - every stable name that exists resolves to a whole PEM bundle (certificate and key, both
    complete): no torn file is ever reachable under the name a service reads;
  - the status file never says success for a certificate whose file is not in place;
  - the next start is not stopped by a stale lock or pid file (kvvmd runs again within 3 s).

When the kills stop, one more pass must install the latest version of every certificate.

    kill.py --build BUILD [--kills 300] [--certs 40] [--commands 30] [--seed S] [--json FILE]

Prints "kill: N passed, N failed" (each kill is one check) and, with --json, the figures
make stress puts in docs/reliability.md.
"""
import argparse
import base64
import json
import os
import random
import signal
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests", "emulator"))
sys.path.insert(0, os.path.join(TOP, "tests", "bench"))
import corpus  # noqa: E402
import emu  # noqa: E402
import kvvm_client  # noqa: E402

VAULT = "stressvault.vault.azure.net"


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"   # PID 1 here may not reap
    except OSError:
        return False


def whole_pem(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return False
    return (text.count("-----BEGIN CERTIFICATE-----") >= 1 and
            text.count("-----BEGIN CERTIFICATE-----") == text.count("-----END CERTIFICATE-----")
            and "-----BEGIN PRIVATE KEY-----" in text and text.rstrip().endswith("-----END PRIVATE KEY-----"))


def problems(k, names):
    """What is wrong with the store and status right now (empty: nothing)."""
    out = []
    for n in names:
        link = os.path.join(k.store, "stressvault." + n)
        if os.path.lexists(link) and not whole_pem(link):
            out.append("%s: stable name does not resolve to a whole PEM" % n)
    try:
        with open(k.status) as f:
            st = json.load(f)[0]["status"]
    except (OSError, ValueError, KeyError, IndexError):
        return out   # absent, or caught mid-rename: the agent would read the previous one
    for sub in st.get("substatus", []):   # each names its certificate's URL
        n = sub.get("name", "").rsplit("/", 1)[-1]
        if sub.get("status") == "success" and n in names and not os.path.exists(
                os.path.join(k.store, "stressvault." + n)):
            out.append("%s: status says success, no file" % n)
    return out


def kvvmd_kills(k, e, names, pfx_b64, kills, rng, res):
    versions = {}
    for i in range(kills):
        for n in rng.sample(names, max(1, len(names) // 8)):   # rotations while it works
            versions[n] = e.add_secret(VAULT, n, rng.choice(pfx_b64))
        t0 = time.monotonic()
        if not k.pid() or not alive(k.pid()):
            k.run("enable")
        else:
            k.run("kvvm", "sync-now")
        time.sleep(rng.uniform(0, 0.4))
        pid = k.pid()
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
            while alive(pid) and time.monotonic() - t0 < 5:
                time.sleep(0.005)
        bad = problems(k, names)
        k.run("enable")             # as the agent's next enable would: kvvmd must start
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not (k.pid() and alive(k.pid()) and k.pid() != pid):
            time.sleep(0.01)
        if not (k.pid() and alive(k.pid()) and k.pid() != pid):
            bad.append("kvvmd did not start again after the kill")
        res["kvvmd_kills"] += 1
        if bad:
            res["failures"].append({"kill": i, "problems": bad})
    return versions


def command_kills(k, kills, rng, res):
    """enable, disable, install, uninstall killed part-way; the next run of each must work."""
    for i in range(kills):
        cmd = rng.choice(["enable", "disable", "install", "uninstall"])
        p = subprocess.Popen([os.path.join(k.pkg, "bin", cmd)], env=k.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 0.03))
        p.send_signal(signal.SIGKILL)
        p.wait()
        for again in ("install", "enable"):
            r = subprocess.run([os.path.join(k.pkg, "bin", again)], env=k.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                res["failures"].append({"command_kill": i, "killed": cmd,
                                        "problems": ["%s after the kill exited %d: %s" % (
                                            again, r.returncode, r.stderr[-300:])]})
        res["command_kills"] += 1


def converge(k, e, names, versions):
    m0 = os.stat(k.status).st_mtime_ns if os.path.exists(k.status) else 0
    k.run("kvvm", "sync-now")
    ok = k.status_is("success", since_mtime=m0, timeout=60)
    wrong = [n for n, v in versions.items()
             if os.readlink(os.path.join(k.store, "stressvault." + n)) != "stressvault.%s.%s" % (n, v)]
    return ok and not wrong, wrong


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--kills", type=int, default=300)
    ap.add_argument("--certs", type=int, default=40)
    ap.add_argument("--commands", type=int, default=30)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--json")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    files = corpus.make(os.path.join(a.build, "bench", "corpus"), 16)
    pfx_b64 = [base64.b64encode(open(f, "rb").read()).decode() for f in files]
    res = {"seed": a.seed, "certs": a.certs, "kvvmd_kills": 0, "command_kills": 0,
           "failures": []}
    t0 = time.monotonic()
    with emu.Emulator(latency_ms=2, lifetime=3600) as e:
        names = ["c%03d" % i for i in range(a.certs)]
        versions = {n: e.add_secret(VAULT, n, rng.choice(pfx_b64)) for n in names}
        k = kvvm_client.Kvvm(os.path.join(a.build, "pkg"), e, VAULT, names,
                             trust=corpus.trust(os.path.dirname(files[0])))
        try:
            k.run("install")
            versions.update(kvvmd_kills(k, e, names, pfx_b64, a.kills, rng, res))
            command_kills(k, a.commands, rng, res)
            ok, wrong = converge(k, e, names, versions)
            res["converged"] = ok
            if not ok:
                res["failures"].append({"converge": wrong or "status never said success"})
        finally:
            k.close()
    res["seconds"] = round(time.monotonic() - t0, 1)
    for f in res["failures"][:10]:
        print("FAIL:", json.dumps(f))
    checks = res["kvvmd_kills"] + res["command_kills"] + 1
    print("kill: seed %d, %d kvvmd kills, %d command kills, %d certificates, %.0f s" % (
        a.seed, res["kvvmd_kills"], res["command_kills"], a.certs, res["seconds"]))
    print("kill: %d passed, %d failed" % (checks - len(res["failures"]), len(res["failures"])))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    sys.exit(1 if res["failures"] else 0)


if __name__ == "__main__":
    main()
