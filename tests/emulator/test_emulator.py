"""Self-tests of tests/emulator/kvemu.py: does it behave as PROTOCOL.md says (and Key Vault does)?

Run from the repository root:
    /usr/bin/python3 -m unittest discover -s tests/emulator -p 'test_*.py'
Everything binds 127.0.0.1; every emulator started here stops by itself (lifetime, parent watch).
"""

import http.client
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emu  # noqa: E402

VAULT = "myvault.vault.azure.net"
CLOUDS = {  # audience -> a vault host in that cloud
    "https://vault.azure.net": "myvault.vault.azure.net",
    "https://vault.azure.cn": "myvault.vault.azure.cn",
    "https://vault.usgovcloudapi.net": "myvault.vault.usgovcloudapi.net",
    "https://vault.microsoftazure.de": "myvault.vault.microsoftazure.de",
}
API = "?api-version=7.4"
E = None          # one emulator for the module: start-up makes two RSA keys


def setUpModule():
    global E
    E = emu.Emulator(lifetime=300).start()


def tearDownModule():
    log = E.log_tail(1 << 20)
    E.stop()
    # handle_error prints tracebacks of unexpected exceptions: a bug in kvemu, not a client's doing.
    if "Traceback" in log:
        raise AssertionError("kvemu logged a traceback:\n" + log[-4000:])


def read(path):
    with open(path) as f:
        return f.read()


class Base(unittest.TestCase):
    def setUp(self):
        E.clear_faults()
        E.set_latency(0)
        E.set_challenge()
        E.identity_config(system=True, expiresIn=3599, numbers=False)

    def token(self, resource="https://vault.azure.net"):
        return E.imds_token(resource)

    def get(self, name, token=None, host=VAULT, path=None, timeout=10):
        """One GET on a fresh connection; returns (status, headers, body bytes)."""
        c = E.vault(host, timeout=timeout)
        try:
            return c.get(path or "/secrets/%s%s" % (name, API), token)
        finally:
            c.close()

    def get_json(self, name, token=None, host=VAULT, path=None):
        status, headers, body = self.get(name, token, host, path)
        return status, headers, json.loads(body)


# ------------------------------------------------------------------------------------------------

class TestTlsAndStartup(Base):
    def test_emu_json(self):
        for k in ("pid", "kv_port", "imds_port", "arc_port", "control_port", "ca_file", "arc_tokens_dir"):
            self.assertIn(k, E.info)
        self.assertEqual(E.info["pid"], E.proc.pid)
        self.assertEqual(len({E.kv_port, E.imds_port, E.arc_port, E.control_port}), 4)

    def test_certificate_verifies_for_every_cloud_and_localhost(self):
        for host in list(CLOUDS.values()) + ["localhost"]:
            status, _, _ = self.get("x", host=host)
            self.assertIn(status, (400, 401), host)     # TLS verified; then Key Vault answered

    def test_other_names_fail_verification(self):
        for host in ("myvault.managedhsm.azure.net", "vault.example.com", "a.b.vault.azure.net"):
            with self.assertRaises(ssl.SSLCertVerificationError, msg=host):
                self.get("x", host=host)

    def test_only_loopback(self):
        for port in (E.kv_port, E.imds_port, E.arc_port, E.control_port):
            out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], stdout=subprocess.PIPE,
                                 text=True).stdout if os.path.exists("/usr/bin/ss") else ""
            if out:
                self.assertIn("127.0.0.1:%d" % port, out)

    def test_silent_and_plaintext_clients_do_not_block_the_port(self):
        E.reset_stats()
        silent = [socket.create_connection(("127.0.0.1", E.kv_port)) for _ in range(5)]
        try:
            plain = socket.create_connection(("127.0.0.1", E.kv_port))
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            plain.settimeout(5)
            plain.recv(100)          # the server gives up on this handshake
            plain.close()
            t0 = time.monotonic()
            status, _, _ = self.get("x")
            self.assertEqual(status, 401)
            self.assertLess(time.monotonic() - t0, 1.0)
        finally:
            for s in silent:
                s.close()
        st = E.stats()
        self.assertGreaterEqual(st["tls_failures"], 1)


class TestChallengeFlow(Base):
    def test_challenge_first_then_token_then_secret(self):
        v = E.add_secret(VAULT, "flow", "c2VjcmV0")
        E.reset_stats()
        c = E.vault(VAULT)
        status, headers, body = c.get_json("/secrets/flow/" + API)
        self.assertEqual(status, 401)
        self.assertEqual(body["error"]["code"], "Unauthorized")
        ch = emu.parse_challenge(headers["www-authenticate"])
        self.assertEqual(ch["scheme"], "Bearer")
        self.assertEqual(ch["resource"], "https://vault.azure.net")
        self.assertEqual(ch["authorization"], "https://login.microsoftonline.com/" + E.info["tenant"])
        token = E.imds_token(ch["resource"])
        status, _, bundle = c.get_json("/secrets/flow/" + API, token)
        c.close()
        self.assertEqual(status, 200)
        self.assertEqual(bundle["value"], "c2VjcmV0")
        self.assertEqual(bundle["id"], "https://%s/secrets/flow/%s" % (VAULT, v))
        log = E.stats()["log"]
        self.assertEqual([(e["target"], e["status"], e["auth"]) for e in log],
                         [("kv", 401, "none"), ("imds", 200, "none"), ("kv", 200, "bearer")])
        self.assertEqual(log[0]["sni"], VAULT)
        self.assertEqual(log[0]["conn"], log[2]["conn"])     # keep-alive: same connection
        self.assertEqual(log[2]["identity"], E.info["system_identity"]["client_id"])
        self.assertIn(token, E.stats(log=False)["tokens_issued"])

    def test_audience_per_cloud(self):
        tokens = {aud: E.imds_token(aud) for aud in CLOUDS}
        for aud, host in CLOUDS.items():
            E.add_secret(host, "aud", "dmFsdWU=")
            status, headers, _ = self.get("aud", host=host)
            self.assertEqual(status, 401)
            self.assertEqual(emu.parse_challenge(headers["www-authenticate"])["resource"], aud)
            status, _, bundle = self.get_json("aud", tokens[aud], host=host)
            self.assertEqual(status, 200, host)
            self.assertTrue(bundle["id"].startswith("https://%s/" % host))
            for other, tok in tokens.items():
                if other == aud:
                    continue
                status, headers, body = self.get_json("aud", tok, host=host)
                self.assertEqual(status, 401)
                self.assertIn("www-authenticate", headers)
                self.assertIn("AKV10022: Invalid audience. Expected %s, found: %s" % (aud, other),
                              body["error"]["message"])

    def test_trailing_slash_on_resource_is_the_same_audience(self):
        E.add_secret(VAULT, "slash", "eA==")
        status, _, _ = self.get("slash", E.imds_token("https://vault.azure.net/"))
        self.assertEqual(status, 200)

    def test_challenge_styles(self):
        E.set_challenge("scope")
        ch = emu.parse_challenge(self.get("x")[1]["www-authenticate"])
        self.assertEqual(ch["scope"], "https://vault.azure.net/.default")
        self.assertNotIn("resource", ch)
        E.set_challenge("both")
        ch = emu.parse_challenge(self.get("x")[1]["www-authenticate"])
        self.assertEqual((ch["resource"], ch["scope"]), ("https://vault.azure.net", "https://vault.azure.net/.default"))
        E.set_challenge("resource", resource="https://vault.evil.example")
        ch = emu.parse_challenge(self.get("x")[1]["www-authenticate"])
        self.assertEqual(ch["resource"], "https://vault.evil.example")

    def test_bad_tokens(self):
        E.add_secret(VAULT, "bad", "eA==")
        status, _, body = self.get_json("bad", "eyJ.forged.token")
        self.assertEqual(status, 401)
        self.assertIn("AKV10032", body["error"]["message"])
        c = E.vault(VAULT)
        status, headers, _ = c.get("/secrets/bad" + API, headers={"Authorization": "Basic Zm9vOmJhcg=="})
        c.close()
        self.assertEqual(status, 401)
        self.assertIn("www-authenticate", headers)
        E.identity_config(expiresIn=1)
        tok = self.token()
        time.sleep(1.2)
        status, _, body = self.get_json("bad", tok)
        self.assertEqual(status, 401)
        self.assertIn("expired", body["error"]["message"])

    def test_request_errors(self):
        tok = self.token()
        E.add_secret(VAULT, "req", "eA==")
        cases = [
            ("/secrets/req", 400, "BadParameter"),                      # no api-version
            ("/secrets/req?api-version=1999-01-01", 400, "BadParameter"),
            ("/secrets/req?api-version=2025-07-01&outContentType=application/x-pem-file", 400, "BadParameter"),
            ("/secrets/nope" + API, 404, "SecretNotFound"),
            ("/secrets/req/0123456789abcdef0123456789abcdef" + API, 404, "SecretNotFound"),
            ("/keys/req" + API, 404, "NotFound"),
        ]
        for path, want, code in cases:
            status, _, body = self.get_json(None, tok, path=path)
            self.assertEqual((status, body["error"]["code"]), (want, code), path)
        for path in ("/secrets/req/" + API, "/secrets/REQ" + API, "/secrets/req?api-version=2025-07-01"):
            self.assertEqual(self.get(None, tok, path=path)[0], 200, path)
        self.assertEqual(self.get("req", tok, host="localhost")[0], 400)   # not a vault host

    def test_stored_disabled_secret_is_refused_like_key_vault(self):
        E.add_secret(VAULT, "off", "eA==", enabled=False)
        status, _, body = self.get_json("off", self.token())
        self.assertEqual(status, 403)
        self.assertEqual(body["error"]["code"], "Forbidden")
        self.assertEqual(body["error"]["innererror"]["code"], "SecretDisabled")


class TestVersions(Base):
    def test_versions_and_rotation(self):
        tok = self.token()
        v1 = E.add_secret(VAULT, "rot", "djE=", managed=True, nbf=1700000000, exp=1900000000,
                          tags={"a": "b"})
        status, _, b = self.get_json("rot", tok)
        self.assertEqual((status, b["value"], b["id"].rsplit("/", 1)[1]), (200, "djE=", v1))
        self.assertEqual(b["contentType"], "application/x-pkcs12")
        self.assertTrue(b["managed"])
        self.assertEqual(b["kid"], "https://%s/keys/rot/%s" % (VAULT, v1))
        self.assertEqual(b["tags"], {"a": "b"})
        a = b["attributes"]
        self.assertEqual((a["enabled"], a["nbf"], a["exp"]), (True, 1700000000, 1900000000))
        self.assertIsInstance(a["created"], int)
        self.assertIsInstance(a["updated"], int)
        self.assertEqual(a["recoveryLevel"], "Recoverable+Purgeable")
        # rotation while running
        v2 = E.add_secret(VAULT, "rot", "djI=", content_type="application/x-pem-file")
        self.assertRegex(v2, "^[0-9a-f]{32}$")
        self.assertNotEqual(v1, v2)
        status, _, b = self.get_json("rot", tok)
        self.assertEqual((b["value"], b["id"].rsplit("/", 1)[1], b["contentType"]),
                         ("djI=", v2, "application/x-pem-file"))
        self.assertNotIn("kid", b)
        status, _, b = self.get_json(None, tok, path="/secrets/rot/%s%s" % (v1, API))
        self.assertEqual((status, b["value"]), (200, "djE="))
        status, _, b = self.get_json(None, tok, path="/secrets/rot/%s/%s" % (v2, API))
        self.assertEqual((status, b["value"]), (200, "djI="))
        listing = E.control("GET", "/secrets")
        self.assertEqual(listing["%s/rot" % VAULT], [v1, v2])

    def test_bad_control_input(self):
        for body in ({"vault": "example.com", "name": "x", "value": "v"},
                     {"vault": VAULT, "name": "a_b", "value": "v"},
                     {"vault": VAULT, "name": "x", "value": 5},
                     {"vault": VAULT, "name": "x", "value": "v", "nbf": "soon"}):
            with self.assertRaises(emu.EmulatorError):
                E.control("POST", "/secrets", body)
        with self.assertRaises(emu.EmulatorError):
            E.fault("kv", "explode")
        with self.assertRaises(emu.EmulatorError):
            E.fault("kv", "410")          # IMDS only


LVAULT = "listvault.vault.azure.net"


class TestListing(Base):
    """GET /secrets as Key Vault pages it (PROTOCOL.md, Listing)."""

    def pages(self, tok, first="/secrets?api-version=7.4", host=LVAULT):
        path, out = first, []
        while path:
            status, _, b = self.get_json(None, tok, host=host, path=path)
            self.assertEqual(status, 200, b)
            out.append(b)
            link = b["nextLink"]
            if link:
                self.assertTrue(link.startswith("https://%s:443/secrets?api-version=7.4&$skiptoken="
                                                % host), link)
            path = link[len("https://%s:443" % host):] if link else None
        return out

    def test_pages_of_25_with_newest_attributes_and_no_values(self):
        tok = self.token()
        pv = "pagevault.vault.azure.net"
        names = ["c%03d" % i for i in range(60)]
        for n in names:
            E.add_secret(pv, n, "djE=")
        E.add_secret(pv, "c007", "djI=", content_type="application/x-pem-file", managed=True,
                     created=4102444800)
        pages = self.pages(tok, host=pv)
        self.assertEqual([len(p["value"]) for p in pages], [25, 25, 10])
        self.assertIsNone(pages[-1]["nextLink"])
        items = [i for p in pages for i in p["value"]]
        self.assertEqual([i["id"].rsplit("/", 1)[1] for i in items], names)
        c7 = items[7]
        self.assertEqual(c7["id"], "https://%s/secrets/c007" % pv)
        self.assertEqual((c7["contentType"], c7["managed"]), ("application/x-pem-file", True))
        self.assertEqual((c7["attributes"]["created"], c7["attributes"]["updated"]),
                         (4102444800, 4102444800))
        self.assertNotIn("value", c7)
        small = self.pages(tok, "/secrets?api-version=7.4&maxresults=7", host=pv)
        self.assertEqual(len(small[0]["value"]), 7)
        self.assertEqual(len(small[1]["value"]), 25, "nextLink has no maxresults: Key Vault's 25")

    def test_disabling_the_newest_version_shows_in_the_listing(self):
        tok = self.token()
        E.add_secret(LVAULT, "dis", "djE=")
        rec = E.update_secret(LVAULT, "dis", False, updated=4102444801)
        self.assertFalse(rec["enabled"])
        items = {i["id"].rsplit("/", 1)[1]: i for p in self.pages(tok) for i in p["value"]}
        self.assertEqual((items["dis"]["attributes"]["enabled"],
                          items["dis"]["attributes"]["updated"]), (False, 4102444801))

    def test_maxresults_and_skiptoken_refused_like_key_vault(self):
        tok = self.token()
        for q in ("maxresults=0", "maxresults=26", "maxresults=x"):
            status, _, b = self.get_json(None, tok, host=LVAULT, path="/secrets?api-version=7.4&" + q)
            self.assertEqual((status, b["error"]["code"]), (400, "BadParameter"), q)
        status, _, b = self.get_json(None, tok, host=LVAULT,
                                     path="/secrets?api-version=7.4&$skiptoken=%21%21")
        self.assertEqual(status, 400)

    def test_a_list_only_refusal_leaves_get_alone(self):
        tok = self.token()
        E.add_secret(LVAULT, "pol", "djE=")
        E.fault("kv", "403", op="list")
        status, _, b = self.get_json(None, tok, host=LVAULT, path="/secrets?api-version=7.4")
        self.assertEqual((status, b["error"]["innererror"]["code"]), (403, "AccessDenied"))
        self.assertIn("secrets list permission", b["error"]["message"])
        status, _, b = self.get_json("pol", tok, host=LVAULT)
        self.assertEqual(status, 200)
        st = E.stats(log=False)["by_path"]
        self.assertGreaterEqual(st["kv /secrets"], 1, "list requests are counted apart")


class TestKvFaults(Base):
    @classmethod
    def setUpClass(cls):
        cls.version = E.add_secret(VAULT, "f", "ZmF1bHQ=", kid="https://%s/keys/f/1" % VAULT, managed=True)
        E.add_secret(VAULT, "other", "b3RoZXI=")

    def setUp(self):
        super().setUp()
        self.tok = self.token()

    def test_429_with_and_without_retry_after(self):
        E.fault("kv", "429", secret="f", count=1, retryAfter=3)
        status, headers, body = self.get_json("f", self.tok)
        self.assertEqual((status, headers.get("retry-after"), body["error"]["code"]), (429, "3", "Throttled"))
        self.assertEqual(self.get("f", self.tok)[0], 200)      # count used up
        E.fault("kv", "429", secret="f", count=1)
        status, headers, _ = self.get("f", self.tok)
        self.assertEqual(status, 429)
        self.assertNotIn("retry-after", headers)

    def test_5xx(self):
        for mode, code in (("500", "InternalServerError"), ("503", "ServiceUnavailable")):
            E.fault("kv", mode, count=1)
            status, _, body = self.get_json("f", self.tok)
            self.assertEqual((status, body["error"]["code"]), (int(mode), code))

    def test_403_404_401loop(self):
        E.fault("kv", "403", count=1)
        status, _, body = self.get_json("f", self.tok)
        self.assertEqual((status, body["error"]["innererror"]["code"]), (403, "AccessDenied"))
        self.assertIn("does not have secrets get permission", body["error"]["message"])
        E.fault("kv", "404", count=1)
        status, _, body = self.get_json("f", self.tok)
        self.assertEqual((status, body["error"]["code"]), (404, "SecretNotFound"))
        E.fault("kv", "401loop", count=2)
        for _ in range(2):
            status, headers, _ = self.get("f", self.tok)
            self.assertEqual(status, 401)
            self.assertIn("resource=", headers["www-authenticate"])
        self.assertEqual(self.get("f", self.tok)[0], 200)

    def test_fault_for_one_identity(self):
        """A fault with `identity` refuses that identity's tokens only (and its token requests)."""
        ua = E.add_identity()
        tok_b = E.imds_token(client_id=ua["client_id"])
        E.fault("kv", "403", secret="f", identity=ua["client_id"].upper())
        status, _, body = self.get_json("f", tok_b)
        self.assertEqual((status, body["error"]["innererror"]["code"]), (403, "AccessDenied"))
        self.assertIn("appid=%s;" % ua["client_id"], body["error"]["message"])
        self.assertEqual(self.get("f", self.tok)[0], 200)          # the system identity may
        self.assertEqual(self.get("g", tok_b)[0], 404)             # another secret: not refused
        E.clear_faults()
        E.fault("imds", "500", identity=ua["client_id"], count=1)
        self.assertTrue(self.token())                              # the system one is served
        with self.assertRaises(emu.EmulatorError):
            E.imds_token(client_id=ua["client_id"])
        self.assertTrue(E.imds_token(client_id=ua["client_id"]))

    def test_disabled_and_wrongtype(self):
        E.fault("kv", "disabled", count=1)
        status, _, b = self.get_json("f", self.tok)
        self.assertEqual((status, b["attributes"]["enabled"], b["value"]), (200, False, "ZmF1bHQ="))
        E.fault("kv", "secretdisabled", count=1)
        status, _, b = self.get_json("f", self.tok)
        self.assertEqual((status, b["error"]["innererror"]["code"]), (403, "SecretDisabled"))
        E.fault("kv", "wrongtype", count=1)
        status, headers, b = self.get_json("f", self.tok)
        self.assertEqual((status, b["contentType"]), (200, "text/plain"))
        E.fault("kv", "wrongtype", count=1, contentType="application/json")
        self.assertEqual(self.get_json("f", self.tok)[2]["contentType"], "application/json")

    def test_reset(self):
        E.reset_stats()
        E.fault("kv", "reset", count=1)
        with self.assertRaises((ConnectionError, ssl.SSLError, http.client.HTTPException)):
            self.get("f", self.tok)
        self.assertEqual(self.get("f", self.tok)[0], 200)
        self.assertEqual([e["status"] for e in E.stats()["log"]], ["reset", 200])

    def test_stall_past_client_timeout(self):
        E.fault("kv", "stall", count=1, seconds=3)
        t0 = time.monotonic()
        with self.assertRaises((TimeoutError, socket.timeout)):
            self.get("f", self.tok, timeout=0.5)
        self.assertLess(time.monotonic() - t0, 2)
        E.fault("kv", "stallbody", count=1, seconds=3)
        c = E.vault(VAULT, timeout=0.5)
        c.request("GET", "/secrets/f" + API, headers={"Authorization": "Bearer " + self.tok})
        r = c.getresponse()                     # status and headers arrive...
        self.assertEqual(r.status, 200)
        with self.assertRaises((TimeoutError, socket.timeout)):
            r.read()                            # ...the body never completes
        c.close()

    def test_truncate_badjson_html(self):
        E.fault("kv", "truncate", count=1)
        c = E.vault(VAULT)
        c.request("GET", "/secrets/f" + API, headers={"Authorization": "Bearer " + self.tok})
        r = c.getresponse()
        with self.assertRaises(http.client.IncompleteRead):
            r.read()
        c.close()
        E.fault("kv", "badjson", count=1)
        status, headers, body = self.get("f", self.tok)
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        with self.assertRaises(ValueError):
            json.loads(body)
        E.fault("kv", "html", count=1)
        status, headers, body = self.get("f", self.tok)
        self.assertEqual((status, headers["content-type"]), (200, "text/html"))
        # manglers apply to whatever the answer would have been, e.g. a 404
        E.fault("kv", "truncate", count=1)
        c = E.vault(VAULT)
        c.request("GET", "/secrets/missing" + API, headers={"Authorization": "Bearer " + self.tok})
        r = c.getresponse()
        self.assertEqual(r.status, 404)
        with self.assertRaises(http.client.IncompleteRead):
            r.read()
        c.close()

    def test_oversize_is_streamed(self):
        E.fault("kv", "oversize", count=1, bytes=5 * 1024 * 1024)
        status, headers, body = self.get("f", self.tok)
        self.assertEqual((status, len(body), int(headers["content-length"])), (200, 5 << 20, 5 << 20))
        self.assertTrue(body.startswith(b'{"value":"AAAA'))

    def test_fault_selection(self):
        E.fault("kv", "503", secret="f")                  # all requests for f until cleared
        self.assertEqual(self.get("other", self.tok)[0], 200)
        for _ in range(3):
            self.assertEqual(self.get("f", self.tok)[0], 503)
        self.assertEqual(self.get("f")[0], 401)           # unauthenticated: challenged as usual
        E.clear_faults()
        self.assertEqual(self.get("f", self.tok)[0], 200)
        E.fault("kv", "500", duration=0.4)
        self.assertEqual(self.get("f", self.tok)[0], 500)
        time.sleep(0.5)
        self.assertEqual(self.get("f", self.tok)[0], 200)
        E.fault("kv", "503", count=1, beforeAuth=True)
        self.assertEqual(self.get("f")[0], 503)
        self.assertEqual(self.get("f")[0], 401)
        E.fault("kv", "500", vault="other.vault.azure.net")
        self.assertEqual(self.get("f", self.tok)[0], 200)
        faults = E.control("GET", "/faults")["faults"]
        self.assertEqual(faults[-1]["hits"], 0)


class TestImds(Base):
    Q = "/metadata/identity/oauth2/token"

    def imds(self, query=None, headers=None, port=None):
        q = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
        q.update(query or {})
        q = {k: v for k, v in q.items() if v is not None}
        return emu.get_json("127.0.0.1", port or E.imds_port, self.Q, q,
                            {"Metadata": "true"} if headers is None else headers)

    def test_token_response_shape(self):
        status, body = self.imds()
        self.assertEqual(status, 200)
        for k in ("access_token", "expires_in", "expires_on", "resource", "token_type", "not_before"):
            self.assertIn(k, body)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertIsInstance(body["expires_in"], str)          # IMDS sends strings
        self.assertAlmostEqual(int(body["expires_on"]), time.time() + 3599, delta=5)
        self.assertEqual(len(body["access_token"].split(".")), 3)
        E.identity_config(numbers=True, expiresIn=120)
        status, body = self.imds()
        self.assertEqual(body["expires_in"], 120)
        self.assertIsInstance(body["expires_on"], int)

    def test_request_errors(self):
        self.assertEqual(self.imds(headers={})[0], 400)
        self.assertEqual(self.imds(headers={"Metadata": "True"})[0], 400)
        status, body = self.imds(headers={"Metadata": "true", "X-Forwarded-For": "10.0.0.1"})
        self.assertEqual(status, 400)
        self.assertEqual(self.imds({"api-version": None})[0], 400)
        self.assertEqual(self.imds({"resource": None})[0], 400)
        status, body = self.imds({"resource": "vault"})
        self.assertEqual((status, body["error"]), (400, "invalid_resource"))
        status, _ = emu.get_json("127.0.0.1", E.imds_port, "/metadata/identity",
                                 {"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
                                 {"Metadata": "true"})
        self.assertEqual(status, 404)

    def test_410_then_success(self):
        E.reset_stats()
        E.fault("imds", "410", count=3)
        seq = [self.imds()[0] for _ in range(4)]
        self.assertEqual(seq, [410, 410, 410, 200])
        self.assertEqual([e["status"] for e in E.stats()["log"]], seq)

    def test_status_faults(self):
        for mode in ("404", "429", "500", "503", "403"):
            E.fault("imds", mode, count=2, retryAfter=1)
            seq = [self.imds() for _ in range(3)]
            self.assertEqual([s for s, _ in seq], [int(mode), int(mode), 200], mode)
            self.assertIn("error", seq[0][1])
        E.fault("imds", "404", duration=0.3)
        self.assertEqual(self.imds()[0], 404)
        time.sleep(0.4)
        self.assertEqual(self.imds()[0], 200)

    def test_transport_faults(self):
        E.fault("imds", "reset", count=1)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.imds()
        E.fault("imds", "badjson", count=1)
        self.assertEqual(self.imds()[0], 200)    # get_json falls back to text: not JSON
        E.fault("imds", "stall", count=1, seconds=2)
        with self.assertRaises((TimeoutError, socket.timeout)):
            emu.get_json("127.0.0.1", E.imds_port, self.Q,
                         {"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
                         {"Metadata": "true"}, timeout=0.5)

    def test_identity_shapes(self):
        ua = E.add_identity()
        for key in ("client_id", "object_id", "msi_res_id"):
            status, body = self.imds({key: ua[key]})
            self.assertEqual(status, 200, key)
        status, _ = self.imds({"mi_res_id": ua["msi_res_id"]})
        self.assertEqual(status, 200)
        E.reset_stats()
        status, body = self.imds({"client_id": ua["client_id"]})
        self.assertEqual(E.stats()["log"][0]["identity"], ua["client_id"])
        status, body = self.imds({"client_id": "00000000-0000-0000-0000-000000000000"})
        self.assertEqual((status, body["error"], body["error_description"]),
                         (400, "invalid_request", "Identity not found"))
        status, body = self.imds({"client_id": ua["client_id"], "msi_res_id": ua["msi_res_id"]})
        self.assertEqual(status, 400)
        E.identity_config(system=False)
        status, body = self.imds()
        self.assertEqual((status, body["error_description"]), (400, "Identity not found"))
        self.assertEqual(self.imds({"client_id": ua["client_id"]})[0], 200)


class TestArc(Base):
    def arc(self, headers, query=None):
        q = {"api-version": "2020-06-01", "resource": "https://vault.azure.net"}
        q.update(query or {})
        c = http.client.HTTPConnection("127.0.0.1", E.arc_port, timeout=5)
        c.request("GET", TestImds.Q + "?" + "&".join("%s=%s" % kv for kv in q.items()), headers=headers)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, r.getheader("WWW-Authenticate"), json.loads(body)

    def test_basic_realm_flow(self):
        status, realm, body = self.arc({"Metadata": "true"})
        self.assertEqual(status, 401)
        self.assertTrue(realm.startswith("Basic realm="))
        path = realm[len("Basic realm="):]
        self.assertEqual(os.path.dirname(path), E.arc_tokens_dir)
        self.assertTrue(path.endswith(".key"))
        st = os.lstat(path)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        with open(path) as f:
            key = f.read()
        status, _, body = self.arc({"Metadata": "true", "Authorization": "Basic " + key})
        self.assertEqual(status, 200)
        self.assertEqual(body["resource"], "https://vault.azure.net")
        E.add_secret(VAULT, "arc", "YXJj")
        self.assertEqual(self.get("arc", body["access_token"])[0], 200)
        self.assertEqual(self.get("arc", E.arc_token("https://vault.azure.cn"))[0], 401)   # audience

    def test_arc_refusals(self):
        self.assertEqual(self.arc({})[0], 400)                       # no Metadata header
        status, realm, _ = self.arc({"Metadata": "true", "Authorization": "Basic wrong"})
        self.assertEqual(status, 401)
        self.assertIn("realm=", realm)
        key = read(self.arc({"Metadata": "true"})[1].split("=", 1)[1])
        status, _, body = self.arc({"Metadata": "true", "Authorization": "Basic " + key},
                                   {"client_id": "11111111-1111-1111-1111-111111111111"})
        self.assertEqual(status, 400)              # Arc has the system identity only
        self.assertEqual(self.arc({"Metadata": "true", "Authorization": "Basic " + key},
                                  {"api-version": "2018-02-01"})[0], 400)

    def test_arc_faults_after_basic_auth(self):
        E.reset_stats()
        E.fault("arc", "500", count=1)
        E.fault("arc", "429", count=1, retryAfter=2)
        _, realm, _ = self.arc({"Metadata": "true"})
        key = read(realm.split("=", 1)[1])
        auth = {"Metadata": "true", "Authorization": "Basic " + key}
        self.assertEqual([self.arc(auth)[0] for _ in range(3)], [500, 429, 200])
        self.assertEqual([e["auth"] for e in E.stats()["log"]], ["none", "basic", "basic", "basic"])


class TestStatsAndLatency(Base):
    @classmethod
    def setUpClass(cls):
        E.add_secret(VAULT, "s", "cw==")

    def test_handshakes_count_connections_not_requests(self):
        tok = self.token()
        E.reset_stats()
        c = E.vault(VAULT)
        for _ in range(5):
            self.assertEqual(c.get("/secrets/s" + API, tok)[0], 200)
        c.close()
        st = E.stats()
        self.assertEqual((st["tls_handshakes"], st["connections"]["kv"], st["requests"]), (1, 1, 5))
        for _ in range(3):
            self.get("s", tok)
        st = E.stats()
        self.assertEqual(st["tls_handshakes"], 4)
        self.assertEqual(len({e["conn"] for e in st["log"]}), 4)
        self.assertEqual(st["by_path"]["kv /secrets/s"], 8)
        self.assertEqual(st["by_status"]["200"], 8)

    def test_peak_in_flight(self):
        tok = self.token()
        E.set_latency(300)
        E.reset_stats()
        conns = [E.vault(VAULT) for _ in range(6)]
        for c in conns:
            c.connect()
        results = []
        threads = [threading.Thread(target=lambda c=c: results.append(c.get("/secrets/s" + API, tok)[0]))
                   for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in conns:
            c.close()
        self.assertEqual(results, [200] * 6)
        st = E.stats(log=False)
        self.assertEqual(st["peak_in_flight"], 6)
        self.assertEqual(st["in_flight"], 0)
        self.assertNotIn("log", st)
        E.reset_stats()
        self.get("s", tok)
        self.get("s", tok)
        self.assertEqual(E.stats()["peak_in_flight"], 1)

    def test_latency_and_no_nagle_stall(self):
        tok = self.token()
        c = E.vault(VAULT)
        c.get("/secrets/s" + API, tok)            # handshake out of the way
        t0 = time.monotonic()
        for _ in range(20):
            c.get("/secrets/s" + API, tok)
        per = (time.monotonic() - t0) / 20
        # Nagle + delayed ACK would make this ~40 ms; the emulator answers in well under 5 ms.
        self.assertLess(per, 0.010)
        E.set_latency(150)
        t0 = time.monotonic()
        status, _, _ = c.get("/secrets/s" + API, tok)
        took = time.monotonic() - t0
        self.assertEqual(status, 200)
        self.assertGreaterEqual(took, 0.150)
        self.assertLess(took, 0.5)
        self.assertGreaterEqual(E.stats()["log"][-1]["ms"], 150)
        E.set_latency(100, target="imds")
        t0 = time.monotonic()
        E.imds_token()
        self.assertGreaterEqual(time.monotonic() - t0, 0.1)
        E.set_latency(0, target="imds")
        c.close()

    def test_log_since_and_reset(self):
        E.reset_stats()
        self.get("s")
        self.get("s")
        st = E.stats()
        self.assertEqual(len(st["log"]), 2)
        first = st["log"][0]
        for k in ("t", "target", "method", "path", "status", "auth"):
            self.assertIn(k, first)
        self.assertEqual(first["path"], "/secrets/s" + API)
        self.assertEqual(len(E.stats(since=first["seq"])["log"]), 1)
        E.reset_stats()
        st = E.stats()
        self.assertEqual((st["requests"], st["tls_handshakes"], st["log"], st["peak_in_flight"]), (0, 0, [], 0))


class TestLimits(Base):
    def raw(self, port, data, tls_host=None):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if tls_host:
            s = E.ssl_context().wrap_socket(s, server_hostname=tls_host)
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionError, ssl.SSLError):
                break
            if not chunk:
                break
            out += chunk
        s.close()
        return out

    def test_bodies_are_bounded(self):
        out = self.raw(E.control_port, b"POST /secrets HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:80])
        out = self.raw(E.kv_port, b"GET /secrets/x HTTP/1.1\r\nHost: %s\r\nContent-Length: 10000000\r\n\r\n"
                       % VAULT.encode(), tls_host=VAULT)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:80])
        out = self.raw(E.kv_port, b"GET /secrets/x HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                       % VAULT.encode(), tls_host=VAULT)
        self.assertTrue(out.startswith(b"HTTP/1.1 411"), out[:80])
        out = self.raw(E.imds_port, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 414"), out[:80])
        self.assertEqual(E.control("GET", "/health"), {"ok": True})


class TestLifecycle(unittest.TestCase):
    def test_lifetime_sigterm_and_parent(self):
        # lifetime
        e = emu.Emulator(lifetime=1.5, key_type="ec").start()
        try:
            e.proc.wait(10)
            self.assertEqual(e.proc.returncode, 0)
            self.assertFalse(os.path.exists(os.path.join(e.dir, "emu.json")))
            self.assertIn("lifetime", e.log_tail())
        finally:
            e.stop()
        # SIGTERM, and the start-up latency flag
        e = emu.Emulator(latency_ms=80, key_type="ec").start()
        try:
            e.add_secret(VAULT, "x", "eA==")
            c = e.vault(VAULT)
            c.get("/secrets/x" + API)
            t0 = time.monotonic()
            self.assertEqual(c.get("/secrets/x" + API)[0], 401)
            self.assertGreaterEqual(time.monotonic() - t0, 0.08)
            c.close()
            e.fault("kv", "stall", seconds=60)          # a stalled request must not delay the stop
            threading.Thread(target=lambda: self._swallow(e), daemon=True).start()
            time.sleep(0.3)
            t0 = time.monotonic()
            self.assertEqual(e.stop(), 0)
            self.assertLess(time.monotonic() - t0, 3)
        finally:
            e.stop()
        # parent gone
        with tempfile.TemporaryDirectory() as d:
            parent = subprocess.Popen(["sleep", "60"])
            p = subprocess.Popen([emu.PYTHON, emu.KVEMU, "--dir", d, "--parent-pid", str(parent.pid),
                                  "--key-type", "ec", "--lifetime", "60"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 20
                while not os.path.exists(os.path.join(d, "emu.json")) and time.monotonic() < deadline:
                    time.sleep(0.05)
                parent.kill()
                parent.wait()
                self.assertEqual(p.wait(10), 0)
                self.assertIn(b"parent", p.stderr.read())
            finally:
                parent.kill()
                p.kill()
                p.wait()
                p.stderr.close()

    @staticmethod
    def _swallow(e):
        try:
            tok = e.imds_token()
            c = e.vault(VAULT, timeout=30)
            try:
                c.get("/secrets/x" + API, tok)
            finally:
                c.close()
        except Exception:
            pass


if __name__ == "__main__":
    unittest.main()
