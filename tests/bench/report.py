"""docs/benchmarks.md from the JSON tests/bench/bench.py writes (also: report.py FILE.json)."""
import json
import statistics
import sys

B = 16
TARGETS = {"wall_s": 1.88, "wall_l0_s": 1.2, "cpu_s": 1.0, "peak_anon_mib": 8.0, "idle_anon_mib": 2.0,
           "in_flight": 16, "handshakes": 20, "steady_ms_per_cert": 0.1}


def stat(rows, key):
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def fmt(s, unit="s", nd=2):
    if s is None:
        return "-"
    m, lo, hi = s
    if lo == hi:
        return "%.*f %s" % (nd, m, unit)
    return "%.*f %s (%.*f-%.*f)" % (nd, m, unit, nd, lo, nd, hi)


def mib(s):
    return None if s is None else tuple(v / 1024.0 for v in s)


def peer_wall(rows):
    """Peers' wall as the user waits for it: the whole process, start-up included."""
    return stat(rows, "process_wall_s")


def sync_table(doc):
    lines = ["| L | N | client | wall | CPU | peak RSS | requests | TLS handshakes | in flight | wall / (N·L/B) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in doc["sync"]:
        lat, n = e["latency_ms"], e["n"]
        bound = n * lat / 1000.0 / B
        rows = [("kvvm", e["kvvm"], stat(e["kvvm"], "wall_s"), "peak_rss_kib")]
        for client, prow in e["peers"].items():
            rows.append((client, prow, peer_wall(prow), "peak_rss_kib"))
        for client, r, wall, rss in rows:
            ratio = "%.2f" % (wall[0] / bound) if bound and wall else "-"
            anon = ""
            if client == "kvvm":
                anon = " (anon %s)" % fmt(mib(stat(r, "peak_anon_kib")), "MiB", 1)
            lines.append("| %g ms | %d | %s | %s | %s | %s%s | %s | %s | %s | %s |" % (
                lat, n, client, fmt(wall), fmt(stat(r, "cpu_s")), fmt(mib(stat(r, rss)), "MiB", 1),
                anon, fmt(stat(r, "requests"), "", 0), fmt(stat(r, "tls_handshakes"), "", 0),
                fmt(stat(r, "peak_in_flight"), "", 0), ratio))
    return "\n".join(lines)


def largest(doc, lat):
    es = [e for e in doc["sync"] if e["latency_ms"] == lat]
    return max(es, key=lambda e: e["n"]) if es else None


def targets(doc):
    e = largest(doc, 20.0)
    if not e:
        return "(no 20 ms run)"
    k = e["kvvm"]
    wall, cpu = stat(k, "wall_s"), stat(k, "cpu_s")
    anon = mib(stat(k, "peak_anon_kib"))
    steady = e.get("steady", [])
    spread = e.get("steady_spread", [])
    alone = stat(e.get("requests_alone", []), "cpu_s")
    per_cert = stat([{"v": s["cpu_s"] * 1000.0 / e["n"]} for s in steady], "v")
    beyond = None
    if per_cert and alone:
        beyond = tuple(max(0.0, v - alone[0] * 1000.0 / e["n"]) for v in per_cert)
    rewritten = stat(steady, "files_rewritten")
    idle = e.get("idle", {})
    e0 = largest(doc, 0.0)
    wall0 = stat(e0["kvvm"], "wall_s") if e0 and e0["n"] == e["n"] else None
    rows = [
        ("first sync wall, N=%d, L=20 ms" % e["n"], "<= 1.88 s (1.5 x the bound)", fmt(wall),
         wall and wall[0] <= TARGETS["wall_s"]),
        ("first sync wall, N=%d, L=0" % e["n"], "<= 1.2 s", fmt(wall0),
         wall0 and wall0[0] <= TARGETS["wall_l0_s"]),
        ("first sync CPU, kvvmd and its worker", "<= 1.0 s", fmt(cpu),
         cpu and cpu[0] <= TARGETS["cpu_s"]),
        ("peak anonymous memory", "<= 8 MiB",
         "%s summed over kvvmd and its pass worker (the pages they share after the fork counted "
         "twice; proportional share, Pss_Anon: %s)" % (
             fmt(anon, "MiB", 1), fmt(mib(stat(k, "peak_pss_anon_kib")), "MiB", 1)),
         anon and anon[0] <= 8),
        ("idle anonymous memory", "<= 2 MiB", "%.1f MiB" % (idle.get("anon_kib", 0) / 1024.0),
         idle and idle["anon_kib"] / 1024.0 <= 2),
        ("requests in flight", "<= 16", fmt(stat(k, "peak_in_flight"), "", 0),
         max(r["peak_in_flight"] for r in k) <= 16),
        ("TLS handshakes", "<= 20", fmt(stat(k, "tls_handshakes"), "", 0),
         max(r["tls_handshakes"] for r in k) <= 20),
        ("steady pass: files rewritten", "0", fmt(rewritten, "", 0),
         rewritten is not None and rewritten[2] == 0),
        ("steady pass: CPU per certificate beyond the request", "< 0.1 ms",
         "%s: the pass costs %s per certificate in all, the same requests alone (from cold, as "
         "after an idle sleep; bench_fetch) %s; kvvmd's CPU is read in 10 ms ticks" % (
             "within the noise" if beyond is not None and beyond[0] < 0.005 else
             fmt(beyond, "ms", 3), fmt(per_cert, "ms", 3),
             fmt(None if not alone else tuple(v * 1000.0 / e["n"] for v in alone), "ms", 3)),
         beyond is not None and beyond[0] < 0.1),
        ("steady pass, N=%d unchanged in one vault: requests" % e["n"], "<= 45",
         "%s (%s of them list pages)" % (fmt(stat(steady, "requests"), "", 0),
                                         fmt(stat(steady, "list_requests"), "", 0)),
         steady and max(s["requests"] for s in steady) <= 45),
        ("steady pass, one vault: wall", "<= 1.0 s", fmt(stat(steady, "wall_s")),
         steady and stat(steady, "wall_s")[0] <= 1.0),
        ("steady pass, N=%d in %d vaults: requests" % (e["n"], e["n"]), "<= %d" % e["n"],
         fmt(stat(spread, "requests"), "", 0),
         spread and max(s["requests"] for s in spread) <= e["n"]),
        ("idle wake-ups beyond the schedule", "0 per minute",
         "%.1f per minute over %g s" % (idle.get("wakeups_per_min", -1), idle.get("seconds", 0)),
         idle and idle["wakeups"] == 0),
    ]
    lines = ["| target | wanted | measured | met |", "|---|---|---|---|"]
    for name, want, got, ok in rows:
        lines.append("| %s | %s | %s | %s |" % (name, want, got, "yes" if ok else "**no**"))
    why = ["- **%s**: %s" % (name, MISSED[name]) for name, _, _, ok in rows
           if not ok and name in MISSED]
    if why:
        lines += ["", "Targets missed, why, and what would close them:", ""] + why
    return "\n".join(lines)


# What a missed target costs and what would close it, from profiling the pass (valgrind
# massif on `kvvm run --once` over the same 1,000 certificates); shown only when missed.
MISSED = {
    "steady pass, one vault: wall":
        "the listing's 40 pages are read one after another (each nextLink comes with the page "
        "before it), so at L = 20 ms they alone take 40 x (20 ms + the emulator's and kvvm's "
        "~2 ms per page), about 0.88 s; the rest is the pass around them (worker start, token, "
        "checking the 1,000 installed files, the status). Checking the files while the pages "
        "arrive would take most of that rest off the wall time.",
    "peak anonymous memory":
        "at the peak the pass worker's heap (4.4 MB at 1,000 certificates under valgrind "
        "massif) is mostly libcurl and OpenSSL for the 16 connections (about 1.6 MB), the "
        "installed state parked as text (about 0.7 MB) and the fetch jobs and answers in "
        "flight; the rest of RssAnon is the relocated data of libcurl's ~20 libraries (about "
        "1.8 MiB) and kvvmd's own pages, which the sum counts twice after the fork. Fewer "
        "connections would lower it at the cost of wall time; a one-line parked record (no "
        "key repeated inside it) would take a few hundred KB off.",
}


# The first sync's breakdown: the pass worker's own totals per phase (KVVM_PHASES_FILE, wall
# and thread CPU), the rest from what the bench measures around it. Phases that run inside
# another (parse, record, decode and install run inside fetch; flush and save inside commit)
# are taken out of it, so the rows add up to the whole.
TOP_PHASES = ("setup", "tokens", "fetch", "drain", "commit", "hooks", "answer")
SECOND = ("record", "decode", "install")   # on the second thread when local_wait ran


def threaded(p):
    return p.get("drain", {}).get("count", 0) > 0


PARTS = [
    ("worker start to its pass: request, settings", lambda p: p["setup"]),
    ("identity token", lambda p: p["tokens"]),
    ("waiting on the vault: network, TLS, curl",
     lambda p: sub(p["fetch"], p["parse"], p.get("local_wait", ZERO),
                   *([] if threaded(p) else [p[k] for k in SECOND]))),
    ("the vault's JSON answers parsed", lambda p: p["parse"]),
    ("the fetching thread waiting for room among the installs",
     lambda p: p.get("local_wait", ZERO)),
    ("the last installs, after the last answer", lambda p: p.get("drain", ZERO)),
    ("installed.json records read and parked", lambda p: p["record"]),
    ("PFX decoding: key derivation, MAC, decryption", lambda p: p["decode"]),
    ("store: temp files, links, grants, records", lambda p: p["install"]),
    ("flush: syncfs and folder fsyncs", lambda p: p["flush"]),
    ("commit's renames and removals", lambda p: sub(p["commit"], p["flush"], p["save"])),
    ("installed.json written", lambda p: p["save"]),
    ("renewal hooks", lambda p: p["hooks"]),
    ("answer to kvvmd", lambda p: p["answer"]),
]
ZERO = {"wall_ms": 0.0, "cpu_ms": 0.0, "count": 0}


def sub(a, *bs):
    return {"wall_ms": a["wall_ms"] - sum(b["wall_ms"] for b in bs),
            "cpu_ms": a["cpu_ms"] - sum(b["cpu_ms"] for b in bs), "count": a["count"]}


def breakdown_rows(run):
    """(part, wall ms, CPU ms, count) of one first sync, adding up to its wall and CPU."""
    p = run["phases"]
    rows = []
    for name, f in PARTS:
        ph = f(p)
        second = threaded(p) and any(f(p) is p[k] for k in SECOND)
        rows.append((name + (" (second thread)" if second else ""),
                     None if second else ph["wall_ms"], ph["cpu_ms"], ph["count"]))
    top_wall = sum(p.get(k, ZERO)["wall_ms"] for k in TOP_PHASES)
    top_cpu = sum(p.get(k, ZERO)["cpu_ms"] for k in TOP_PHASES) + (
        sum(p[k]["cpu_ms"] for k in SECOND) if threaded(p) else 0)
    rows.append(("the worker outside its phases: exec, libraries, exit", None,
                 p["process_cpu_ms"] - top_cpu, None))
    rows.append(("kvvmd, install, enable, the worker's start and the status", 
                 run["wall_s"] * 1000.0 - top_wall,
                 run["cpu_s"] * 1000.0 - p["process_cpu_ms"], None))
    return rows


def breakdown(doc):
    lines = ["| L | part | wall | CPU | count |", "|---|---|---|---|---|"]
    for e in doc["sync"]:
        if e["n"] != max(x["n"] for x in doc["sync"]):
            continue
        runs = [r for r in e["kvvm"] if r.get("phases")]
        if not runs:
            continue
        table = [breakdown_rows(r) for r in runs]
        for i, (name, _, _, count) in enumerate(table[0]):
            wall = stat([{"v": t[i][1]} for t in table if t[i][1] is not None], "v")
            cpu = stat([{"v": t[i][2]} for t in table], "v")
            lines.append("| %g ms | %s | %s | %s | %s |" % (
                e["latency_ms"], name, fmt(wall, "ms", 0), fmt(cpu, "ms", 0),
                "-" if count is None else count))
        lines.append("| %g ms | **first sync** | %s | %s | |" % (
            e["latency_ms"], fmt(stat(e["kvvm"], "wall_s")), fmt(stat(e["kvvm"], "cpu_s"))))
    return "\n".join(lines)


def steady_idle(doc):
    lines = []
    for lat in sorted({e["latency_ms"] for e in doc["sync"]}):
        e = largest(doc, lat)
        if not e or "steady" not in e:
            continue
        s, idle = e["steady"], e.get("idle", {})
        lines.append("- L = %g ms, N = %d unchanged: wall %s, CPU %s (%s per certificate), "
                     "requests %s, files rewritten %s of %d." % (
                         lat, e["n"], fmt(stat(s, "wall_s")), fmt(stat(s, "cpu_s")),
                         fmt(stat([{"v": x["cpu_s"] * 1000 / e["n"]} for x in s], "v"), "ms", 3),
                         fmt(stat(s, "requests"), "", 0), fmt(stat(s, "files_rewritten"), "", 0),
                         s[0]["files"]))
        sp = e.get("steady_spread", [])
        if sp:
            lines.append("- L = %g ms, N = %d unchanged in %d vaults of one each (no listing: "
                         "a page costs what the one GET does): wall %s, CPU %s, requests %s." % (
                             lat, e["n"], e["n"], fmt(stat(sp, "wall_s")), fmt(stat(sp, "cpu_s")),
                             fmt(stat(sp, "requests"), "", 0)))
        if idle:
            lines.append("- Idle kvvmd after it (L = %g ms, %d certificates), %g s: RSS %.1f MiB, "
                         "anonymous %.1f MiB, %d wake-ups, %.2f s CPU." % (
                             lat, e["n"], idle["seconds"], idle["rss_kib"] / 1024.0,
                             idle["anon_kib"] / 1024.0, idle["wakeups"], idle["cpu_s"]))
    return "\n".join(lines)


def markdown(doc):
    m = doc["machine"]
    dec, ceil = doc.get("decode", {}), doc.get("ceiling", {})
    parts = [
        "# Benchmarks (generated by `make bench`; do not edit)",
        "",
        "Machine: %s, %d cores (SHA extensions: %s), Linux %s, Debian %s, libcurl %s, %s, "
        "node %s. Store and outputs on: %s. Medians of %d kvvm runs and %d runs of each peer; "
        "the range in parentheses." % (m["cpu"], m["cores"], "yes" if m["sha_extensions"] else "no",
                                       m["kernel"], m["debian"], m["libcurl"], m["openssl"],
                                       m["node"], doc.get("store_fs", "?"), doc["runs"],
                                       doc["peer_runs"]),
        "",
        "## Targets (N = 1000, L = 20 ms, B = 16)",
        "",
        targets(doc),
        "",
        "## First sync: N Key Vault-style PFX (RSA-2048, chain of 3, OpenSSL 3 defaults)",
        "",
        "kvvm: enable until the status file says success (CPU and memory of kvvmd and its "
        "pass worker together; anon = RssAnon, summed). Peers: the whole process tree from "
        "start to exit (CPU of the tree, peak summed RSS). Requests and handshakes as the emulator counted them. The last column "
        "is the wall time over the lower bound N·L/B with B = 16 requests in flight.",
        "",
        sync_table(doc),
        "",
        "## Where the first sync's time goes (kvvm, the largest N)",
        "",
        "Measured, not estimated: the pass worker adds up wall and CPU time (its thread's, "
        "user and system) per phase and appends them to the file `KVVM_PHASES_FILE` names; "
        "phases run one after another except that the installs run inside the fetch, between "
        "answers: on a second thread (its rows show CPU only: their wall overlaps the fetch, "
        "and the time the fetching thread had to wait for them is its own row), or, where no "
        "thread could be had, on the fetching thread, whose wait on the vault is then the fetch "
        "less that local work. The last "
        "two rows are the rest of what the bench measured: the worker's CPU outside its phases, "
        "and kvvmd with the handler commands (its CPU; the wall between `install` and the status "
        "that the worker's phases do not cover). Counts: how many times a phase ran (flush: "
        "the store's syncfs and fsync calls; installed.json's own are in its row).",
        "",
        breakdown(doc),
        "",
        "## Steady state and idle",
        "",
        steady_idle(doc),
        "",
        "## PFX to PEM without the network",
        "",
        "- kvvm in-process: %.3f ms CPU per PFX; `openssl pkcs12` as a process per file: %.3f ms "
        "CPU (%.3f ms wall)." % (dec.get("kvvm", {}).get("cpu_ms", 0),
                                 dec.get("openssl", {}).get("cpu_ms", 0),
                                 dec.get("openssl", {}).get("wall_ms", 0)),
        "",
        "## The emulator's own ceiling",
        "",
        "\n".join("- %s: %d GET/s" % (k, v) for k, v in ceil.items()),
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown(json.load(open(sys.argv[1]))))
