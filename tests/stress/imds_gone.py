#!/usr/bin/python3
"""The identity endpoint answering 410 ("IMDS is upgrading": the host agent updates itself, 2-3
min at p90) for 90 s from the moment kvvmd starts its first sync, then recovering.

kvvmd runs under the agent's layout (kvvm_client.Kvvm) with requireInitialSync, against the
emulator, with nobody touching it after `enable`. Checked:

  - every certificate ends up installed and the status says success, within the outage
    plus a bound (kvvm's own retries: the identity endpoint's backoff, capped at 16 s, and
    the pass retry after a failed pass);
  - meanwhile the status is truthful: never success, never error (the outage is transient),
    transitioning, and once a pass has given up it names the cause (the 410);
  - the identity endpoint is asked on a backoff (a bounded number of requests, not a loop),
    and the vault is not asked at all before a token comes;
  - the log warns about the identity endpoint at most once per failed pass.

    imds_gone.py --build BUILD [--gone 90] [--certs 20] [--json FILE]

Prints "imds_gone: N passed, N failed" and, with --json, the figures make stress puts in
docs/reliability.md. Takes the outage and about half a minute more.
"""
import argparse
import base64
import calendar
import glob
import json
import os
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests", "emulator"))
sys.path.insert(0, os.path.join(TOP, "tests", "bench"))
import corpus  # noqa: E402
import emu  # noqa: E402
import kvvm_client  # noqa: E402

VAULT = "gonevault.vault.azure.net"
# After the outage: the identity backoff's cap (16 s, identity.c), the retry of a failed pass
# (at most 5 s the first time, sched.h) and the pass itself.
SLACK_S = 30
# A pass keeps asking through 410s for this long before it gives up (identity.c).
GONE_MIN_S = 70
# Token requests in all: the backoff doubles from 1 s to 16 s, so about 10 per 90 s.
MAX_TOKEN_REQUESTS = 30


def read_status(path):
    try:
        with open(path) as f:
            st = json.load(f)[0]["status"]
        return st["status"], st["formattedMessage"]["message"]
    except (OSError, ValueError, KeyError, IndexError):
        return None, None   # absent, or caught mid-rename


def log_s(line, wall0):
    """Seconds from wall0 to a log line's stamp (2026-11-24T21:42:05.123Z ...)."""
    stamp = line.split(" ", 1)[0]
    secs = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return round(secs + float(stamp[19:-1] or 0) - wall0, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--gone", type=int, default=90)
    ap.add_argument("--certs", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    files = corpus.make(os.path.join(a.build, "bench", "corpus"), a.certs)
    pfx = [base64.b64encode(open(f, "rb").read()).decode() for f in files]
    res = {"gone_s": a.gone, "certs": a.certs, "failures": []}
    passed = 0

    def check(what, ok, detail=""):
        nonlocal passed
        if ok:
            passed += 1
            print("ok:", what)
        else:
            res["failures"].append(what + (": " + detail if detail else ""))
            print("FAIL:", what, detail)

    with emu.Emulator(latency_ms=2, lifetime=a.gone + 300) as e:
        names = ["c%03d" % i for i in range(a.certs)]
        for n, v in zip(names, pfx):
            e.add_secret(VAULT, n, v)
        k = kvvm_client.Kvvm(os.path.join(a.build, "pkg"), e, VAULT, names,
                             trust=corpus.trust(os.path.dirname(files[0])))
        try:
            k.run("install")
            e.reset_stats()
            e.fault("imds", "410", duration=a.gone)
            t0, wall0 = time.monotonic(), time.time()
            k.run("enable")
            seen, reasons, success_at = set(), [], None
            deadline = t0 + a.gone + SLACK_S + 60
            while time.monotonic() < deadline:
                state, msg = read_status(k.status)
                t = time.monotonic() - t0
                if state:
                    seen.add(state)
                    if not reasons or reasons[-1][2] != msg:
                        reasons.append((t, state, msg))
                if state == "success":
                    success_at = t
                    break
                time.sleep(0.2)
            st = e.stats()
            log = st["log"]
            imds = [x for x in log if x["target"] == "imds"]
            first_kv = min((x["t"] for x in log if x["target"] == "kv"), default=None)
            first_token = min((x["t"] for x in imds if x["status"] == 200), default=None)
            warns = [ln for f in glob.glob(os.path.join(k.root, "log", "*.log"))
                     for ln in open(f) if " warn: " in ln and "test overrides" not in ln]
            passes = [ln for f in glob.glob(os.path.join(k.root, "log", "*.log"))
                      for ln in open(f) if "pass done" in ln]
            res.update(success_s=round(success_at, 1) if success_at else None,
                       token_requests=len(imds),
                       refused_410=sum(1 for x in imds if x["status"] == 410),
                       passes=len(passes), pass_ends_s=[log_s(p, wall0) for p in passes],
                       warnings=len(warns),
                       statuses=[(round(r[0], 1), r[1], (r[2] or "")[:200]) for r in reasons])
            before = [r for r in reasons if r[1] != "success"]
            check("every certificate installed without operator action, within the outage "
                  "and %d s" % SLACK_S,
                  success_at is not None and a.gone <= success_at <= a.gone + SLACK_S,
                  "success after %s s" % res["success_s"])
            _, msg = read_status(k.status)
            check("the status then says every certificate is installed",
                  bool(msg) and ("%d of %d certificate(s) installed" % (a.certs, a.certs)) in msg,
                  msg or "")
            check("every stable name is in place",
                  all(os.path.exists(os.path.join(k.store, "gonevault." + n)) for n in names))
            check("meanwhile the status was transitioning, never error",
                  "error" not in seen and all(r[1] == "transitioning" for r in before),
                  json.dumps(before)[:500])
            if a.gone >= GONE_MIN_S:   # else the first pass outlasts the outage
                check("once a pass gave up, the status named the cause (410 from the identity "
                      "endpoint)",
                      any("initial sync: waiting for" in (r[2] or "") and "410" in (r[2] or "")
                          for r in before), json.dumps(before)[:500])
            check("the identity endpoint was asked on a backoff (at most %d requests)"
                  % MAX_TOKEN_REQUESTS, 2 <= len(imds) <= MAX_TOKEN_REQUESTS,
                  "%d requests" % len(imds))
            check("the vault was not asked before a token came",
                  first_kv is not None and first_token is not None and first_kv >= first_token)
            check("at most one warning per failed pass", len(warns) <= max(1, len(passes)),
                  "%d warnings, %d passes: %s" % (len(warns), len(passes), warns[:3]))
        finally:
            k.close()
    print("imds_gone: 410 for %d s; success after %s s; %d token requests (%d answered 410); "
          "%d passes (ending at %s s); %d warnings" % (
              a.gone, res["success_s"], res["token_requests"], res["refused_410"],
              res["passes"], res["pass_ends_s"], res["warnings"]))
    for r in res["statuses"]:
        print("  %6.1f s  %-13s %s" % r)
    print("imds_gone: %d passed, %d failed" % (passed, len(res["failures"])))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    sys.exit(1 if res["failures"] else 0)


if __name__ == "__main__":
    main()
