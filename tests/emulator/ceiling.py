#!/usr/bin/python3
"""The emulator's own ceiling: how many Key Vault GETs per second kvemu.py can serve.

Report this beside any client benchmark run against the emulator: a client that looks slower than
this figure is measuring the emulator (shared/docs/emulator-notes.md, "Ceiling").

    /usr/bin/python3 tests/emulator/ceiling.py [--seconds 5] [--connections 16] [--processes 2]

Prints GET/s over N keep-alive connections at 0 ms and 20 ms added latency, and with a new TLS
connection per GET at 0 ms. The load generator is deliberately lean (raw TLS sockets, one prebuilt
request, Content-Length framing) and spread over several processes so that it is not the
bottleneck; on a 2-core machine it still shares the CPU with the emulator, so the figures are a
floor of what the emulator can do alone, and what a client on the same machine can expect.
"""

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emu  # noqa: E402

VAULT = "myvault.vault.azure.net"


def read_response(sock, buf):
    """Reads one HTTP response (Content-Length framed); returns (status, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    return status, rest[length:]


def worker_main(args):
    """One load process: `threads` connections hammering until the deadline; prints its count."""
    ctx = ssl.create_default_context(cafile=args.ca)
    request = ("GET /secrets/bench?api-version=7.4 HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
               "Accept: application/json\r\n\r\n" % (VAULT, args.token)).encode()
    counts = [0] * args.threads
    errors = []
    start = float(args.start)
    deadline = start + args.seconds

    def connect():
        s = socket.create_connection(("127.0.0.1", args.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ctx.wrap_socket(s, server_hostname=VAULT)

    def run(i):
        try:
            while time.time() < start:
                time.sleep(0.001)
            sock = connect() if args.keepalive else None
            buf = b""
            while time.time() < deadline:
                if not args.keepalive:
                    sock = connect()
                    buf = b""
                sock.sendall(request)
                status, buf = read_response(sock, buf)
                if status != 200:
                    raise RuntimeError("status %d" % status)
                counts[i] += 1
                if not args.keepalive:
                    sock.close()
            if args.keepalive:
                sock.close()
        except Exception as exc:      # reported, not hidden
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"count": sum(counts), "errors": errors[:3]}))


def measure(e, token, connections, processes, seconds, keepalive):
    start = time.time() + 1.0          # all processes begin together, after their imports
    per = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    procs = [subprocess.Popen([emu.PYTHON, os.path.abspath(__file__), "--worker", "--port", str(e.kv_port),
                               "--ca", e.ca_file, "--token", token, "--threads", str(n),
                               "--seconds", str(seconds), "--start", repr(start)]
                              + ([] if keepalive else ["--new-connection"]),
                              stdout=subprocess.PIPE, text=True) for n in per if n]
    total = 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        r = json.loads(out)
        if r["errors"]:
            raise SystemExit("load worker errors: %s" % r["errors"])
        total += r["count"]
    return total / seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--value-bytes", type=int, default=8000,
                    help="secret value size (a base64 PFX of RSA-2048 + chain of 3 is ~8 KB)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int)
    ap.add_argument("--ca")
    ap.add_argument("--token")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--start")
    ap.add_argument("--new-connection", dest="keepalive", action="store_false")
    args = ap.parse_args()
    if args.worker:
        return worker_main(args)

    with emu.Emulator(lifetime=600) as e:
        e.add_secret(VAULT, "bench", emu.fake_pfx_b64(args.value_bytes * 3 // 4))
        token = e.imds_token()
        print("kvemu ceiling: %d connections, %d load processes, %.0f s each, %d-byte secret, %d cores"
              % (args.connections, args.processes, args.seconds, args.value_bytes, os.cpu_count()))
        for latency, keepalive in ((0, True), (20, True), (0, False)):
            e.set_latency(latency)
            e.reset_stats()
            rate = measure(e, token, args.connections, args.processes, args.seconds, keepalive)
            st = e.stats(log=False)
            ideal = " (ideal %d/s)" % (args.connections * 1000 / latency) if latency else ""
            print("  %-28s %3d ms latency: %7.0f GET/s%s  [emulator counted %d, handshakes %d, peak in flight %d]"
                  % ("keep-alive" if keepalive else "new TLS connection per GET", latency, rate, ideal,
                     st["requests"], st["tls_handshakes"], st["peak_in_flight"]))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
