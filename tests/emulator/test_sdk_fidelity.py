"""Fidelity: the official Azure SDK for JavaScript gets secrets from the emulator.

@azure/keyvault-secrets 4.11.2 + @azure/identity 4.13.1 (pinned by sdk/package-lock.json; the last
releases for node 20) run sdk/sdk_check.mjs against kvemu.py: ManagedIdentityCredential on the
emulator's IMDS, real vault host names connected to loopback, TLS verification and the SDK's
challenge-resource verification left on. If this fails, the emulator diverges from Key Vault as
the SDK sees it: fix the emulator.

`npm ci` runs once and is cached in sdk/node_modules (a stamp holds the lock file's hash). Needs
node >= 20 and the npm registry; skipped only when node >= 20 or npm is not installed.
Timings go to stderr: "sdk: npm ci ... s", "sdk: check ... s".
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emu  # noqa: E402

SDK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk")
STAMP = os.path.join(SDK_DIR, "node_modules", ".kvvm-lock-sha256")
VAULT = "myvault.vault.azure.net"
CN_VAULT = "myvault.vault.azure.cn"
GOV_VAULT = "govvault.vault.usgovcloudapi.net"


def npm_ci():
    """Installs the pinned SDK unless node_modules already matches the lock file."""
    with open(os.path.join(SDK_DIR, "package-lock.json"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    try:
        with open(STAMP) as f:
            if f.read().strip() == want:
                sys.stderr.write("sdk: npm ci cached (node_modules matches package-lock.json)\n")
                return
    except OSError:
        pass
    t0 = time.monotonic()
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SDK_DIR,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=900)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise AssertionError("npm ci failed (%d) after %.1f s:\n%s" % (r.returncode, took, r.stdout[-4000:]))
    with open(STAMP, "w") as f:
        f.write(want + "\n")
    sys.stderr.write("sdk: npm ci %.1f s\n" % took)


def openssl(*args, cwd):
    subprocess.run(("openssl",) + args, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def make_material(d):
    """Two PFX (base64, empty password, as Key Vault stores them) and one PEM (cert + key)."""
    out = {}
    for name in ("web1", "web2", "pem"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
                "-out", name + ".crt", "-days", "30", "-subj", "/CN=%s.example" % name, cwd=d)
    for name in ("web1", "web2"):
        openssl("pkcs12", "-export", "-in", name + ".crt", "-inkey", name + ".key", "-passout", "pass:",
                "-out", name + ".pfx", cwd=d)
        with open(os.path.join(d, name + ".pfx"), "rb") as f:
            out[name] = base64.b64encode(f.read()).decode()
    with open(os.path.join(d, "pem.crt")) as c, open(os.path.join(d, "pem.key")) as k:
        out["pem"] = c.read() + k.read()
    # P-256K with its curve written out in full, as PFX and PEM. (Node's OpenSSL 3 reads no
    # -legacy PFX, RC2 being in the legacy provider: openssl's default algorithms here.)
    out["p256k"] = emu.make_pfx("p256k.example", key="p256k", explicit=True)[0]
    out["p256kpem"] = emu.make_pem("p256kpem.example", key="p256k", explicit=True)[0]
    return out


def node_major():
    try:
        out = subprocess.run(["node", "--version"], stdout=subprocess.PIPE, text=True, timeout=30).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


# The pinned SDK declares engines node >= 20 (Debian 12's own nodejs is 18).
@unittest.skipUnless(shutil.which("npm") and node_major() >= 20, "node >= 20 and npm are needed")
class TestSdkFidelity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        npm_ci()
        cls.tmp = tempfile.mkdtemp(prefix="kvemu-sdk-")
        cls.material = make_material(cls.tmp)
        cls.emu = emu.Emulator(lifetime=300).start()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_sdk(self, plan):
        path = os.path.join(self.tmp, "plan.json")
        with open(path, "w") as f:
            json.dump(plan, f)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", self.tmp),
               "NODE_EXTRA_CA_CERTS": self.emu.ca_file,
               # The IMDS base URL the SDK (MSAL's IMDS source) honours.
               "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:%d" % self.emu.imds_port}
        t0 = time.monotonic()
        r = subprocess.run(["node", os.path.join(SDK_DIR, "sdk_check.mjs"),
                            os.path.join(self.emu.dir, "emu.json"), path],
                           cwd=SDK_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        took = time.monotonic() - t0
        lines = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        return r, lines, took

    def test_get_secret_through_the_challenge_flow(self):
        e, m = self.emu, self.material
        v1 = e.add_secret(VAULT, "web", m["web1"], managed=True)
        v2 = e.add_secret(VAULT, "web", m["web2"], managed=True)            # rotation: v2 is newest
        e.add_secret(VAULT, "webpem", m["pem"], content_type="application/x-pem-file", managed=True)
        e.add_secret(CN_VAULT, "web", m["web1"], managed=True)
        e.add_secret(GOV_VAULT, "webpem", m["pem"], content_type="application/x-pem-file")
        e.add_secret(VAULT, "k1", m["p256k"], managed=True)
        e.add_secret(VAULT, "k1pem", m["p256kpem"], content_type="application/x-pem-file")
        kid = "https://%s/keys/web/%s" % (VAULT, v2)
        plan = [
            {"vault": VAULT, "name": "web", "value": m["web2"], "expectVersion": v2, "kind": "pfx",
             "contentType": "application/x-pkcs12", "managed": True, "kid": kid},
            {"vault": VAULT, "name": "webpem", "value": m["pem"], "kind": "pem",
             "contentType": "application/x-pem-file"},
            {"vault": VAULT, "name": "web", "version": v1, "value": m["web1"], "expectVersion": v1,
             "kind": "pfx"},
            {"vault": CN_VAULT, "name": "web", "value": m["web1"], "kind": "pfx"},
            {"vault": GOV_VAULT, "name": "webpem", "value": m["pem"], "kind": "pem"},
            {"vault": VAULT, "name": "k1", "value": m["p256k"], "kind": "pfx",
             "contentType": "application/x-pkcs12"},
            {"vault": VAULT, "name": "k1pem", "value": m["p256kpem"], "kind": "pem",
             "contentType": "application/x-pem-file"},
        ]
        e.reset_stats()
        r, lines, took = self.run_sdk(plan)
        sys.stderr.write("sdk: check %.2f s (%d getSecret calls)\n" % (took, len(plan)))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        summary = lines[-1]
        self.assertEqual(summary["failures"], 0, r.stdout)
        self.assertEqual(summary["tls"]["authorized"], summary["tls"]["connections"])   # verified TLS
        self.assertEqual(set(summary["tls"]["servernames"]), {VAULT, CN_VAULT, GOV_VAULT})

        log = e.stats()["log"]
        flow = [(x["target"], x["status"], x["auth"]) for x in log]
        # Challenge first: GET without a token -> 401 -> IMDS token -> GET with the bearer token.
        self.assertEqual(flow[:3], [("kv", 401, "none"), ("imds", 200, "none"), ("kv", 200, "bearer")], flow)
        audiences = {VAULT: "https://vault.azure.net", CN_VAULT: "https://vault.azure.cn",
                     GOV_VAULT: "https://vault.usgovcloudapi.net"}
        for host, aud in audiences.items():
            i = next(i for i, x in enumerate(log) if x.get("host") == host)
            self.assertEqual((log[i]["status"], log[i]["auth"]), (401, "none"), host)
            j = next(j for j in range(i, len(log)) if log[j]["target"] == "imds")
            self.assertEqual((log[j]["status"], log[j]["resource"]), (200, aud), host)
            k = next(k for k in range(j, len(log)) if log[k].get("host") == host)
            self.assertEqual((log[k]["status"], log[k]["auth"]), (200, "bearer"), host)
        for x in log:
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(x["path"]).query))
            if x["target"] == "kv":
                self.assertEqual(q.get("api-version"), "2025-07-01")
                self.assertEqual(x["sni"], x["host"])
            else:
                self.assertEqual(q.get("api-version"), "2018-02-01")
        self.assertTrue(any(x["path"].startswith("/secrets/web/?") for x in log))     # trailing slash

    def test_list_pages_through_the_sdk(self):
        # listPropertiesOfSecrets follows the emulator's nextLink across pages of 25 and reads
        # each item's attributes as kvvm's listing does (PROTOCOL.md, Listing).
        e, host, n = self.emu, "listsdk.vault.azure.net", 60
        for i in range(n):
            e.add_secret(host, "s%02d" % i, "djE=", managed=(i % 2 == 0) or None)
        e.add_secret(host, "s05", "djI=", content_type="application/x-pem-file")   # rotation
        e.update_secret(host, "s07", False, updated=4102444801)                     # disabled
        e.reset_stats()
        r, lines, _ = self.run_sdk([{"list": host}])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        got = lines[0]["items"]
        self.assertEqual(sorted(x["name"] for x in got), ["s%02d" % i for i in range(n)])
        pages = [x for x in e.stats()["log"] if x["target"] == "kv" and x["status"] == 200]
        self.assertEqual(len(pages), 3, "60 secrets are 3 pages of at most 25")
        want = {}
        tok = e.imds_token("https://vault.azure.net")
        path = "/secrets?api-version=7.4"
        while path:
            c = e.vault(host)
            b = json.loads(c.get(path, tok)[2])
            c.close()
            for it in b["value"]:
                a = it["attributes"]
                want[it["id"].rsplit("/", 1)[1]] = {
                    "enabled": a["enabled"], "created": a["created"], "updated": a["updated"],
                    "managed": it.get("managed"), "contentType": it.get("contentType")}
            path = b["nextLink"] and b["nextLink"].split(":443", 1)[1]
        for x in got:
            self.assertIsNone(x["version"], "a listed item names no version")
            self.assertEqual({k: x[k] for k in want[x["name"]]}, want[x["name"]], x["name"])
        self.assertEqual(want["s07"]["enabled"], False)
        self.assertEqual(want["s05"]["contentType"], "application/x-pem-file")

    def test_parallel_burst(self):
        # The SDK's own concurrency against the emulator: N getSecret() at once (Promise.all).
        # Exercises the listen backlog and per-connection threads (emulator-notes.md).
        e, n = self.emu, 200
        plan = [{"parallel": []}]
        for i in range(n):
            value = base64.b64encode(b"burst-%d" % i).decode()
            e.add_secret(VAULT, "burst%d" % i, value)
            plan[0]["parallel"].append({"vault": VAULT, "name": "burst%d" % i, "value": value})
        e.reset_stats()
        r, lines, took = self.run_sdk(plan)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        st = e.stats()
        kv = [x for x in st["log"] if x["target"] == "kv"]
        sys.stderr.write("sdk: %d getSecret() at once: %d ms (node %.2f s), %d Key Vault GETs, "
                         "%d TLS handshakes, peak %d in flight\n" % (
                             n, lines[0]["ms"], took, len(kv), st["tls_handshakes"], st["peak_in_flight"]))
        self.assertEqual(sum(1 for x in kv if x["status"] == 200), n)
        self.assertTrue(all(x["status"] in (200, 401) for x in kv))
        self.assertEqual(st["refused_connections"], 0)

    def test_sdk_refuses_a_challenge_for_another_domain(self):
        # Proves the SDK's challenge-resource verification is on in this setup: a vault in the
        # public cloud that challenges for the China audience is refused before any token is asked.
        e = self.emu
        e.add_secret(VAULT, "other", self.material["web1"])
        e.set_challenge(resource="https://vault.azure.cn")
        try:
            e.reset_stats()
            r, lines, _ = self.run_sdk([{"vault": VAULT, "name": "other",
                                         "expectError": "does not match the requested domain"}])
        finally:
            e.set_challenge()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        flow = [(x["target"], x["status"], x["auth"]) for x in e.stats()["log"]]
        self.assertEqual(flow, [("kv", 401, "none")])

    def test_sdk_reads_the_refusals_as_key_vault_errors(self):
        # The 403 bodies kvvm tells apart by inner code (firewall, private link only, RBAC):
        # the SDK reports each as Key Vault's error, with Key Vault's message.
        e = self.emu
        steps = []
        for mode, words in (("403firewall", "Client address is not authorized"),
                            ("403connection", "Public network access is disabled"),
                            ("403rbac", "Caller is not authorized to perform action on resource")):
            name = "refused-" + mode
            e.add_secret(VAULT, name, self.material["web1"])
            e.fault("kv", mode, secret=name)
            steps.append({"vault": VAULT, "name": name, "expectError": words})
        try:
            r, lines, _ = self.run_sdk(steps)
        finally:
            e.clear_faults()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        self.assertEqual([x.get("ok") for x in lines if "name" in x], [True] * 3, lines)


if __name__ == "__main__":
    unittest.main()
