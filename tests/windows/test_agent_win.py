"""kvvm's Windows package driven as the Windows guest agent drives it, under wine, against the
Key Vault + IMDS emulator (tests/emulator). Mirrors tests/agent/test_lifecycle.py and
tests/system/test_daemon.sh: install; enable with requireInitialSync while the vault refuses
(403), transitioning then success; the certificate found by thumbprint in LocalMachine\\MY from
another process; a rotation installed by the next pass; a settings change; the service killed;
update to a new version and back; disable; uninstall. Plus an Arc-style HandlerEnvironment.

Run from the repo root: /usr/bin/python3 tests/windows/test_agent_win.py
Packages: $KVVM_WIN_ZIP / $KVVM_WIN_ZIP2, else built with `make windows` (the second one as the
next patch version in build-win-<version>). Ends with "windows-agent: N passed, N failed,
N skipped"; what wine cannot show (shared/docs/windows.md) is a skip with its reason.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "emulator"))
import agent as A  # noqa: E402
import emu  # noqa: E402

VAULT = "kvvmwin"
HOST = VAULT + ".vault.azure.net"
CA_WIN = "C:\\kvvm-test\\ca.pem"
SERVICE = "kvvmd"
SERVICE_KEY = "HKLM\\System\\CurrentControlSet\\Services\\kvvmd"
STATUS_WAIT = 45.0
TIMINGS = []  # (test id, seconds)


# --------------------------------------------------------------------------------------------
# Packages and helpers under test
# --------------------------------------------------------------------------------------------

def _mk(name):
    text = open(os.path.join(REPO, "manifest", "extension.mk")).read()
    return re.search(r"^{0}\s*:?=\s*(\S+)".format(name), text, re.M).group(1)


NAME = "{0}.{1}".format(_mk("KVVM_PUBLISHER"), _mk("KVVM_TYPE_WINDOWS"))
_built = {}


def _make(*args):
    res = subprocess.run(["make", "-s", "-j2"] + list(args), cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True)
    if res.returncode != 0:
        raise AssertionError("make {0} failed:\n{1}".format(" ".join(args), res.stdout[-3000:]))


def _once(key, build):
    if key not in _built:
        try:
            _built[key] = build()
        except AssertionError as e:
            _built[key] = e
    if isinstance(_built[key], AssertionError):
        raise _built[key]
    return _built[key]


def _zip1():
    path = os.environ.get("KVVM_WIN_ZIP")
    if not path:
        _make("windows")
        path = os.path.join("dist", "{0}__{1}.zip".format(NAME, _mk("KVVM_VERSION")))
    return os.path.abspath(os.path.join(REPO, path))


def _zip2():
    path = os.environ.get("KVVM_WIN_ZIP2")
    if not path:
        v = [int(x) for x in zip_version(package_zip()).split(".")]
        v[-1] += 1
        version = ".".join(str(x) for x in v)
        # Its own object folder: the objects embed the version.
        _make("windows", "VERSION=" + version, "WBUILD=build-win-" + version)
        path = os.path.join("dist", "{0}__{1}.zip".format(NAME, version))
    return os.path.abspath(os.path.join(REPO, path))


def _find_cert_exe():
    out = os.path.join(tempfile.gettempdir(), "kvvm-win-find_cert-{0}.exe".format(os.getuid()))
    src = os.path.join(HERE, "find_cert.c")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        res = subprocess.run(["x86_64-w64-mingw32-gcc", "-std=c11", "-Wall", "-Wextra", "-Wshadow",
                              "-Wstrict-prototypes", "-Wmissing-prototypes", "-Werror", "-O2",
                              "-D_WIN32_WINNT=0x0601", "-o", out + ".tmp", src, "-lcrypt32"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if res.returncode != 0:
            raise AssertionError("find_cert.c does not build:\n" + res.stdout)
        os.replace(out + ".tmp", out)
    return out


def package_zip():
    return _once("zip", _zip1)


def package_zip2():
    return _once("zip2", _zip2)


def zip_version(path):
    return re.match(r"^.+__(\d+(?:\.\d+)*)\.zip$", os.path.basename(path)).group(1)




def url(secret):
    return "https://{0}/secrets/{1}".format(HOST, secret)


# --------------------------------------------------------------------------------------------
# Base class: one emulator and one wine prefix per class, steps in name order
# --------------------------------------------------------------------------------------------

class WinCase(unittest.TestCase):
    CRITICAL = ()
    ENV_VERSION = 1.0
    broken_by = None
    a = None
    e = None

    @classmethod
    def setUpClass(cls):
        cls.broken_by = None
        cls.zip = package_zip()
        cls.version = zip_version(cls.zip)
        cls.find_cert = _find_cert_exe()
        cls.e = emu.Emulator(lifetime=600)
        cls.e.start()
        try:
            with open(cls.e.ca_file, "rb") as f:
                ca = f.read()
            # The aids go to every command and, through enable's kvvmd.env, to the service.
            # KVVM_WINE_NO_FILE_OWNER: wine keeps no file owner, so KVVM_CA_FILE's owner and
            # DACL checks cannot pass under wine; this wine-only testing aid skips them
            # (fileio_windows.c; it does nothing on Windows).
            cls.a = A.WindowsAgent(aids={"KVVM_CA_FILE": CA_WIN, "KVVM_CONNECT_TO": cls.e.connect_to([HOST]),
                                         "KVVM_WINE_NO_FILE_OWNER": "1"},
                                   files={CA_WIN: ca, "C:\\kvvm-test\\find_cert.exe": open(cls.find_cert, "rb").read()},
                                   prefix="kvvm-win-{0}-".format(cls.__name__))
            cls.prepare()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        """Per-class set-up with cls.a and cls.e available."""

    @classmethod
    def tearDownClass(cls):
        if cls.a is not None:
            a, cls.a = cls.a, None
            a.close()
        if cls.e is not None:
            e, cls.e = cls.e, None
            e.stop()

    def setUp(self):
        if type(self).broken_by:
            self.skipTest("earlier step {0} failed".format(type(self).broken_by))
        self._t0 = time.time()

    def tearDown(self):
        TIMINGS.append((self.id(), time.time() - self._t0))

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        super().run(result)
        if len(result.failures) + len(result.errors) > before:
            a = type(self).a
            if a is not None:
                a.keep = True
                sys.stderr.write("\n{0} failed; kept {1}\n{2}\n".format(
                    self.id(), a.root, a.diagnostics(getattr(type(self), "pkg", None))))
            if self._testMethodName in self.CRITICAL:
                type(self).broken_by = self._testMethodName
        return result

    # -- steps shared by the scenarios ---------------------------------------------------

    def settings(self, secrets, require=True, polling="3600"):
        return {
            "secretsManagementSettings": {
                "pollingIntervalInS": polling,
                "requireInitialSync": require,
                "observedCertificates": [
                    {"url": url(s), "certificateStoreName": "MY", "certificateStoreLocation": "LocalMachine"}
                    for s in secrets],
            },
            "authenticationSettings": {"msiEndpoint": self.e.imds_endpoint},
        }

    def command(self, pkg, name, seq):
        r = self.a.run(pkg, name, seq)
        self.assertEqual(r.rc, 0, "{0} {1}: {2!r}".format(pkg.version, name, r))
        return r

    def wait_terminal(self, pkg, seq):
        st, seen = self.a.wait_status(pkg, seq, lambda s: s.status in ("success", "error"),
                                      timeout=STATUS_WAIT)
        self.assertEqual(st.status, "success", st)
        self.assertEqual((st.operation, st.code), ("Enable", 0), st)
        return st, seen

    def kvvmd(self):
        """The service process(es): kvvmd.exe, its pass workers (`kvvmd worker`) left out."""
        return [(pid, argv) for pid, argv in self.a.processes("kvvmd.exe") if "worker" not in argv[1:]]

    def one_kvvmd(self, pkg=None):
        procs = self.kvvmd()
        self.assertEqual(len(procs), 1, "expected one kvvmd.exe, found {0!r}".format(procs))
        pid, argv = procs[0]
        if pkg is not None:
            self.assertTrue(argv[0].lower().startswith(pkg.dir.lower() + "\\"),
                            "kvvmd must run from {0}: {1!r}".format(pkg.dir, argv))
        return pid

    def cert(self, thumb):
        """find_cert.exe in its own process: (rc, output)."""
        r = self.a.wine(["C:\\kvvm-test\\find_cert.exe", "LocalMachine", "MY", thumb], name="find_cert")
        return r.rc, r.out.strip()

    def wait_cert(self, thumb, timeout=STATUS_WAIT):
        deadline = time.time() + timeout
        while True:
            rc, out = self.cert(thumb)
            if rc == 0 or time.time() > deadline:
                return rc, out
            time.sleep(0.5)

    def seqno(self, pkg):
        return self.a.reg_query(pkg.handler_state_key, "SequenceNumber")

    def service_state(self):
        """`sc query kvvmd`: the STATE number (1 stopped, 4 running), or None when absent."""
        r = self.a.wine(["sc", "query", SERVICE], name="sc-query")
        m = re.search(r"STATE\s*:\s*(\d+)", r.out)
        return int(m.group(1)) if r.rc == 0 and m else None

    def agent_update(self, old, zip_path):
        """An update as the Windows agent runs it: the new package unzipped, then Disable(old),
        Uninstall(old), Update(new), Install(new), Enable(new), then the old folder goes."""
        new = self.a.install_package(zip_path, env_version=self.ENV_VERSION)
        self.a.write_settings(new, self.seq, self.current_settings)
        state = self.a.unix_path(r"C:\ProgramData\kvvm\state.json")
        for pkg, cmd in ((old, "disable"), (old, "uninstall"), (new, "update"), (new, "install"),
                         (new, "enable")):
            self.command(pkg, cmd, self.seq)
            if cmd == "uninstall":
                self.assertTrue(os.path.exists(state), "the state must survive the old version's "
                                "uninstall during an update")
        self.a.remove_package(old)
        return new


# --------------------------------------------------------------------------------------------
# The lifecycle
# --------------------------------------------------------------------------------------------

class WindowsLifecycle(WinCase):
    CRITICAL = ("test_01_install", "test_02_enable_initial_sync_waits_for_403", "test_08_update_and_back")
    seq = 1

    @classmethod
    def prepare(cls):
        cls.pfx = {}
        cls.ver = {}
        for s in ("web", "api"):
            b64, thumb = emu.make_pfx(s + ".example.com")
            cls.ver[s] = [cls.e.add_secret(HOST, s, b64)]
            cls.pfx[s] = [thumb]

    def test_01_install(self):
        pkg = type(self).pkg = self.a.install_package(self.zip, env_version=self.ENV_VERSION)
        type(self).current_settings = self.settings(["web"])
        self.a.write_settings(pkg, 1, self.current_settings)
        self.command(pkg, "install", 1)
        self.assertEqual(self.kvvmd(), [], "install must not start the service")

    def test_02_enable_initial_sync_waits_for_403(self):
        # The vault refuses "web" (403: no get permission) until the test grants it.
        self.e.fault("kv", "403", secret="web")
        granted = {}

        def grant_when_pending():
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    st = self.a.read_status(self.pkg, 1)
                except ValueError:
                    st = None
                if st is not None and st.status == "transitioning" and url("web") in (st.message or ""):
                    granted["pending"] = st
                    time.sleep(2)
                    granted["at"] = time.time()
                    self.e.clear_faults()
                    return
                time.sleep(0.1)

        t = threading.Thread(target=grant_when_pending, daemon=True)
        t.start()
        r = self.command(self.pkg, "enable", 1)
        self.assertLess(r.seconds, 20, "enable must return promptly and leave the work to the service")
        st, seen = self.wait_terminal(self.pkg, 1)
        t.join(5)
        self.e.clear_faults()
        self.assertIn("pending", granted, "no transitioning status naming the refused certificate; seen "
                      "{0}".format(seen))
        pending = granted["pending"]
        self.assertRegex(pending.message, r"^initial sync: waiting for 1 of 1 certificate\(s\), retrying:",
                         pending)
        self.assertRegex(pending.message, r"403|permission", pending)
        self.assertEqual(seen[-2:], ["transitioning", "success"], seen)
        self.assertRegex(st.message, r"^1 of 1 certificate\(s\) installed", st)
        self.assertIn("(test overrides active)", st.message, st)
        self.assertEqual(self.seqno(self.pkg), 1, "HandlerState SequenceNumber")
        type(self).pid = self.one_kvvmd(self.pkg)
        self.assertEqual(self.service_state(), 4, "the kvvmd service must be RUNNING")
        self.assertEqual(self.a.reg_query(SERVICE_KEY, "Start"), 2, "automatic start")
        # A Windows store is the system's, not a folder beside the commands.
        self.assertFalse(os.path.exists(os.path.join(self.pkg.unix_dir, "LocalMachine")),
                         "a LocalMachine folder was made in the package folder")

    def test_03_certificate_found_by_thumbprint_from_another_process(self):
        rc, out = self.cert(self.pfx["web"][0])
        self.assertEqual(rc, 0, out)
        self.assertEqual(out, "found web.example.com; key yes")

    def test_04_key_readable_by_accounts(self):
        self.skipTest("wine enforces no key DACL and runs every process as one elevated user, so "
                      "'account X can read the key' cannot be shown (windows.md, key DACLs)")

    def test_05_rotation_installed_by_next_pass(self):
        b64, thumb = emu.make_pfx("web2.example.com")
        self.ver["web"].append(self.e.add_secret(HOST, "web", b64))
        self.pfx["web"].append(thumb)
        r = self.a.wine([self.pkg.exe("kvvm.exe"), "sync-now"], cwd=self.pkg.unix_dir, name="sync-now")
        self.assertEqual(r.rc, 0, r)
        rc, out = self.wait_cert(thumb)
        self.assertEqual((rc, out), (0, "found web2.example.com; key yes"))
        st, _ = self.a.wait_status(self.pkg, 1, lambda s: any(self.ver["web"][1] in (m or "")
                                                              for (_, _, _, m) in s.substatus),
                                   timeout=STATUS_WAIT)
        self.assertEqual(st.status, "success", st)
        self.assertEqual(self.one_kvvmd(), self.pid, "a pass must not restart the service")

    def test_05b_cli_status_and_wait(self):
        """kvvm status and kvvm wait on Windows, as on Linux: the service, the store, the
        rotated certificate's thumbprint; wait returns at once when all are installed."""
        r = self.a.wine([self.pkg.exe("kvvm.exe"), "status", "--json"], cwd=self.pkg.unix_dir,
                        name="status")
        self.assertEqual(r.rc, 0, r)
        doc = json.loads(r.out)
        self.assertTrue(doc["kvvmd"]["running"], doc["kvvmd"])
        self.assertTrue(doc["kvvmd"]["exe"].lower().endswith("\\bin\\kvvmd.exe"), doc["kvvmd"])
        web = [c for c in doc["certificates"] if c["url"].endswith("/secrets/web")]
        self.assertEqual(len(web), 1, doc["certificates"])
        self.assertEqual(web[0]["store_dir"], "LocalMachine\\MY")
        self.assertEqual(web[0]["thumbprint"].upper(), self.pfx["web"][-1].upper())
        self.assertEqual(web[0]["version"], self.ver["web"][-1])
        self.assertIsNone(web[0]["last_error"])
        # The key's provider as the import chose it (wine has CAPI only; CNG on Windows).
        self.assertRegex(web[0]["key_provider"] or "", r"^Microsoft .*(Provider|Cryptographic)")
        self.assertEqual(web[0]["readers"], "SYSTEM, Administrators")  # no accounts set
        r = self.a.wine([self.pkg.exe("kvvm.exe"), "wait", "--timeout", "20"],
                        cwd=self.pkg.unix_dir, name="wait")
        self.assertEqual(r.rc, 0, r)

    def test_06_settings_change(self):
        type(self).seq = 2
        type(self).current_settings = self.settings(["web", "api"], polling="7200")
        self.a.write_settings(self.pkg, 2, self.current_settings)
        self.command(self.pkg, "enable", 2)
        st, _ = self.wait_terminal(self.pkg, 2)
        self.assertRegex(st.message, r"^2 of 2 certificate\(s\) installed", st)
        self.assertEqual(self.one_kvvmd(self.pkg), self.pid, "new settings reach kvvmd without a restart")
        self.assertEqual(self.seqno(self.pkg), 2, "HandlerState SequenceNumber")
        self.assertEqual(self.cert(self.pfx["api"][0]), (0, "found api.example.com; key yes"))

    def test_07a_killed_service_restarted_by_service_manager(self):
        self.a.kill(self.pid)
        # The failure actions restart kvvmd 5 s after a crash; give the service manager 8 s.
        deadline = time.time() + 8
        while time.time() < deadline and not self.kvvmd():
            time.sleep(0.2)
        if not self.kvvmd():
            self.skipTest("wine's service manager does not apply failure actions (it drops "
                          "SERVICE_CONFIG_FAILURE_ACTIONS; windows.md, tests/windows/test_service_win.py): "
                          "no restart after the kill; the next enable's revival is checked instead")
        type(self).pid = self.one_kvvmd(self.pkg)

    def test_07b_enable_revives_killed_service(self):
        if self.kvvmd():
            self.a.kill(self.one_kvvmd())
        self.command(self.pkg, "enable", 2)
        st, _ = self.wait_terminal(self.pkg, 2)
        self.assertRegex(st.message, r"^2 of 2 certificate\(s\) installed", st)
        pid = self.one_kvvmd(self.pkg)
        self.assertNotEqual(pid, self.pid)
        type(self).pid = pid
        self.assertEqual(self.service_state(), 4)

    def test_08_update_and_back(self):
        old = self.pkg
        zip2 = package_zip2()
        new = self.agent_update(old, zip2)
        type(self).pkg = new
        st, _ = self.wait_terminal(new, self.seq)
        self.assertRegex(st.message, r"^2 of 2 certificate\(s\) installed", st)
        self.one_kvvmd(new)
        self.assertEqual(self.seqno(new), self.seq)
        self.assertEqual(self.cert(self.pfx["web"][-1])[0], 0, "the certificate survives the update")
        # And back to the first version (a downgrade is the same sequence).
        back = self.agent_update(new, self.zip)
        type(self).pkg = back
        st, _ = self.wait_terminal(back, self.seq)
        self.assertRegex(st.message, r"^2 of 2 certificate\(s\) installed", st)
        type(self).pid = self.one_kvvmd(back)
        self.assertEqual(self.cert(self.pfx["api"][-1])[0], 0, "the certificate survives the downgrade")

    def test_09_disable(self):
        self.command(self.pkg, "disable", self.seq)
        self.assertEqual(self.kvvmd(), [], "disable must stop kvvmd")
        self.assertEqual(self.service_state(), 1, "the kvvmd service must be STOPPED")
        # Start 3 (demand), not 2 (automatic): a reboot must not bring back a disabled kvvmd.
        self.assertEqual(self.a.reg_query(SERVICE_KEY, "Start"), 3)
        self.command(self.pkg, "disable", self.seq)  # idempotent
        self.assertEqual(self.cert(self.pfx["web"][-1])[0], 0, "disable leaves certificates installed")

    def test_10_uninstall(self):
        self.command(self.pkg, "uninstall", self.seq)
        self.assertIsNone(self.service_state(), "uninstall must delete the kvvmd service")
        self.a.remove_package(self.pkg)
        self.assertEqual(self.kvvmd(), [])
        self.assertEqual(self.cert(self.pfx["web"][-1])[0], 0, "uninstall leaves certificates installed")


class WindowsArcEnvironment(WinCase):
    """HandlerEnvironment.json with `version` a string, as Azure Arc's agent writes it."""
    ENV_VERSION = "1.0"

    def test_enable_with_string_version(self):
        b64, thumb = emu.make_pfx("arc.example.com")
        self.e.add_secret(HOST, "arc", b64)
        pkg = type(self).pkg = self.a.install_package(self.zip, env_version=self.ENV_VERSION)
        self.a.write_settings(pkg, 0, self.settings(["arc"], require=False))
        self.command(pkg, "install", 0)
        self.command(pkg, "enable", 0)
        # Without requireInitialSync the status is success at once ("polling started ...;
        # first sync in progress", daemon.c): wait for the first pass's report.
        st, _ = self.a.wait_status(pkg, 0, lambda s: s.status == "error" or (s.message or "").startswith("1 of 1"),
                                   timeout=STATUS_WAIT)
        self.assertEqual((st.status, st.operation, st.code), ("success", "Enable", 0), st)
        self.assertRegex(st.message, r"^1 of 1 certificate\(s\) installed", st)
        self.assertEqual(self.wait_cert(thumb), (0, "found arc.example.com; key yes"))
        self.command(pkg, "disable", 0)
        self.command(pkg, "uninstall", 0)
        self.assertEqual(self.kvvmd(), [])


def main():
    start = time.time()
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped - len(result.expectedFailures)
    for test, reason in result.skipped:
        print("skipped: {0}: {1}".format(test.id(), reason))
    for name, seconds in TIMINGS:
        print("time: {0:6.1f} s  {1}".format(seconds, name))
    print("time: {0:6.1f} s  in all".format(time.time() - start))
    print("windows-agent: {0} passed, {1} failed, {2} skipped".format(passed, failed, skipped))
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
