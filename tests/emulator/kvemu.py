#!/usr/bin/python3
"""Key Vault + IMDS + Azure Arc emulator for kvvm's tests (Python standard library only).

One process serves, on loopback ports it picks itself:
  - Key Vault over HTTPS for every vault host name (routed by the Host header), with a server
    certificate issued at start-up by a test CA (openssl CLI);
  - IMDS and Azure Arc (HIMDS) token endpoints over plain HTTP, each on its own port;
  - a control API over HTTP that tests use to add secrets, inject faults, set latency and read
    counters.
The contract, which this file implements, is tests/emulator/PROTOCOL.md: read it first.

Design rules, each learned the hard way (see ../shared/docs/emulator-notes.md): the emulator must
measure the client, not itself. So: TCP_NODELAY (Nagle + delayed ACK would add ~40 ms to every
response), a listen backlog of 1024 (the default 5 makes a burst of connects stall in SYN retries),
TLS handshakes in the connection's own thread (a silent client must not block the accept loop), and
one write per response (headers and body in one TLS record).

Everything a client can make it hold is bounded: request line and headers (http.server's limits),
request bodies, concurrent connections, idle keep-alive time, log and token tables. The process
always ends by itself: after --lifetime seconds, on SIGTERM/SIGINT, or when --parent-pid dies.

Run: /usr/bin/python3 tests/emulator/kvemu.py --dir DIR [--latency-ms N] [--lifetime S]
"""

import argparse
import base64
import collections
import http.server
import itertools
import json
import os
import re
import secrets
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

# ------------------------------------------------------------------------------------------------
# Limits. Each one bounds what a misbehaving client (or test) can make the emulator hold.
# ------------------------------------------------------------------------------------------------

MAX_CONNECTIONS = 4096          # concurrent connections per port; the JS SDK opens ~1,700 at once
LISTEN_BACKLOG = 1024           # a burst of connects must not overflow into SYN retries
HANDSHAKE_TIMEOUT = 10.0        # a client that connects and says nothing is dropped after this
IDLE_TIMEOUT = 60.0             # keep-alive connections idle longer than this are closed
MAX_KV_BODY = 64 * 1024         # Key Vault GETs carry no body; anything larger is refused (413)
MAX_CONTROL_BODY = 24 * 1024 * 1024   # a secret value up to MAX_VALUE, JSON-escaped
MAX_VALUE = 8 * 1024 * 1024     # larger than real Key Vault's 25 KB, so size-cap tests can run
MAX_STORED_BYTES = 256 * 1024 * 1024  # all secret versions together
MAX_LOG = 200_000               # per-request log entries kept (oldest dropped)
MAX_TOKENS = 100_000            # issued tokens remembered (oldest forgotten, then rejected)
MAX_ARC_KEYS = 1000             # outstanding Arc challenge files
ARC_KEY_TTL = 60.0              # HIMDS expects the Basic retry within 60 s
MAX_FAULTS = 1000
MAX_STALL = 600.0               # a stall never outlives the process anyway
THREAD_STACK = 512 * 1024       # thousands of connection threads; the 8 MiB default is waste

# Key Vault clouds: host suffix -> token audience (resource) and the authority in the challenge.
# Source: shared/docs/keyvault.md section 3.5.
CLOUDS = (
    (".vault.azure.net", "https://vault.azure.net", "https://login.microsoftonline.com"),
    (".vault.azure.cn", "https://vault.azure.cn", "https://login.chinacloudapi.cn"),
    (".vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net", "https://login.microsoftonline.us"),
    (".vault.microsoftazure.de", "https://vault.microsoftazure.de", "https://login.microsoftonline.de"),
)
SAN_NAMES = ["*" + c[0] for c in CLOUDS] + ["localhost"]

# api-versions the data plane accepts for GetSecret (stable spec tree, plus the older ones still
# served); an unknown one is a 400, as on the real service.
KV_API_VERSIONS = {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6",
                   "2025-06-01", "2025-07-01"}
IMDS_API_VERSIONS = {"2017-09-01", "2017-12-01", "2018-02-01", "2018-04-02", "2018-10-01",
                     "2019-03-11", "2019-06-01", "2019-08-01", "2019-11-01", "2020-06-01",
                     "2021-02-01", "2021-05-01"}
ARC_API_VERSIONS = {"2019-08-15", "2019-11-01", "2020-06-01", "2021-02-01"}

TOKEN_PATH = "/metadata/identity/oauth2/token"
# Faults that mangle whatever response the request would have had (a 200, a 404, a 401...).
MANGLE_MODES = {"stallbody", "truncate", "badjson", "html", "endlessheaders", "drip"}
SECRET_RE = re.compile(r"^/secrets/([0-9A-Za-z-]{1,127})(?:/([0-9A-Za-z]{0,64}))?/?$")
KV_MODES = {"429", "500", "503", "reset", "stall", "stallbody", "truncate", "badjson", "wrongtype",
            "html", "401loop", "403", "403rbac", "403firewall", "403connection", "404", "disabled",
            "secretdisabled", "oversize", "redirect", "endlessheaders", "drip"}
TOKEN_MODES = {"404", "410", "429", "500", "503", "reset", "stall", "stallbody", "truncate",
               "badjson", "html", "oversize", "403"}

REASONS = {s.value: s.phrase for s in http.HTTPStatus}


def now_s():
    return int(time.time())


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_skiptoken(last):
    """Key Vault's $skiptoken is base64 JSON whose NextMarker names the last secret given
    (upper-cased); ours keeps that idea in a simpler shape."""
    return b64url(json.dumps({"NextMarker": last, "TargetLocation": 0}).encode())


def decode_skiptoken(token):
    """The name a page follows on from: "" without a token, False for a token not ours."""
    if not token:
        return ""
    try:
        marker = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["NextMarker"]
    except (ValueError, KeyError, TypeError):
        return False
    return marker if isinstance(marker, str) else False


def list_item(vault, newest):
    """A SecretItem as Key Vault lists it: the newest version's attributes, no value."""
    attrs = {"enabled": newest["enabled"], "created": newest["created"],
             "updated": newest["updated"], "recoveryLevel": "Recoverable+Purgeable",
             "recoverableDays": 90}
    for k in ("nbf", "exp"):
        if newest[k] is not None:
            attrs[k] = newest[k]
    item = {"id": "https://%s/secrets/%s" % (vault, newest["name"]), "attributes": attrs}
    if newest["contentType"] is not None:
        item["contentType"] = newest["contentType"]
    if newest["managed"] is not None:
        item["managed"] = bool(newest["managed"])
    if newest["tags"]:
        item["tags"] = newest["tags"]
    return item


def cloud_for(host):
    """The (suffix, resource, authority) of a vault host, or None if it is not a vault host."""
    for cloud in CLOUDS:
        suffix = cloud[0]
        label = host[: -len(suffix)] if host.endswith(suffix) else ""
        # Vault names: 3-24 of [-A-Za-z0-9] (keyvault.md 3.1); one label, no dots.
        if re.fullmatch(r"[-a-z0-9]{3,24}", label):
            return cloud
    return None


def norm_resource(resource):
    # AAD treats "https://vault.azure.net" and "https://vault.azure.net/" as one audience.
    return resource.rstrip("/")


# ------------------------------------------------------------------------------------------------
# Test CA and server certificate (openssl CLI: keeps the emulator free of third-party modules).
# ------------------------------------------------------------------------------------------------

def make_certs(directory, key_type):
    """Writes ca.pem, ca.key, server.pem (leaf only), server.key; returns their paths."""
    paths = {n: os.path.join(directory, n) for n in ("ca.pem", "ca.key", "server.pem", "server.key",
                                                   "server.csr", "server.ext")}
    newkey = ["-newkey", "rsa:2048"] if key_type == "rsa" else \
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    def run(args):
        r = subprocess.run(["openssl"] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], r.stdout.decode(errors="replace")))
    # The CA carries the extensions strict verifiers (mbedTLS, node) insist on.
    run(["req", "-x509", "-nodes"] + newkey + ["-keyout", paths["ca.key"], "-out", paths["ca.pem"],
         "-days", "3650", "-subj", "/CN=kvemu test CA %s" % secrets.token_hex(4),
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-addext", "subjectKeyIdentifier=hash"])
    run(["req", "-new", "-nodes"] + newkey + ["-keyout", paths["server.key"],
         "-out", paths["server.csr"], "-subj", "/CN=" + SAN_NAMES[0]])
    with open(paths["server.ext"], "w") as f:
        f.write("subjectAltName=%s,IP:127.0.0.1\n" % ",".join("DNS:" + n for n in SAN_NAMES))
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    run(["x509", "-req", "-in", paths["server.csr"], "-CA", paths["ca.pem"], "-CAkey", paths["ca.key"],
         "-set_serial", "0x" + secrets.token_hex(16), "-days", "30", "-out", paths["server.pem"],
         "-extfile", paths["server.ext"]])
    for n in ("server.csr", "server.ext"):
        os.unlink(paths[n])
    os.chmod(paths["ca.key"], 0o600)
    os.chmod(paths["server.key"], 0o600)
    return paths


# ------------------------------------------------------------------------------------------------
# Shared state. One lock: every critical section is a few dict operations.
# ------------------------------------------------------------------------------------------------

class BadInput(Exception):
    """A control request the emulator refuses (answered 400 with the message)."""


class State:
    def __init__(self, directory, latency_ms):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.dir = directory
        self.arc_dir = os.path.join(directory, "arc-tokens")
        self.tenant = str(uuid.uuid4())
        # Secrets: (vault host, lower-case name) -> list of versions, oldest first. Key Vault
        # names are case-insensitive; the bundle id keeps the name as first stored.
        self.secrets = {}
        self.stored_bytes = 0
        self.faults = []
        self.fault_seq = 0
        self.latency = {"kv": latency_ms / 1000.0, "imds": 0.0, "arc": 0.0}
        # Identities: the system-assigned one, plus user-assigned ones tests register.
        self.system_identity = {"client_id": str(uuid.uuid4()), "object_id": str(uuid.uuid4()),
                                "msi_res_id": None, "kind": "system"}
        self.system_enabled = True
        self.user_identities = []
        self.expires_in = 3599
        self.numbers = False          # IMDS sends expires_in/expires_on as strings; tests can flip
        self.tokens = collections.OrderedDict()   # token -> {aud, exp, identity}
        self.tokens_issued = collections.deque(maxlen=MAX_TOKENS)
        self.arc_keys = collections.OrderedDict()  # file content -> (path, created monotonic)
        self.challenge = {"style": "resource", "resource": None, "authority": None}
        self.reset_stats_locked()

    # --- counters ---------------------------------------------------------------------------

    def reset_stats_locked(self):
        self.requests = 0
        self.by_path = collections.Counter()
        self.by_target = collections.Counter()
        self.by_status = collections.Counter()
        self.tls_handshakes = 0
        self.tls_resumed = 0
        self.tls_failures = 0
        self.connections = {"kv": 0, "imds": 0, "arc": 0}
        self.refused = 0
        self.peak_in_flight = 0
        self.in_flight = getattr(self, "in_flight", 0)   # requests now running stay counted
        self.log = collections.deque(maxlen=MAX_LOG)
        self.log_seq = getattr(self, "log_seq", 0)

    def begin(self, target, entry):
        """Counts a request when it arrives, so a stalled one shows at once (status None)."""
        with self.lock:
            if target == "kv":
                self.in_flight += 1
                if self.in_flight > self.peak_in_flight:
                    self.peak_in_flight = self.in_flight
            self.requests += 1
            self.by_path["%s %s" % (target, entry["path"].split("?", 1)[0])] += 1
            self.by_target[target] += 1
            self.log_seq += 1
            entry["seq"] = self.log_seq
            self.log.append(entry)

    def end(self, target, entry):
        with self.lock:
            if target == "kv":
                self.in_flight -= 1
            self.by_status[str(entry.get("status"))] += 1

    def stats(self, with_log=True, since=0):
        with self.lock:
            out = {"requests": self.requests, "by_path": dict(self.by_path),
                   "by_target": dict(self.by_target), "by_status": dict(self.by_status),
                   "tls_handshakes": self.tls_handshakes, "tls_resumed": self.tls_resumed,
                   "tls_failures": self.tls_failures, "connections": dict(self.connections),
                   "refused_connections": self.refused, "peak_in_flight": self.peak_in_flight,
                   "in_flight": self.in_flight, "tokens_issued": list(self.tokens_issued)}
            if with_log:
                # dict() copies in one C call: safe while the handler still adds keys.
                out["log"] = [dict(e) for e in self.log if e["seq"] > since]
            return out

    # --- secrets ----------------------------------------------------------------------------

    def add_secret(self, body):
        vault = str(body.get("vault", "")).lower()
        if cloud_for(vault) is None:
            raise BadInput("vault must be a Key Vault host, e.g. myvault.vault.azure.net")
        name = str(body.get("name", ""))
        if not re.fullmatch(r"[0-9A-Za-z-]{1,127}", name):
            raise BadInput("name must match ^[0-9a-zA-Z-]{1,127}$")
        value = body.get("value")
        if not isinstance(value, str):
            raise BadInput("value must be a string")
        if len(value) > MAX_VALUE:
            raise BadInput("value larger than %d bytes" % MAX_VALUE)
        for k in ("nbf", "exp"):
            if body.get(k) is not None and not isinstance(body.get(k), int):
                raise BadInput("%s must be an integer (Unix seconds) or null" % k)
        if body.get("version") is not None and not re.fullmatch(r"[0-9a-f]{32}", str(body["version"])):
            raise BadInput("version must be 32 lower-case hex digits")
        tags = body.get("tags") or {}
        if not isinstance(tags, dict):
            raise BadInput("tags must be an object")
        created = now_s()
        version = {
            "version": body.get("version") or uuid.uuid4().hex,
            "name": name,
            "value": value,
            "contentType": body.get("contentType", "application/x-pkcs12"),
            "enabled": bool(body.get("enabled", True)),
            "nbf": body.get("nbf"),
            "exp": body.get("exp"),
            "created": int(body.get("created", created)),
            "updated": int(body.get("created", created)),
            "kid": body.get("kid"),
            "managed": body.get("managed"),
            "tags": {str(k): str(v) for k, v in tags.items()},
        }
        if version["kid"] is None and body.get("managed"):
            version["kid"] = "https://%s/keys/%s/%s" % (vault, name, version["version"])
        with self.lock:
            if self.stored_bytes + len(value) > MAX_STORED_BYTES:
                raise BadInput("emulator holds %d bytes of secrets already" % self.stored_bytes)
            versions = self.secrets.setdefault((vault, name.lower()), [])
            if any(v["version"] == version["version"] for v in versions):
                raise BadInput("version exists")
            versions.append(version)
            self.stored_bytes += len(value)
        return version

    def list_page(self, vault, after, size):
        """Up to size items of vault's secrets whose upper-cased names sort after `after`
        ("" for the first page); the last name given and whether more follow."""
        with self.lock:
            names = sorted((vs[-1]["name"].upper(), vs[-1]) for (v, _), vs in self.secrets.items()
                           if v == vault and vs)
        rest = [(key, newest) for key, newest in names if key > after]
        items = [list_item(vault, newest) for _, newest in rest[:size]]
        last = rest[:size][-1][0] if items else after
        return items, last, len(rest) > size

    def update_secret(self, body):
        """Key Vault's PATCH of a version's attributes: enabled, and `updated` set to now."""
        vault = str(body.get("vault", "")).lower()
        name = str(body.get("name", ""))
        if not isinstance(body.get("enabled"), bool):
            raise BadInput("enabled must be true or false")
        with self.lock:
            versions = self.secrets.get((vault, name.lower()))
            want = body.get("version")
            found = [v for v in versions or [] if want in (None, "", v["version"])]
            if not found:
                raise BadInput("no such secret or version")
            target = found[-1]
            target["enabled"] = body["enabled"]
            target["updated"] = int(body.get("updated", now_s()))
            return dict(target, value=None)

    def find_secret(self, vault, name, version):
        """The version asked for (newest when version is empty), or None."""
        with self.lock:
            versions = self.secrets.get((vault, name.lower()))
            if not versions:
                return None
            if not version:
                return versions[-1]
            for v in versions:
                if v["version"] == version.lower():
                    return v
            return None

    # --- faults -----------------------------------------------------------------------------

    def add_fault(self, body):
        target = body.get("target", "kv")
        if target not in ("kv", "imds", "arc"):
            raise BadInput("target must be kv, imds or arc")
        mode = str(body.get("mode", ""))
        allowed = KV_MODES if target == "kv" else (TOKEN_MODES | ({"410"} if target == "imds" else set()))
        if mode not in allowed:
            raise BadInput("mode %r not served for %s; one of %s" % (mode, target, sorted(allowed)))
        count = body.get("count")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise BadInput("count must be a positive integer")
        duration = body.get("duration")
        if duration is not None and not isinstance(duration, (int, float)):
            raise BadInput("duration must be seconds")
        fault = dict(body, target=target, mode=mode)
        fault["remaining"] = count
        fault["until"] = time.monotonic() + duration if duration is not None else None
        fault["hits"] = 0
        with self.lock:
            if len(self.faults) >= MAX_FAULTS:
                raise BadInput("too many faults; DELETE /faults first")
            self.fault_seq += 1
            fault["id"] = self.fault_seq
            self.faults.append(fault)
        return fault["id"]

    def take_fault(self, target, secret=None, vault=None, authed=True, identity=None, op=None):
        """The first active fault matching this request, its count consumed; or None.
        identity: client_id of the token's identity (kv) or of the one asked for (imds, arc).
        op: "get" or "list" for kv (a fault with "op" set matches only that operation)."""
        with self.lock:
            t = time.monotonic()
            for f in self.faults:
                if f["target"] != target:
                    continue
                if f["until"] is not None and t >= f["until"]:
                    continue
                if f["remaining"] is not None and f["remaining"] <= 0:
                    continue
                if f.get("secret") is not None and (secret or "").lower() != str(f["secret"]).lower():
                    continue
                if f.get("vault") is not None and vault != str(f["vault"]).lower():
                    continue
                if f.get("identity") is not None and (identity or "").lower() != str(f["identity"]).lower():
                    continue
                if f.get("op") is not None and f["op"] != op:
                    continue
                # Key Vault faults apply to authenticated requests unless asked otherwise, so a
                # count means the same for a client that probes for the challenge first and for
                # one that sends its token straight away.
                if target == "kv" and not authed and not f.get("beforeAuth"):
                    continue
                if target == "kv" and authed and f.get("beforeAuth"):
                    continue
                if f.get("skip"):
                    f["skip"] -= 1         # let this many matching requests through first
                    continue
                if f["remaining"] is not None:
                    f["remaining"] -= 1
                f["hits"] += 1
                return dict(f)
            return None

    # --- identities and tokens --------------------------------------------------------------

    def find_identity(self, query, allow_user):
        """Identity selected by IMDS query parameters, or raises LookupError(message)."""
        keys = [k for k in ("client_id", "object_id", "msi_res_id", "mi_res_id") if query.get(k)]
        if len(keys) > 1:
            raise LookupError("Multiple identity parameters specified")
        with self.lock:
            if not keys:
                if not self.system_enabled:
                    raise LookupError("Identity not found")
                return self.system_identity
            if not allow_user:
                raise LookupError("Azure Arc supports only the system-assigned identity")
            field = "msi_res_id" if keys[0] == "mi_res_id" else keys[0]
            want = query[keys[0]]
            for ident in self.user_identities + ([self.system_identity] if self.system_enabled else []):
                have = ident.get(field)
                if have and (have.lower() == want.lower()):
                    return ident
        raise LookupError("Identity not found")

    def mint(self, resource, identity, source):
        t = now_s()
        exp = t + self.expires_in
        header = {"typ": "JWT", "alg": "RS256", "kid": "kvemu"}
        claims = {"aud": resource, "iss": "https://sts.windows.net/%s/" % self.tenant, "iat": t,
                  "nbf": t, "exp": exp, "oid": identity["object_id"], "tid": self.tenant,
                  "appid": identity["client_id"], "idtyp": "app", "src": source,
                  "jti": secrets.token_hex(8)}
        if identity.get("msi_res_id"):
            claims["xms_mirid"] = identity["msi_res_id"]
        # Looks like a JWT; the signature is random, so every token is unique and only a token
        # this process issued is accepted (looked up, never verified).
        compact = {"separators": (",", ":")}
        token = ".".join([b64url(json.dumps(header, **compact).encode()),
                          b64url(json.dumps(claims, **compact).encode()),
                          b64url(os.urandom(64))])
        with self.lock:
            self.tokens[token] = {"aud": norm_resource(resource), "exp": exp, "identity": identity}
            while len(self.tokens) > MAX_TOKENS:
                self.tokens.popitem(last=False)
            self.tokens_issued.append(token)
            expires_in = self.expires_in
            numbers = self.numbers
        num = (lambda n: n) if numbers else str
        body = {"access_token": token, "refresh_token": "", "expires_in": num(expires_in),
                "expires_on": num(exp), "ext_expires_in": num(expires_in), "not_before": num(t),
                "resource": resource, "token_type": "Bearer"}
        if source == "imds":
            body["client_id"] = identity["client_id"]
        return body

    def check_token(self, token):
        with self.lock:
            return self.tokens.get(token)

    def new_arc_key(self):
        content = secrets.token_hex(32)
        path = os.path.join(self.arc_dir, "%s.key" % uuid.uuid4().hex)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        with self.lock:
            self.arc_keys[content] = (path, time.monotonic())
            expired = [c for c, (p, t) in self.arc_keys.items()
                       if time.monotonic() - t > ARC_KEY_TTL]
            while len(self.arc_keys) - len(expired) > MAX_ARC_KEYS:
                expired.append(next(c for c in self.arc_keys if c not in expired))
            old = [self.arc_keys.pop(c)[0] for c in expired]
        for p in old:
            try:
                os.unlink(p)
            except OSError:
                pass
        return path

    def arc_key_ok(self, content):
        with self.lock:
            entry = self.arc_keys.get(content)
            return entry is not None and time.monotonic() - entry[1] <= ARC_KEY_TTL


# ------------------------------------------------------------------------------------------------
# HTTP machinery shared by the four ports.
# ------------------------------------------------------------------------------------------------

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Threaded server on 127.0.0.1 with a deep backlog and a bound on live connections."""
    daemon_threads = True          # connection threads never keep the process alive
    request_queue_size = LISTEN_BACKLOG
    allow_reuse_address = True

    def __init__(self, handler, state, target, tls_context=None):
        self.state = state
        self.target = target
        self.tls_context = tls_context
        self.live = 0
        self.live_lock = threading.Lock()
        self.conn_ids = itertools.count(1)    # next() is atomic under the GIL
        super().__init__(("127.0.0.1", 0), handler)

    def server_bind(self):
        # HTTPServer.server_bind would resolve the host name (getfqdn): a DNS wait for nothing.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls_context is not None:
            # No handshake here: it runs in the connection's thread (KvHandler.setup), so a client
            # that connects and stays silent cannot block the accept loop.
            sock = self.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request(self, request, client_address):
        with self.live_lock:
            full = self.live >= MAX_CONNECTIONS
            if not full:
                self.live += 1
        if full:
            with self.state.lock:
                self.state.refused += 1
            self.shutdown_request(request)
            return
        if self.target != "control":
            with self.state.lock:
                self.state.connections[self.target] += 1
        try:
            super().process_request(request, client_address)    # starts the connection's thread
        except BaseException:
            with self.live_lock:
                self.live -= 1
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.live_lock:
                self.live -= 1

    def handle_error(self, request, client_address):
        # Clients resetting or timing out is the normal life of a test server; anything else is
        # a bug in this file and is printed.
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive
    disable_nagle_algorithm = True      # else ~40 ms per response (Nagle + delayed ACK)
    timeout = IDLE_TIMEOUT              # idle keep-alive connections end
    server_version = "kvemu"
    sys_version = ""
    target = "?"
    max_body = MAX_KV_BODY

    @property
    def state(self):
        return self.server.state

    def log_message(self, fmt, *args):  # the per-request log is in State; stderr stays quiet
        pass

    # --- responses: one write per response ---------------------------------------------------

    def reply(self, status, body=b"", ctype="application/json; charset=utf-8", headers=(),
              send_bytes=None, content_length=None, label=None):
        """Writes status line, headers and body with one sendall.

        send_bytes < len(body) sends only that much of the body (the truncate fault);
        content_length overrides the header (the oversize fault streams its own body);
        label replaces the status in the log (e.g. "truncate").
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
        fault, self.mangle = self.mangle, None
        if fault is not None and self.apply_transport_fault(fault, status, body, ctype, headers):
            return
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
                 "Date: " + self.date_time_string(), "Server: kvemu"]
        if ctype:
            lines.append("Content-Type: " + ctype)
        lines.append("Content-Length: %d" % (len(body) if content_length is None else content_length))
        lines.extend("%s: %s" % h for h in headers)
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command == "HEAD":
            body = b""
        elif send_bytes is not None:
            body = body[:send_bytes]
        # Counters first: a client that reads this answer and then asks /stats must see it.
        self.settle(label or status)
        self.wfile.write(head + body)

    def reply_json(self, status, obj, headers=()):
        self.reply(status, json.dumps(obj, separators=(",", ":")), headers=headers)

    def reset(self):
        """Ends the connection with a TCP RST (SO_LINGER 0), no TLS close_notify, no response."""
        self.close_connection = True
        self.settle("reset")
        sock = self.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The rfile holds a reference to the socket; the fd (and the RST) goes only when both close.
        self.rfile.close()
        sock.close()

    def stall(self, seconds, after=b""):
        """Sends `after` (maybe nothing), waits, then drops the connection: a server gone silent."""
        self.close_connection = True
        self.entry["status"] = "stall"
        if after:
            self.wfile.write(after)
        self.state.stop.wait(min(float(seconds), MAX_STALL))

    def read_body(self):
        """Reads a bounded Content-Length body; answers and returns None when refused."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self.reply_json(411, self.error_body("LengthRequired", "chunked bodies are not accepted"))
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.max_body:
            self.close_connection = True    # the unread body would be parsed as the next request
            self.reply_json(413, self.error_body("RequestTooLarge", "body over %d bytes" % self.max_body))
            return None
        return self.rfile.read(length) if length else b""

    def error_body(self, code, message):
        return {"error": {"code": code, "message": message}}

    # --- one request -----------------------------------------------------------------------

    def serve(self):
        self.mangle = None      # a fault that mangles whatever response this request gets
        self.settled = False
        self.entry = {"t": round(time.time(), 6), "target": self.target, "method": self.command,
                      "path": self.path, "status": None, "auth": "none"}
        self.t0 = time.monotonic()
        self.state.begin(self.target, self.entry)
        try:
            self.route()
        finally:
            self.settle(self.entry["status"])     # no answer sent (stall, error): settle now

    def settle(self, status):
        """Records the request's outcome once: status, duration, counters, end of in-flight."""
        if self.settled:
            return
        self.settled = True
        self.entry["status"] = status
        self.entry["ms"] = round((time.monotonic() - self.t0) * 1000.0, 3)
        self.state.end(self.target, self.entry)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = serve

    def route(self):
        raise NotImplementedError

    def delay(self):
        seconds = self.state.latency.get(self.target, 0.0)
        if seconds > 0:
            self.state.stop.wait(seconds)

    def apply_transport_fault(self, fault, status, payload, ctype="application/json; charset=utf-8",
                              headers=()):
        """Sends (status, payload) as the fault mangles it; returns False for non-transport modes."""
        mode = fault["mode"] if fault else None
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if mode == "reset":
            self.reset()
        elif mode == "stall":
            self.stall(fault.get("seconds", 60))
        elif mode == "stallbody":
            head_and_half = self.head_bytes(status, body, ctype, headers) + body[: len(body) // 2]
            self.stall(fault.get("seconds", 60), after=head_and_half)
        elif mode == "truncate":
            self.close_connection = True
            self.reply(status, body, ctype=ctype, headers=headers, send_bytes=len(body) // 2,
                       label="truncate")
        elif mode == "badjson":
            self.reply(status, body[: max(1, len(body) // 2)] + b"\x00}{", ctype=ctype, headers=headers)
        elif mode == "html":
            self.reply(status, b"<html><body><h1>Service Unavailable</h1></body></html>",
                       ctype="text/html", headers=headers)
        elif mode == "oversize":
            self.oversize(int(fault.get("bytes", 64 * 1024 * 1024)))
        elif mode == "endlessheaders":
            self.endless_headers(status)
        elif mode == "drip":
            self.drip(self.head_bytes(status, body, ctype, headers) + body,
                      float(fault.get("interval", 0.05)))
        else:
            return False
        return True

    def endless_headers(self, status):
        """A status line, then header lines that never end (1 KB every 20 ms) until the client
        gives up, the emulator stops, or MAX_STALL passes."""
        self.close_connection = True
        self.settle("endlessheaders")
        end = time.monotonic() + MAX_STALL
        try:
            self.wfile.write(("HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Status"))).encode())
            n = 0
            while time.monotonic() < end and not self.state.stop.wait(0.02):
                n += 1
                self.wfile.write(b"X-Pad-%d: %s\r\n" % (n, b"a" * 1000))
                self.wfile.flush()
        except OSError:
            pass   # the client hung up: what it should do

    def drip(self, data, interval):
        """The whole answer, one byte every `interval` seconds (a slow-loris server)."""
        self.close_connection = True
        self.settle("drip")
        try:
            for i in range(len(data)):
                if self.state.stop.wait(interval):
                    return
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
        except OSError:
            pass

    def head_bytes(self, status, body, ctype, headers):
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")), "Content-Type: " + ctype,
                 "Content-Length: %d" % len(body)] + ["%s: %s" % h for h in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def oversize(self, total):
        """A 200 whose JSON body is `total` bytes, streamed so the emulator never holds it."""
        total = max(total, 64)
        self.close_connection = True
        prefix = b'{"value":"'
        suffix = b'"}'
        self.reply(200, b"", content_length=total, send_bytes=0, label="oversize")
        try:
            self.wfile.write(prefix)
            left = total - len(prefix) - len(suffix)
            chunk = b"A" * 65536
            while left > 0 and not self.state.stop.is_set():
                n = min(left, len(chunk))
                self.wfile.write(chunk[:n])
                left -= n
            self.wfile.write(suffix)
        except OSError:
            pass          # the client gave up at its size cap: that is the point


# ------------------------------------------------------------------------------------------------
# Key Vault (HTTPS)
# ------------------------------------------------------------------------------------------------

class KvHandler(Handler):
    target = "kv"

    def setup(self):
        # The TLS handshake, in this connection's thread, with its own timeout.
        sock = self.request
        sock.settimeout(HANDSHAKE_TIMEOUT)
        self.handshake_ok = False
        try:
            sock.do_handshake()
            self.handshake_ok = True
        except (ssl.SSLError, OSError):
            pass
        with self.server.state.lock:
            if self.handshake_ok:
                self.server.state.tls_handshakes += 1
                if sock.session_reused:
                    self.server.state.tls_resumed += 1
            else:
                self.server.state.tls_failures += 1
        self.conn_id = next(self.server.conn_ids)
        super().setup()

    def handle(self):
        if self.handshake_ok:
            super().handle()

    def challenge_header(self, cloud):
        with self.state.lock:
            cfg = dict(self.state.challenge)
        resource = cfg["resource"] or cloud[1]
        authority = "%s/%s" % (cfg["authority"] or cloud[2], self.state.tenant)
        if cfg["style"] == "scope":
            return 'Bearer authorization="%s", scope="%s/.default"' % (authority, resource)
        if cfg["style"] == "both":
            return 'Bearer authorization="%s", resource="%s", scope="%s/.default"' % (
                authority, resource, resource)
        return 'Bearer authorization="%s", resource="%s"' % (authority, resource)

    def unauthorized(self, cloud, message):
        self.reply_json(401, self.error_body("Unauthorized", message),
                        headers=[("WWW-Authenticate", self.challenge_header(cloud)),
                                 ("x-ms-request-id", str(uuid.uuid4()))])

    def kv_error(self, status, code, message, inner=None, headers=()):
        body = self.error_body(code, message)
        if inner:
            body["error"]["innererror"] = {"code": inner}
        self.reply_json(status, body, headers=list(headers) + [("x-ms-request-id", str(uuid.uuid4()))])

    def route(self):
        e = self.entry
        e["conn"] = self.conn_id
        sni = getattr(self.connection, "kvemu_sni", None)
        if sni:
            e["sni"] = sni
        host = (self.headers.get("Host") or "").strip().lower()
        host = re.sub(r":\d+$", "", host)
        e["host"] = host
        if self.read_body() is None:
            return
        self.delay()
        cloud = cloud_for(host)
        if cloud is None:
            return self.kv_error(400, "BadParameter", "Host %r is not a Key Vault host" % host[:100])
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        m = SECRET_RE.match(url.path)
        name = m.group(1) if m else None
        op = "list" if url.path in ("/secrets", "/secrets/") else "get"
        e["op"] = op

        # Authentication first, as on the service: any request without a valid token is
        # challenged, whatever it asks for.
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        is_bearer = scheme.lower() == "bearer" and token
        e["auth"] = "bearer" if is_bearer else ("none" if not auth else scheme.lower()[:16])
        if not is_bearer:
            fault = self.state.take_fault("kv", name, host, authed=False, op=op)
            if fault:
                e["fault"] = fault["mode"]
                if self.kv_fault(fault, cloud, host, name, query):
                    return
                self.mangle = fault if fault["mode"] in MANGLE_MODES else None
            return self.unauthorized(cloud, "AKV10000: Request is missing a Bearer or PoP token.")
        info = self.state.check_token(token)
        if info is None:
            return self.unauthorized(cloud, "AKV10032: Invalid token: not issued by this emulator.")
        e["identity"] = info["identity"]["client_id"]
        if info["exp"] <= now_s():
            return self.unauthorized(cloud, "AKV10021: Token expired at %d." % info["exp"])
        if info["aud"] != cloud[1]:
            return self.unauthorized(cloud, "AKV10022: Invalid audience. Expected %s, found: %s."
                                     % (cloud[1], info["aud"]))

        fault = self.state.take_fault("kv", name, host, authed=True,
                                      identity=info["identity"]["client_id"], op=op)
        if fault:
            e["fault"] = fault["mode"]
            if self.kv_fault(fault, cloud, host, name, query):
                return
            self.mangle = fault if fault["mode"] in MANGLE_MODES else None
        if op == "list":
            return self.list_secrets(host, query)
        self.get_secret(host, m, query, fault)

    def refusal(self, mode, host, name):
        """A 403 as Key Vault words it (inner code, message with its CRLF-separated lines) for
        an access policy without "get" (403), an RBAC vault without a role (403rbac), the
        vault's firewall (403firewall) and a vault reachable by private endpoint only
        (403connection)."""
        vault = host.split(".")[0]
        caller = "appid=%s;oid=%s;iss=https://sts.windows.net/%s/" % (
            self.entry.get("identity"), uuid.uuid4(), self.state.tenant)
        where = "Vault: %s;location=eastus" % vault
        if mode == "403rbac":
            return "ForbiddenByRbac", "\r\n".join([
                "Caller is not authorized to perform action on resource.",
                "If role assignments, deny assignments or role definitions were changed recently, "
                "please observe propagation time.", "Caller: " + caller,
                "Action: 'Microsoft.KeyVault/vaults/secrets/%s'" % (
                    "readMetadata/action" if self.entry.get("op") == "list" else "getSecret/action"),
                "Resource: '/subscriptions/%s/resourcegroups/rg1/providers/microsoft.keyvault/"
                "vaults/%s/secrets/%s'" % (uuid.uuid4(), vault, name.lower()),
                "Assignment: (not found)", "DenyAssignmentId: null",
                "DecisionReason: 'DeniedWithNoValidRBAC' ", where, ""])
        if mode == "403firewall":
            return "ForbiddenByFirewall", "\r\n".join([
                "Client address is not authorized and caller is not a trusted service.",
                "Client address: 20.1.2.3", "Caller: " + caller, where])
        if mode == "403connection":
            return "ForbiddenByConnection", "\r\n".join([
                "Public network access is disabled and request is not from a trusted service "
                "nor via an approved private link.", "Caller: " + caller, where])
        return "AccessDenied", (
            "The user, group or application 'appid=%s;iss=https://sts.windows.net/%s/' does not "
            "have secrets %s permission on key vault '%s;location=eastus'. For help resolving "
            "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
            % (self.entry.get("identity"), self.state.tenant, self.entry.get("op", "get"), vault))

    def kv_fault(self, fault, cloud, host, name, query):
        """Answers a status-type fault; returns False for faults applied to the content."""
        mode = fault["mode"]
        if mode == "429":
            headers = []
            if fault.get("retryAfter") is not None:
                headers.append(("Retry-After", str(fault["retryAfter"])))
            self.kv_error(429, "Throttled", "Request was not processed because too many requests "
                          "were received. Reason: VaultRequestTypeLimitReached", headers=headers)
        elif mode in ("500", "503"):
            code = "InternalServerError" if mode == "500" else "ServiceUnavailable"
            self.kv_error(int(mode), code, "Injected %s." % mode)
        elif mode == "401loop":
            self.unauthorized(cloud, "AKV10000: Request is missing a Bearer or PoP token.")
        elif mode.startswith("403"):
            inner, message = self.refusal(mode, host, name)
            self.kv_error(403, "Forbidden", fault.get("message", message), inner=inner)
        elif mode == "404":
            self.secret_not_found(name)
        elif mode == "secretdisabled":
            self.kv_error(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                          inner="SecretDisabled")
        elif mode in ("reset", "stall", "oversize"):
            self.apply_transport_fault(fault, 0, b"")
        elif mode == "redirect":
            self.reply(302, b"", ctype=None,
                       headers=[("Location", fault.get("location", "https://elsewhere.example.com/"))])
        else:
            return False       # content faults (disabled, wrongtype) and response manglers
        return True

    def check_api_version(self, query):
        """The api-version error, answered; or False when the version is served."""
        version = query.get("api-version")
        if not version:
            self.kv_error(400, "BadParameter", "The 'api-version' query parameter is missing.")
            return True
        if version not in KV_API_VERSIONS:
            self.kv_error(400, "BadParameter", "The specified version (%s) is not recognized. "
                          "Consider using the latest supported version (2025-07-01)." % version[:32])
            return True
        return False

    def list_secrets(self, host, query):
        """GET /secrets: one page of the vault's secrets, each described by its newest version
        (no value, no version in the id), at most maxresults (1-25, default 25), in the order
        of their upper-cased names; nextLink carries a $skiptoken naming the last one given, so
        a page follows on from a name, not from a position (PROTOCOL.md, Listing)."""
        if self.command not in ("GET", "HEAD"):
            return self.kv_error(405, "MethodNotAllowed", "The emulator serves GET on secrets only.")
        if self.check_api_version(query):
            return
        size = query.get("maxresults", "25")
        if not re.fullmatch(r"[0-9]{1,3}", size) or not 1 <= int(size) <= 25:
            return self.kv_error(400, "BadParameter", "invalid maxresults. maxresults must be "
                                 "between 1 and 25 (%s)" % size[:16])
        after = decode_skiptoken(query.get("$skiptoken"))
        if after is False:
            return self.kv_error(400, "BadParameter", "The $skiptoken is not valid.")
        items, last, more = self.state.list_page(host, after, int(size))
        page = {"value": items, "nextLink": None}
        if more:
            page["nextLink"] = "https://%s:443/secrets?api-version=%s&$skiptoken=%s" % (
                host, query["api-version"], encode_skiptoken(last))
        self.reply_json(200, page, headers=[("x-ms-request-id", str(uuid.uuid4()))])

    def secret_not_found(self, name):
        self.kv_error(404, "SecretNotFound",
                      "A secret with (name/id) %s was not found in this key vault. If you recently "
                      "deleted this secret you may be able to recover it using the correct recovery "
                      "command. For help resolving this issue, please see "
                      "https://go.microsoft.com/fwlink/?linkid=2125182" % (name or "?"))

    def get_secret(self, host, m, query, fault):
        if self.command not in ("GET", "HEAD"):
            return self.kv_error(405, "MethodNotAllowed", "The emulator serves GET on secrets only.")
        if self.check_api_version(query):
            return
        if "outContentType" in query:
            # 2025-07-01's server-side PFX->PEM conversion; refusing loudly beats a silent PFX.
            return self.kv_error(400, "BadParameter", "outContentType is not supported by the emulator.")
        if m is None:
            return self.kv_error(404, "NotFound", "The emulator serves GET /secrets/<name>[/<version>].")
        name, ver = m.group(1), m.group(2) or ""
        secret = self.state.find_secret(host, name, ver)
        if secret is None:
            return self.secret_not_found(name + ("/" + ver if ver else ""))
        self.entry["version"] = secret["version"]
        mode = fault["mode"] if fault else None
        if not secret["enabled"] and mode != "disabled":
            # The real service refuses to return a disabled secret's value.
            return self.kv_error(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                                 inner="SecretDisabled")
        attrs = {"enabled": secret["enabled"] and mode != "disabled", "created": secret["created"],
                 "updated": secret["updated"], "recoveryLevel": "Recoverable+Purgeable",
                 "recoverableDays": 90}
        if secret["nbf"] is not None:
            attrs["nbf"] = secret["nbf"]
        if secret["exp"] is not None:
            attrs["exp"] = secret["exp"]
        bundle = {"value": secret["value"],
                  "id": "https://%s/secrets/%s/%s" % (host, secret["name"], secret["version"]),
                  "attributes": attrs, "tags": secret["tags"]}
        ctype = secret["contentType"]
        if mode == "wrongtype":
            ctype = fault.get("contentType", "text/plain")
        if ctype is not None:
            bundle["contentType"] = ctype
        if secret["kid"]:
            bundle["kid"] = secret["kid"]
        if secret["managed"] is not None:
            bundle["managed"] = bool(secret["managed"])
        headers = [("x-ms-request-id", str(uuid.uuid4())), ("x-ms-keyvault-service-version", "1.9.0.0")]
        self.reply_json(200, bundle, headers=headers)


# ------------------------------------------------------------------------------------------------
# IMDS and Arc (HTTP)
# ------------------------------------------------------------------------------------------------

class TokenHandler(Handler):
    """IMDS (target "imds") and Arc HIMDS (target "arc"): same path, different authentication."""

    def token_error(self, status, error, description, headers=()):
        self.reply_json(status, {"error": error, "error_description": description}, headers=headers)

    def route(self):
        e = self.entry
        if self.read_body() is None:
            return
        self.delay()
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if self.command != "GET":
            return self.token_error(405, "invalid_request", "GET only")
        if url.path not in (TOKEN_PATH, TOKEN_PATH + "/"):
            # A trailing slash is accepted: MSAL (the JS SDK) canonicalises the endpoint to end in
            # one when AZURE_POD_IDENTITY_AUTHORITY_HOST is set. The bare /metadata/identity form
            # is not served: clients must append /oauth2/token.
            return self.token_error(404, "not_found", "No route for %s" % url.path[:200])
        if self.headers.get("X-Forwarded-For") is not None:
            # IMDS refuses requests that went through a proxy.
            return self.token_error(400, "invalid_request", "Request was forwarded by a proxy")
        if self.headers.get("Metadata") != "true":
            return self.token_error(400, "invalid_request", "Required metadata header not specified")
        api = query.get("api-version")
        versions = IMDS_API_VERSIONS if self.target == "imds" else ARC_API_VERSIONS
        if not api:
            return self.token_error(400, "invalid_request", "Required query variable 'api-version' is missing")
        if api not in versions:
            return self.token_error(400, "invalid_request", "Invalid version: %s" % api[:32])
        e["resource"] = query.get("resource")

        if self.target == "arc":
            # HIMDS: no Authorization -> 401 naming a fresh key file; Basic <file content> -> token.
            auth = self.headers.get("Authorization") or ""
            scheme, _, content = auth.partition(" ")
            e["auth"] = "basic" if scheme.lower() == "basic" else ("none" if not auth else scheme.lower()[:16])
            if not (scheme.lower() == "basic" and self.state.arc_key_ok(content.strip())):
                path = self.state.new_arc_key()
                return self.token_error(401, "unauthorized", "Unauthorized request",
                                        headers=[("WWW-Authenticate", "Basic realm=%s" % path)])

        resource = query.get("resource")
        if not resource:
            return self.token_error(400, "invalid_request", "Required query variable 'resource' is missing")
        try:
            identity = self.state.find_identity(query, allow_user=(self.target == "imds"))
        except LookupError as exc:
            return self.token_error(400, "invalid_request", str(exc))
        e["identity"] = identity["client_id"]

        fault = self.state.take_fault(self.target, identity=identity["client_id"])
        if fault:
            e["fault"] = fault["mode"]
            if self.token_fault(fault):
                return
            self.mangle = fault if fault["mode"] in MANGLE_MODES else None
        parsed = urllib.parse.urlsplit(resource)
        if parsed.scheme != "https" or not parsed.hostname:
            return self.token_error(400, "invalid_resource",
                                    "AADSTS500011: The resource principal named %s was not found in the "
                                    "tenant named %s." % (resource[:200], self.state.tenant))
        body = self.state.mint(resource, identity, self.target)
        self.reply_json(200, body)

    def token_fault(self, fault):
        mode = fault["mode"]
        headers = []
        if fault.get("retryAfter") is not None:
            headers.append(("Retry-After", str(fault["retryAfter"])))
        messages = {
            "404": ("not_found", "Identity not found"),   # IMDS updating / identity not yet assigned
            "410": ("gone", "IMDS is upgrading"),          # host agent upgrade: retry >= 70 s
            "429": ("too_many_requests", "Too many requests"),
            "403": ("forbidden", "Forbidden"),
            "500": ("unknown", "Failed to retrieve token from the Active directory."),
            "503": ("service_unavailable", "Service unavailable"),
        }
        if mode in messages:
            self.token_error(int(mode), messages[mode][0], messages[mode][1], headers=headers)
            return True
        if mode in ("reset", "stall", "oversize"):
            self.apply_transport_fault(fault, 0, b"")
            return True
        return False


class ImdsHandler(TokenHandler):
    target = "imds"


class ArcHandler(TokenHandler):
    target = "arc"


# ------------------------------------------------------------------------------------------------
# Control API (HTTP, JSON)
# ------------------------------------------------------------------------------------------------

class ControlHandler(Handler):
    target = "control"
    max_body = MAX_CONTROL_BODY

    def serve(self):
        # Control traffic is not counted: stats describe the client under test.
        self.entry = {}
        self.mangle = None
        self.settled = True
        try:
            self.route()
        except BadInput as exc:
            self.reply_json(400, {"error": str(exc)})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = serve

    def json_body(self):
        raw = self.read_body()
        if raw is None:
            return None
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise BadInput("body is not JSON: %s" % exc)
        if not isinstance(body, dict):
            raise BadInput("body must be a JSON object")
        return body

    def route(self):
        st = self.state
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        path = url.path.rstrip("/") or "/"
        body = self.json_body()
        if body is None:
            return
        cmd = (self.command, path)
        if cmd == ("GET", "/stats"):
            return self.reply_json(200, st.stats(with_log=query.get("log", "1") != "0",
                                                 since=int(query.get("since", 0) or 0)))
        if cmd == ("POST", "/stats/reset"):
            with st.lock:
                st.reset_stats_locked()
            return self.reply_json(200, {})
        if cmd == ("POST", "/secrets"):
            v = st.add_secret(body)
            return self.reply_json(200, {"version": v["version"],
                                         "id": "https://%s/secrets/%s/%s" % (
                                             str(body["vault"]).lower(), v["name"], v["version"])})
        if cmd == ("POST", "/secrets/update"):
            return self.reply_json(200, st.update_secret(body))
        if cmd == ("GET", "/secrets"):
            with st.lock:
                listing = {"%s/%s" % k: [v["version"] for v in vs] for k, vs in st.secrets.items()}
            return self.reply_json(200, listing)
        if cmd == ("POST", "/faults"):
            return self.reply_json(200, {"id": st.add_fault(body)})
        if cmd == ("GET", "/faults"):
            with st.lock:
                faults = [dict(f, until=None) for f in st.faults]
            return self.reply_json(200, {"faults": faults})
        if cmd == ("DELETE", "/faults"):
            with st.lock:
                st.faults = []
            return self.reply_json(200, {})
        if cmd == ("POST", "/latency"):
            target = body.get("target", "kv")
            ms = body.get("ms", 0)
            if target not in ("kv", "imds", "arc") or not isinstance(ms, (int, float)) or not 0 <= ms <= 60000:
                raise BadInput("latency: {\"ms\": 0..60000, \"target\": \"kv\"|\"imds\"|\"arc\"}")
            with st.lock:
                st.latency[target] = ms / 1000.0
            return self.reply_json(200, {})
        if cmd == ("POST", "/identity"):
            return self.reply_json(200, self.identity_config(body))
        if cmd == ("POST", "/identities"):
            ident = {"client_id": str(body.get("client_id") or uuid.uuid4()),
                     "object_id": str(body.get("object_id") or uuid.uuid4()),
                     "msi_res_id": str(body.get("msi_res_id") or
                                       "/subscriptions/%s/resourceGroups/rg/providers/"
                                       "Microsoft.ManagedIdentity/userAssignedIdentities/id-%s"
                                       % (uuid.uuid4(), secrets.token_hex(3))),
                     "kind": "user"}
            with st.lock:
                if len(st.user_identities) >= 1000:
                    raise BadInput("too many identities")
                st.user_identities.append(ident)
            return self.reply_json(200, ident)
        if cmd == ("POST", "/challenge"):
            style = body.get("style", "resource")
            if style not in ("resource", "scope", "both"):
                raise BadInput("style must be resource, scope or both")
            with st.lock:
                st.challenge = {"style": style, "resource": body.get("resource"),
                                "authority": body.get("authority")}
            return self.reply_json(200, {})
        if cmd == ("POST", "/shutdown"):
            self.reply_json(200, {})
            st.stop.set()
            return
        if cmd == ("GET", "/health"):
            return self.reply_json(200, {"ok": True})
        self.reply_json(404, {"error": "no control route %s %s" % cmd})

    def identity_config(self, body):
        st = self.state
        with st.lock:
            if "system" in body:
                st.system_enabled = bool(body["system"])
            if "expiresIn" in body:
                if not isinstance(body["expiresIn"], int) or not 1 <= body["expiresIn"] <= 86400:
                    raise BadInput("expiresIn must be 1..86400 seconds")
                st.expires_in = body["expiresIn"]
            if "numbers" in body:
                st.numbers = bool(body["numbers"])
            return {"system": dict(st.system_identity) if st.system_enabled else None,
                    "userAssigned": list(st.user_identities), "expiresIn": st.expires_in,
                    "numbers": st.numbers, "tenant": st.tenant}


# ------------------------------------------------------------------------------------------------
# Start-up and shutdown
# ------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description="Key Vault + IMDS + Arc emulator for kvvm's tests")
    ap.add_argument("--dir", required=True, help="working directory: certificates, emu.json, Arc keys")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="added latency per Key Vault request")
    ap.add_argument("--lifetime", type=float, default=600.0, help="seconds before stopping by itself")
    ap.add_argument("--parent-pid", type=int, default=0, help="stop when this process is gone")
    ap.add_argument("--key-type", choices=("rsa", "ec"), default="rsa",
                    help="server and CA key: rsa (RSA-2048, as Azure) or ec (P-256)")
    args = ap.parse_args(argv)

    threading.stack_size(THREAD_STACK)
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    info_path = os.path.join(directory, "emu.json")
    try:
        os.unlink(info_path)      # a stale file from an earlier run must not look ready
    except FileNotFoundError:
        pass
    state = State(directory, args.latency_ms)
    os.makedirs(state.arc_dir, mode=0o750, exist_ok=True)
    certs = make_certs(directory, args.key_type)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certs["server.pem"], certs["server.key"])
    ctx.set_alpn_protocols(["http/1.1"])

    def on_sni(sslsock, name, _ctx):
        sslsock.kvemu_sni = name   # logged per request: shows what the client asked for
    ctx.sni_callback = on_sni

    servers = {
        "kv": Server(KvHandler, state, "kv", ctx),
        "imds": Server(ImdsHandler, state, "imds"),
        "arc": Server(ArcHandler, state, "arc"),
        "control": Server(ControlHandler, state, "control"),
    }
    threads = []
    for name, srv in servers.items():
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                             name="serve-" + name, daemon=True)
        t.start()
        threads.append(t)

    def on_signal(signum, _frame):
        state.stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    info = {"pid": os.getpid(), "kv_port": servers["kv"].server_address[1],
            "imds_port": servers["imds"].server_address[1], "arc_port": servers["arc"].server_address[1],
            "control_port": servers["control"].server_address[1], "ca_file": certs["ca.pem"],
            "arc_tokens_dir": state.arc_dir, "tenant": state.tenant,
            "system_identity": state.system_identity, "lifetime": args.lifetime}
    tmp = info_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.rename(tmp, info_path)     # readers see a whole file or none
    sys.stderr.write("kvemu: ready pid=%d kv=%d imds=%d arc=%d control=%d dir=%s\n" % (
        os.getpid(), info["kv_port"], info["imds_port"], info["arc_port"], info["control_port"],
        directory))
    sys.stderr.flush()

    deadline = time.monotonic() + args.lifetime
    reason = "signal or shutdown request"
    while not state.stop.wait(0.5):
        if time.monotonic() >= deadline:
            reason = "lifetime of %g s reached" % args.lifetime
            break
        if args.parent_pid:
            try:
                os.kill(args.parent_pid, 0)
            except ProcessLookupError:
                reason = "parent %d gone" % args.parent_pid
                break
            except PermissionError:
                pass
    state.stop.set()              # releases stalls and latency waits
    for srv in servers.values():
        srv.shutdown()
        srv.server_close()
    try:
        os.unlink(info_path)
    except OSError:
        pass
    sys.stderr.write("kvemu: stopped (%s)\n" % reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
