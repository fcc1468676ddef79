#!/usr/bin/python3
"""The benchmark's certificates: N Key Vault-style PFX files, made once and kept.

Each is what Key Vault hands back for a certificate created in the vault: an RSA-2048 leaf with
its issuing CA and root, exported by `openssl pkcs12 -export` with OpenSSL 3's defaults (PBES2
AES-256-CBC, PBKDF2-HMAC-SHA256 with 2048 iterations, a SHA-256 MAC) and an empty password.
Every file is its own export of its own leaf, so no two share bytes. The leaf keys come from a
pool of 16 (RSA key generation would otherwise take most of the time making the corpus; the
key does not change what a client does with the file).

    corpus.py DIR N      makes DIR/0000.pfx ... (N-1).pfx that are missing; prints DIR
"""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

KEYS = 16


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def pki(d):
    """Root CA, issuing CA and the key pool, once."""
    if os.path.exists(os.path.join(d, "chain.pem")):
        return
    with open(os.path.join(d, "ca.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    with open(os.path.join(d, "leaf.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=Bench Root",
            "-days", "3650", "-keyout", "root.key", "-out", "root.pem", "-addext",
            "basicConstraints=critical,CA:TRUE", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=Bench Issuing CA",
            "-keyout", "int.key", "-out", "int.csr", cwd=d)
    openssl("x509", "-req", "-in", "int.csr", "-CA", "root.pem", "-CAkey", "root.key",
            "-set_serial", "2", "-days", "3650", "-extfile", "ca.ext", "-out", "int.pem", cwd=d)
    with ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        list(ex.map(lambda k: openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                                      "rsa_keygen_bits:2048", "-out", "k%02d.pem" % k, cwd=d),
                    range(KEYS)))
    with open(os.path.join(d, "chain.pem"), "w") as out:
        for p in ("int.pem", "root.pem"):
            out.write(open(os.path.join(d, p)).read())


def trust(d):
    """A trust store as a real one looks to kvvm's chain check: the system's roots and the
    corpus's, which stands for the public CA a Key Vault certificate chains to. Path of it."""
    path = os.path.join(d, "trust.pem")
    if not os.path.exists(path):
        system = "/etc/ssl/certs/ca-certificates.crt"
        with open(path + ".tmp", "w") as out:
            if os.path.exists(system):
                out.write(open(system).read())
            out.write(open(os.path.join(d, "root.pem")).read())
        os.replace(path + ".tmp", path)
    return path


def one(d, i):
    pfx = os.path.join(d, "%04d.pfx" % i)
    if os.path.exists(pfx):
        return
    key, csr, pem = "k%02d.pem" % (i % KEYS), "l%04d.csr" % i, "l%04d.pem" % i
    openssl("req", "-new", "-key", key, "-subj", "/CN=host-%04d.bench.example" % i,
            "-out", csr, cwd=d)
    openssl("x509", "-req", "-in", csr, "-CA", "int.pem", "-CAkey", "int.key",
            "-set_serial", str(1000 + i), "-days", "365", "-extfile", "leaf.ext",
            "-out", pem, cwd=d)
    openssl("pkcs12", "-export", "-inkey", key, "-in", pem, "-certfile", "chain.pem",
            "-passout", "pass:", "-out", pfx + ".tmp", cwd=d)
    os.replace(pfx + ".tmp", pfx)
    for f in (csr, pem):
        os.unlink(os.path.join(d, f))


def make(d, n):
    d = os.path.abspath(d)
    os.makedirs(d, exist_ok=True)
    pki(d)
    with ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        list(ex.map(lambda i: one(d, i), range(n)))
    return [os.path.join(d, "%04d.pfx" % i) for i in range(n)]


if __name__ == "__main__":
    make(sys.argv[1], int(sys.argv[2]))
    print(sys.argv[1])
