"""Start, drive and stop tests/emulator/kvemu.py from Python tests (standard library only).

    from emu import Emulator            # sys.path: tests/emulator
    with Emulator() as e:                # spawns kvemu.py, waits for emu.json
        v1 = e.add_secret("myvault.vault.azure.net", "web", pfx_b64)
        env = e.client_env(["myvault.vault.azure.net"])   # KVVM_CA_FILE, KVVM_CONNECT_TO, ...
        e.fault("kv", "429", secret="web", count=1, retryAfter=2)
        ... run the client with env ...
        s = e.stats()                    # counters and the per-request log
    # stopped here; also at interpreter exit (atexit) and when the test process dies
    # (kvemu watches --parent-pid), and by itself after `lifetime` seconds in any case.

The control API and the emulator's behaviour are described in tests/emulator/PROTOCOL.md.
The helpers at the end (VaultConnection, imds_token, arc_token) are a small client for tests
that need to talk to the emulator directly, with real vault host names and TLS verification on.
"""

import atexit
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
KVEMU = os.path.join(HERE, "kvemu.py")
# Debian's interpreter: the pyenv python3 on PATH is another installation.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

_live = set()
_live_lock = threading.Lock()


def _stop_all():
    with _live_lock:
        emus = list(_live)
    for e in emus:
        e.stop()


atexit.register(_stop_all)


class EmulatorError(Exception):
    pass


class Emulator:
    """One kvemu.py process. Use as a context manager, or start() / stop() in a finally."""

    def __init__(self, directory=None, latency_ms=0, lifetime=600, key_type="rsa", keep=False,
                 start_timeout=30):
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="kvemu-")
        self.latency_ms = latency_ms
        self.lifetime = lifetime
        self.key_type = key_type
        self.keep = keep
        self.start_timeout = start_timeout
        self.proc = None
        self.info = None
        self.log_path = os.path.join(self.dir, "kvemu.log")

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        info_path = os.path.join(self.dir, "emu.json")
        try:
            os.unlink(info_path)
        except FileNotFoundError:
            pass
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [PYTHON, KVEMU, "--dir", self.dir, "--latency-ms", str(self.latency_ms),
                 "--lifetime", str(self.lifetime), "--parent-pid", str(os.getpid()),
                 "--key-type", self.key_type],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        with _live_lock:
            _live.add(self)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if os.path.exists(info_path):
                with open(info_path) as f:
                    self.info = json.load(f)
                return self
            if self.proc.poll() is not None:
                self.stop()
                raise EmulatorError("kvemu exited with %s before it was ready:\n%s"
                                    % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise EmulatorError("kvemu not ready after %s s:\n%s" % (self.start_timeout, self.log_tail()))
            time.sleep(0.02)

    def stop(self, timeout=5):
        """SIGTERM, then SIGKILL if it lingers; removes the directory unless keep=True."""
        with _live_lock:
            _live.discard(self)
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self._own_dir and not self.keep and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        return p.returncode if p is not None else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    # --- facts ---------------------------------------------------------------------------------

    @property
    def kv_port(self):
        return self.info["kv_port"]

    @property
    def imds_port(self):
        return self.info["imds_port"]

    @property
    def arc_port(self):
        return self.info["arc_port"]

    @property
    def control_port(self):
        return self.info["control_port"]

    @property
    def ca_file(self):
        return self.info["ca_file"]

    @property
    def arc_tokens_dir(self):
        return self.info["arc_tokens_dir"]

    @property
    def imds_endpoint(self):
        """The msiEndpoint form with the token path."""
        return "http://127.0.0.1:%d/metadata/identity/oauth2/token" % self.imds_port

    @property
    def arc_endpoint(self):
        """What IDENTITY_ENDPOINT holds on an Arc machine, pointing at the emulator."""
        return "http://127.0.0.1:%d/metadata/identity/oauth2/token" % self.arc_port

    def connect_to(self, hosts):
        """KVVM_CONNECT_TO value: each vault host's port 443 goes to the emulator."""
        return ",".join("%s:443:127.0.0.1:%d" % (h, self.kv_port) for h in hosts)

    def client_env(self, hosts, base=None):
        """Environment for kvvm against this emulator: CA, connect-to, no proxy."""
        env = dict(os.environ if base is None else base)
        for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                  "IDENTITY_ENDPOINT", "IMDS_ENDPOINT"):
            env.pop(k, None)
        env["KVVM_CA_FILE"] = self.ca_file
        env["KVVM_CONNECT_TO"] = self.connect_to(hosts)
        return env

    # --- control API -----------------------------------------------------------------------------

    def control(self, method, path, body=None, timeout=30):
        """One control call; returns the decoded JSON answer, raises EmulatorError on non-200."""
        conn = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            raw = r.read()
        finally:
            conn.close()
        answer = json.loads(raw or b"{}")
        if r.status != 200:
            raise EmulatorError("control %s %s: %d %s" % (method, path, r.status, answer))
        return answer

    def add_secret(self, vault, name, value, content_type="application/x-pkcs12", **attrs):
        """Adds a version (the newest from now on); returns its 32-hex version id.

        attrs: enabled, nbf, exp, kid, managed, tags, version, created.
        """
        body = {"vault": vault, "name": name, "value": value, "contentType": content_type}
        body.update(attrs)
        return self.control("POST", "/secrets", body)["version"]

    def update_secret(self, vault, name, enabled, version=None, **attrs):
        """Key Vault's PATCH of a version (the newest without one): enabled, `updated` now
        (or attrs' updated); returns the version's record without its value."""
        body = {"vault": vault, "name": name, "enabled": enabled, "version": version}
        body.update(attrs)
        return self.control("POST", "/secrets/update", body)

    def fault(self, target, mode, secret=None, count=None, **extra):
        """Injects a fault (see PROTOCOL.md); returns its id. extra: retryAfter, seconds,
        op ("list" or "get": that operation only), ..."""
        body = {"target": target, "mode": mode}
        if secret is not None:
            body["secret"] = secret
        if count is not None:
            body["count"] = count
        body.update(extra)
        return self.control("POST", "/faults", body)["id"]

    def clear_faults(self):
        self.control("DELETE", "/faults")

    def set_latency(self, ms, target="kv"):
        self.control("POST", "/latency", {"ms": ms, "target": target})

    def stats(self, log=True, since=0):
        return self.control("GET", "/stats?log=%d&since=%d" % (1 if log else 0, since))

    def reset_stats(self):
        self.control("POST", "/stats/reset")

    def add_identity(self, **fields):
        """Registers a user-assigned identity; returns {client_id, object_id, msi_res_id}."""
        return self.control("POST", "/identities", fields)

    def identity_config(self, **fields):
        """system (bool), expiresIn (s), numbers (bool); returns the whole configuration."""
        return self.control("POST", "/identity", fields)

    def set_challenge(self, style="resource", resource=None, authority=None):
        self.control("POST", "/challenge", {"style": style, "resource": resource, "authority": authority})

    # --- a small client for tests ------------------------------------------------------------

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def vault(self, host, timeout=10):
        """A keep-alive HTTPS connection to `host`, reached over loopback (TLS verified for host)."""
        return VaultConnection(host, self.kv_port, self.ssl_context(), timeout)

    def imds_token(self, resource="https://vault.azure.net", **params):
        status, body = get_json("127.0.0.1", self.imds_port, "/metadata/identity/oauth2/token",
                                dict({"api-version": "2018-02-01", "resource": resource}, **params),
                                {"Metadata": "true"})
        if status != 200:
            raise EmulatorError("IMDS %d %s" % (status, body))
        return body["access_token"]

    def arc_token(self, resource="https://vault.azure.net"):
        """The Arc flow: 401 Basic realm=<file> -> read the file -> retry with its content."""
        query = {"api-version": "2020-06-01", "resource": resource}
        conn = http.client.HTTPConnection("127.0.0.1", self.arc_port, timeout=10)
        try:
            path = "/metadata/identity/oauth2/token?" + urllib.parse.urlencode(query)
            conn.request("GET", path, headers={"Metadata": "true"})
            r = conn.getresponse()
            r.read()
            realm = r.getheader("WWW-Authenticate", "")
            if r.status != 401 or not realm.startswith("Basic realm="):
                raise EmulatorError("Arc: expected 401 Basic, got %d %r" % (r.status, realm))
            with open(realm[len("Basic realm="):]) as f:
                secret = f.read()
            conn.request("GET", path, headers={"Metadata": "true", "Authorization": "Basic " + secret})
            r = conn.getresponse()
            body = json.loads(r.read())
            if r.status != 200:
                raise EmulatorError("Arc %d %s" % (r.status, body))
            return body["access_token"]
        finally:
            conn.close()


class VaultConnection(http.client.HTTPSConnection):
    """HTTPS to a real vault host name (URL, Host, SNI and certificate check all say `host`),
    with the TCP connection made to 127.0.0.1:port: what curl's --connect-to does."""

    def __init__(self, host, port, context, timeout=10):
        super().__init__(host, 443, context=context, timeout=timeout)
        self._loopback_port = port

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self._loopback_port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)

    def get(self, path, token=None, headers=None):
        """GET; returns (status, headers dict (lower-case names), body bytes)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        self.request("GET", path, headers=h)
        r = self.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def get_json(self, path, token=None, headers=None):
        status, hdrs, body = self.get(path, token, headers)
        return status, hdrs, json.loads(body) if body else None


def get_json(host, port, path, query=None, headers=None, timeout=10):
    """Plain-HTTP GET on loopback; returns (status, decoded JSON or raw text)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if query:
            path += "?" + urllib.parse.urlencode(query)
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw.decode(errors="replace")


def parse_challenge(header):
    """WWW-Authenticate: Bearer k="v", k="v" -> dict (what an SDK extracts)."""
    scheme, _, rest = header.partition(" ")
    out = {"scheme": scheme}
    for part in rest.split(","):
        k, _, v = part.strip().partition("=")
        if k:
            out[k.strip()] = v.strip().strip('"')
    return out


def fake_pfx_b64(size=4096):
    """Opaque base64 bytes standing in for a PFX when the content does not matter."""
    return base64.b64encode(os.urandom(size)).decode()


# The key types Key Vault issues (its policy's kty/key_size/crv) as openssl genpkey options.
KEY_TYPES = {
    "rsa2048": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "rsa3072": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
    "rsa4096": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
    "p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "p521": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
    "p256k": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
}


def _self_signed(d, cn, key, explicit):
    """key.pem (PKCS#8) and crt.pem in d; explicit writes an EC key's curve out in full
    (prime, a, b, base point, order) in the key and in the certificate, as some exporters do."""
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    opts = list(KEY_TYPES[key])
    if explicit:
        if not key.startswith("p"):
            raise ValueError("explicit parameters are for EC keys, not " + key)
        opts += ["-pkeyopt", "ec_param_enc:explicit"]
    k, c = os.path.join(d, "key.pem"), os.path.join(d, "crt.pem")
    subprocess.run(["openssl", "genpkey"] + opts + ["-out", k], **quiet)
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", k, "-days", "365", "-subj",
                    "/CN=" + cn, "-out", c], **quiet)
    fp = subprocess.run(["openssl", "x509", "-in", c, "-noout", "-fingerprint", "-sha1"],
                        check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    return k, c, fp.strip().split("=", 1)[1].replace(":", "").upper()


def make_pfx(cn, key="rsa2048", explicit=False, legacy=False):
    """A self-signed certificate and key as a passwordless PFX, as Key Vault hands back a
    certificate's secret: (base64, SHA-1 thumbprint in upper case). key: one of KEY_TYPES;
    legacy: Key Vault's own algorithms (3DES key, RC2 certificates, SHA-1 MAC)."""
    with tempfile.TemporaryDirectory(prefix="kvvm-pfx-") as d:
        k, c, thumb = _self_signed(d, cn, key, explicit)
        pfx = os.path.join(d, "c.pfx")
        subprocess.run(["openssl", "pkcs12", "-export"] + (["-legacy"] if legacy else []) +
                       ["-inkey", k, "-in", c, "-passout", "pass:", "-out", pfx], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(pfx, "rb") as f:
            b64 = base64.b64encode(f.read()).decode()
    return b64, thumb


def make_pem(cn, key="rsa2048", explicit=False):
    """The same as PEM text, key first as Key Vault converts a PFX: (text, thumbprint)."""
    with tempfile.TemporaryDirectory(prefix="kvvm-pem-") as d:
        k, c, thumb = _self_signed(d, cn, key, explicit)
        with open(k) as kf, open(c) as cf:
            return kf.read() + cf.read(), thumb
