"""kvvm driven through the real guest agent (Debian waagent 2.7.3): lifecycle scenarios.

Run from the repo root:
    KVVM_ZIP=dist/Kvvm.Azure.KeyVaultCerts__0.1.0.zip \
    KVVM_ZIP2=build-0.1.1/dist/Kvvm.Azure.KeyVaultCerts__0.1.1.zip \
    /usr/bin/python3 -m unittest discover -s tests/agent -v

Without KVVM_ZIP the package is built with `make -s package`; without KVVM_ZIP2 the next
patch version is built in its own build folder (`make -s package VERSION=x.y.z+1
BUILD=build-x.y.z+1`), so its binaries really carry the new version.

What is asserted is what the agent itself reports (handler status, extension status parsed by
its own parser, codes, messages), plus the files and processes the spec talks about.
No network: every vault lookup goes to a loopback identity endpoint where nothing listens.
"""

import glob
import gzip
import json
import os
import re
import secrets
import signal
import subprocess
import time
import unittest

import harness as H

NAME = "Kvvm.Azure.KeyVaultCerts"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATUS_WAIT = 30.0  # kvvmd rewrites <seq>.status within seconds; this bounds a broken one


# --------------------------------------------------------------------------------------------
# Packages under test
# --------------------------------------------------------------------------------------------

_zips = {}  # cache: a build (or its failure) happens once per test run


def _manifest_version():
    text = open(os.path.join(REPO, "manifest", "extension.mk")).read()
    return re.search(r"^KVVM_VERSION\s*:?=\s*(\S+)", text, re.M).group(1)


def _make(*args):
    cmd = ["make", "-s", "-j{0}".format(os.cpu_count() or 2)] + list(args)
    res = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True)
    if res.returncode != 0:
        raise AssertionError("make {0} failed:\n{1}".format(" ".join(args), res.stdout[-4000:]))


def _cached(key, build):
    if key not in _zips:
        try:
            _zips[key] = build()
        except AssertionError as e:
            _zips[key] = e
    if isinstance(_zips[key], AssertionError):
        raise _zips[key]
    return _zips[key]


def package_zip():
    """The package under test: $KVVM_ZIP, else built by `make package`."""
    return _cached("zip", _build_zip)


def package_zip2():
    """A higher version of the same package: $KVVM_ZIP2, else built in build-<version>."""
    return _cached("zip2", _build_zip2)


def _build_zip():
    path = os.environ.get("KVVM_ZIP")
    if not path:
        _make("package")
        path = os.path.join("dist", "{0}__{1}.zip".format(NAME, _manifest_version()))
    path = os.path.abspath(os.path.join(REPO, path))
    if not os.path.isfile(path):
        raise AssertionError("package zip not found: " + path)
    return path


def _build_zip2():
    path = os.environ.get("KVVM_ZIP2")
    if not path:
        # The next patch version, in its own build folder: the objects embed the version and
        # the Makefile does not rebuild them when only VERSION changes.
        v = [int(x) for x in zip_version(package_zip()).split(".")]
        v[-1] += 1
        version = ".".join(str(x) for x in v)
        # Next to the build under test (KVVM_BUILD, set by tests/run.sh), e.g. build-san-0.1.1.
        build = "{0}-{1}".format(os.environ.get("KVVM_BUILD") or "build", version)
        _make("package", "VERSION=" + version, "BUILD=" + build)
        path = os.path.join(build, "dist", "{0}__{1}.zip".format(NAME, version))
    path = os.path.abspath(os.path.join(REPO, path))
    if not os.path.isfile(path):
        raise AssertionError("second package zip not found: " + path)
    return path


def zip_version(path):
    return re.match(r"^.+__(\d+(?:\.\d+)*)\.zip$", os.path.basename(path)).group(1)


# --------------------------------------------------------------------------------------------
# Settings documents
# --------------------------------------------------------------------------------------------

# A loopback identity endpoint (accepted by design) on a port where nothing listens: kvvmd's
# token requests fail at once with "connection refused" and nothing leaves the machine.
MSI_ENDPOINT = "http://127.0.0.1:9/metadata/identity/oauth2/token"


def v3_settings(secret_names, polling="3600", vault="kvvmagenttest", url_scheme="https"):
    """Windows v3.0 shape (array of certificate objects), requireInitialSync false."""
    return {
        "secretsManagementSettings": {
            "pollingIntervalInS": polling,
            "requireInitialSync": False,
            "linkOnRenewal": False,
            "observedCertificates": [
                {"url": "{0}://{1}.vault.azure.net/secrets/{2}".format(url_scheme, vault, n),
                 "certificateStoreName": "MY", "certificateStoreLocation": "LocalMachine"}
                for n in secret_names],
        },
        "authenticationSettings": {"msiEndpoint": MSI_ENDPOINT},
    }


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


class KvvmCase(H.AgentTestCase):
    """Shared set-up: the package offered to the agent, a store root with a foreign file."""

    @classmethod
    def prepare(cls):
        super().prepare()
        cls.zip = package_zip()
        cls.version = zip_version(cls.zip)
        cls.h.add_package(cls.zip, NAME, cls.version)
        # A certificate store root that already holds a file kvvm did not write: uninstall and
        # updates must leave both alone. 0700 root, as kvvm expects of folders it did not create.
        os.makedirs(cls.h.store_root, mode=0o700)
        cls.store_sentinel = os.path.join(cls.h.store_root, "preexisting.pem")
        with open(cls.store_sentinel, "w") as f:
            f.write("not a kvvm file\n")

    def ext(self, seq, public, version=None, **kw):
        return self.h.extension(NAME, version or self.version, seq=seq, public=public, **kw)

    def status_path(self, seq, version=None):
        return self.h.status_path(NAME, version or self.version, seq)

    def wait_success(self, seq, version=None):
        def terminal(r):
            return r.ext_seq == seq and r.ext_status in ("success", "error")
        report = self.h.wait_for_status(NAME, terminal, timeout=STATUS_WAIT)
        self.assertEqual(report.ext_status, "success", report)
        self.assertEqual(report.version, version or self.version, report)
        return report

    def assertWellFormed(self, report):
        """Operation, integer code and a non-empty message, as CRP shows them."""
        self.assertTrue(isinstance(report.ext_operation, str) and report.ext_operation.strip(),
                        "operation: {0!r}".format(report))
        self.assertTrue(is_int(report.ext_code), "code must be an integer: {0!r}".format(report))
        self.assertTrue(isinstance(report.ext_message, str) and report.ext_message.strip(),
                        "message must be non-empty: {0!r}".format(report))

    def assertMrseq(self, seq, version=None):
        path = os.path.join(self.h.handler_dir(NAME, version or self.version), "mrseq")
        self.assertTrue(os.path.isfile(path), "no mrseq at the package root: " + path)
        with open(path) as f:
            self.assertEqual(f.read().strip(), str(seq), path)

    def assertPidFileMatches(self, pid):
        """<state>/kvvmd.pid, when kvvm writes one, names the running daemon."""
        path = os.path.join(self.h.state_dir, "kvvmd.pid")
        if os.path.exists(path):
            with open(path) as f:
                self.assertEqual(f.read().split()[0], str(pid), path)

    def wait_daemon_gone(self, pid, timeout=5.0):
        deadline = time.time() + timeout
        while any(p.pid == pid for p in self.h.daemons()):
            if time.time() > deadline:
                self.fail("kvvmd {0} still alive after {1} s".format(pid, timeout))
            time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# install -> restart -> kill/revive -> settings change -> protected settings -> uninstall
# --------------------------------------------------------------------------------------------

SEQ1, SEQ2, SEQ3 = 1, 2, 3  # not 0, so a handler that ignores ConfigSequenceNumber shows up


class KvvmLifecycle(KvvmCase):
    CRITICAL = ("test_01_first_install_and_enable",)
    settings1 = v3_settings(["webcert"])
    settings2 = v3_settings(["webcert", "apicert"], polling="7200")

    def test_01_first_install_and_enable(self):
        self.h.set_goal_state([self.ext(SEQ1, self.settings1)])
        with H.StatusWatcher(self.status_path(SEQ1)) as watch:
            res = self.h.run()
            self.assertCommands(res, NAME, [(self.version, "install"), (self.version, "enable")])
            first = self.h.report()[NAME]
            self.assertEqual((first.status, first.code, first.message), ("Ready", 0, "Plugin enabled"), first)
            self.assertEqual(first.ext_seq, SEQ1, first)
            self.assertIn(first.ext_status, ("transitioning", "success"), first)
            report = self.wait_success(SEQ1)
        self.assertWellFormed(report)
        self.assertEqual(report.status, "Ready", report)
        # enable's placeholder, then kvvmd's rewrite of the same file; nothing else.
        self.assertWatcherClean(watch, ("transitioning", "success"))
        self.assertEqual(watch.statuses, ["transitioning", "success"],
                         "status file versions seen while the agent ran enable")
        self.assertMrseq(SEQ1)
        daemon = self.assertOneDaemon()
        self.assertEqual(daemon.exe, os.path.join(self.h.handler_dir(NAME, self.version), "bin", "kvvmd"))
        self.assertPidFileMatches(daemon.pid)
        type(self).pid = daemon.pid

    def test_02_restart_keeps_terminal_status(self):
        # Agent restart: enable again with the same seq must not go back to transitioning.
        path = self.status_path(SEQ1)
        with H.StatusWatcher(path) as watch:
            res = self.h.run(restart=True)
            self.assertCommands(res, NAME, [(self.version, "enable")])
            # What the agent reports right after run(): no waiting here.
            report = self.h.report()[NAME]
        self.assertEqual((report.status, report.ext_status, report.ext_seq), ("Ready", "success", SEQ1),
                         report)
        self.assertWatcherClean(watch, ("success",))
        self.assertEqual(self.assertOneDaemon().pid, self.pid, "enable must keep the running daemon")

    def test_03_killed_daemon_is_revived_by_enable(self):
        os.kill(self.pid, signal.SIGKILL)
        self.wait_daemon_gone(self.pid)
        with H.StatusWatcher(self.status_path(SEQ1)) as watch:
            res = self.h.run(restart=True)
            self.assertCommands(res, NAME, [(self.version, "enable")])
            report = self.wait_success(SEQ1)
        self.assertEqual(report.status, "Ready", report)
        self.assertWatcherClean(watch, ("transitioning", "success"))
        daemon = self.assertOneDaemon()
        self.assertNotEqual(daemon.pid, self.pid, "a new kvvmd must run")
        self.assertPidFileMatches(daemon.pid)
        type(self).pid = daemon.pid

    def test_04_settings_change_applies_new_seq(self):
        self.h.set_goal_state([self.ext(SEQ2, self.settings2)])
        with H.StatusWatcher(self.status_path(SEQ2)) as watch:
            res = self.h.run()
            self.assertCommands(res, NAME, [(self.version, "enable")])
            report = self.wait_success(SEQ2)
        self.assertWellFormed(report)
        self.assertEqual(report.status, "Ready", report)
        self.assertWatcherClean(watch, ("transitioning", "success"))
        self.assertEqual(watch.statuses[-1], "success")
        self.assertMrseq(SEQ2)
        daemon = self.assertOneDaemon()  # the same pid or a restarted one: either is fine
        self.assertPidFileMatches(daemon.pid)
        type(self).pid = daemon.pid

    def test_05_protected_settings_are_accepted_and_never_leak(self):
        thumb = H.make_goal_state_certificate(self.h.lib_dir)
        secret = "kvvm-protected-" + secrets.token_hex(12)
        protected = H.encrypt_protected_settings(self.h.lib_dir, thumb, {"x": secret})
        self.h.set_goal_state([self.ext(SEQ3, self.settings2, protected=protected, thumbprint=thumb)])
        res = self.h.run()
        self.assertCommands(res, NAME, [(self.version, "enable")])
        # The agent really delivered them (else this scenario proves nothing).
        settings_file = os.path.join(self.h.handler_dir(NAME, self.version), "config",
                                     "{0}.settings".format(SEQ3))
        with open(settings_file) as f:
            delivered = json.load(f)["runtimeSettings"][0]["handlerSettings"]
        self.assertEqual((delivered["protectedSettings"], delivered["protectedSettingsCertThumbprint"]),
                         (protected, thumb))
        report = self.wait_success(SEQ3)
        self.assertEqual(report.status, "Ready", report)
        self.assertOneDaemon()
        self.assertEqual(self.files_containing(secret), [], "the protected value leaked")
        self.assertNotIn(secret, repr(report))
        # They were decrypted with the agent's <THUMB>.crt/.prv, and said to be ignored.
        self.assertNotEqual(self.files_containing("decrypted; kvvm reads no protected settings"), [],
                            "enable did not decrypt the protected settings")

    def files_containing(self, needle):
        """Our logs (and the agent's, which holds our commands' output), status, state, store."""
        hits = []
        roots = [self.h.ext_log_dir, self.h.state_dir, self.h.store_root, self.h.agent_log] + \
            glob.glob(os.path.join(self.h.lib_dir, "*", "status")) + \
            glob.glob(os.path.join(self.h.lib_dir, "*", "mrseq"))
        for root in roots:
            paths = [root] if os.path.isfile(root) else \
                [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
            for path in paths:
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                    if path.endswith(".gz"):
                        data = gzip.decompress(data)
                except (OSError, EOFError):
                    continue
                if needle.encode() in data:
                    hits.append(path)
        return hits

    def test_06_uninstall(self):
        self.h.set_goal_state([self.ext(SEQ3, self.settings2, state="uninstall")])
        res = self.h.run()
        self.assertCommands(res, NAME, [(self.version, "disable"), (self.version, "uninstall")])
        # disable waits for the daemon to exit: nothing may remain once the agent is done.
        self.assertEqual(self.h.daemons(), [], "kvvmd still running after uninstall")
        self.assertFalse(os.path.exists(self.h.handler_dir(NAME, self.version)), "package folder left behind")
        self.assertTrue(os.path.isfile(self.store_sentinel), "the certificate store root was removed")
        self.assertNotIn(NAME, self.h.report(), "the agent still reports the uninstalled handler")


# --------------------------------------------------------------------------------------------
# Invalid settings, no settings
# --------------------------------------------------------------------------------------------

class KvvmInvalidSettings(KvvmCase):
    def test_http_vault_url_is_rejected_by_enable(self):
        self.h.set_goal_state([self.ext(0, v3_settings(["webcert"], url_scheme="http"))])
        res = self.h.run()
        self.assertCommands(res, NAME, [(self.version, "install"), (self.version, "enable")])
        report = self.h.report()[NAME]
        # The agent's view of enable's failure: NotReady with PluginEnableProcessingFailed.
        self.assertEqual((report.status, report.code), ("NotReady", 1009), report)
        # ... and our status file says why, naming the key.
        self.assertEqual((report.ext_status, report.ext_seq), ("error", 0), report)
        self.assertWellFormed(report)
        self.assertIn("observedCertificates", report.ext_message, report)
        self.assertRegex(report.ext_message, r"(?i)\burl\b", report)
        # It stays an error (nothing turns it into success behind the agent's back).
        time.sleep(2)
        self.assertEqual(self.h.report()[NAME].ext_status, "error")


class KvvmNoSettings(KvvmCase):
    """CRP may send a handler without settings: the agent writes an empty 0.settings."""

    def test_empty_settings_are_a_clear_error(self):
        self.h.set_goal_state([self.h.extension(NAME, self.version, seq=None)])
        res = self.h.run()
        self.assertCommands(res, NAME, [(self.version, "install"), (self.version, "enable")])
        with open(os.path.join(self.h.handler_dir(NAME, self.version), "config", "0.settings")) as f:
            self.assertEqual(f.read(), "")
        report = self.h.report()[NAME]
        # The agent never reads a status file for a handler without settings: only the handler
        # status reaches CRP, so enable must fail and say why in its output.
        self.assertIsNone(report.ext, report)
        self.assertEqual((report.status, report.code), ("NotReady", 1009), report)
        self.assertIn("observedCertificates", report.message, report)
        # Our own status file (seq 0) carries the same clear error.
        with open(self.status_path(0)) as f:
            parsed, err = H.parse_status_text(f.read())
        self.assertIsNone(err)
        self.assertEqual(parsed.status, "error")
        self.assertIn("observedCertificates", parsed.message)


# --------------------------------------------------------------------------------------------
# Update from one package version to the next
# --------------------------------------------------------------------------------------------

class KvvmUpdate(KvvmCase):
    CRITICAL = ("test_01_install_old_version", "test_02_update")
    seq = 5
    settings = v3_settings(["webcert"])

    @classmethod
    def prepare(cls):
        super().prepare()
        cls.zip2 = package_zip2()
        cls.version2 = zip_version(cls.zip2)
        cls.h.add_package(cls.zip2, NAME, cls.version2)

    def test_01_install_old_version(self):
        self.h.set_goal_state([self.ext(self.seq, self.settings)])
        self.h.run()
        self.wait_success(self.seq)
        type(self).old_pid = self.assertOneDaemon().pid

    def test_02_update(self):
        # Something of ours in the state folder that an old uninstall must not wipe.
        marker = os.path.join(self.h.state_dir, "agent-test-marker")
        self.assertTrue(os.path.isdir(self.h.state_dir), "KVVM_STATE_DIR was not created")
        with open(marker, "w") as f:
            f.write("keep\n")
        state_before = sorted(os.path.relpath(os.path.join(d, f), self.h.state_dir)
                              for d, _, fs in os.walk(self.h.state_dir) for f in fs)

        # Same seq, as after an automatic minor-version upgrade.
        self.h.set_goal_state([self.ext(self.seq, self.settings, version=self.version2)])
        res = self.h.run()
        old, new = self.version, self.version2
        self.assertCommands(res, NAME, [(old, "disable"), (new, "update"), (old, "uninstall"),
                                        (new, "install"), (new, "enable")])
        self.assertFalse(os.path.exists(self.h.handler_dir(NAME, old)), "old package folder left behind")

        daemon = self.assertOneDaemon()
        self.assertEqual(daemon.exe, os.path.join(self.h.handler_dir(NAME, new), "bin", "kvvmd"),
                         "kvvmd must run from the new package folder")
        self.assertNotEqual(daemon.pid, self.old_pid)
        self.assertPidFileMatches(daemon.pid)

        self.assertTrue(os.path.isfile(marker), "the state folder was wiped during the update")
        state_after = set(os.path.relpath(os.path.join(d, f), self.h.state_dir)
                          for d, _, fs in os.walk(self.h.state_dir) for f in fs)
        lost = [p for p in state_before if p not in state_after and "tmp" not in p]
        self.assertEqual(lost, [], "state files lost in the update")
        self.assertTrue(os.path.isfile(self.store_sentinel))

        report = self.wait_success(self.seq, version=new)
        self.assertEqual(report.status, "Ready", report)
        self.assertTrue(os.path.isfile(self.status_path(self.seq, new)))
        self.assertMrseq(self.seq, version=new)

    def test_03_restart_after_update(self):
        res = self.h.run(restart=True)
        self.assertCommands(res, NAME, [(self.version2, "enable")])
        report = self.h.report()[NAME]
        self.assertEqual((report.version, report.status, report.ext_status),
                         (self.version2, "Ready", "success"), report)
        self.assertOneDaemon()


# --------------------------------------------------------------------------------------------
# Dependency ordering (provisionAfterExtensions)
# --------------------------------------------------------------------------------------------

DEP_FULL = "Test.Dep.After"  # publisher Test.Dep, type After


class KvvmDependency(KvvmCase):
    """A level-1 extension must wait until kvvm's status leaves transitioning."""

    seq = 0

    @classmethod
    def prepare(cls):
        super().prepare()
        cls.events = os.path.join(cls.h.root, "dep-events.log")
        cls.seen = os.path.join(cls.h.root, "dep-saw.status")
        # The dependent's install copies the kvvm status file it finds at that instant.
        snapshot = 'cp "{0}" "{1}" 2>/dev/null || echo missing > "{1}"\n'.format(
            cls.h.status_path(NAME, cls.version, cls.seq), cls.seen)
        cls.h.add_package(H.make_fake_package(cls.h.root, DEP_FULL, "1.0.0", cls.events,
                                              extra={"install": snapshot}))

    def test_dependent_waits_for_kvvm_success(self):
        self.h.set_goal_state([
            self.h.extension(DEP_FULL, "1.0.0", seq=0, public={}, dependency_level=1),
            self.ext(self.seq, v3_settings(["webcert"]), dependency_level=0),
        ])
        with H.StatusWatcher(self.status_path(self.seq)) as watch:
            res = self.h.run()
        self.assertEqual([(n, c) for (n, _, c) in res.commands],
                         [(NAME, "install"), (NAME, "enable"), (DEP_FULL, "install"), (DEP_FULL, "enable")])
        success = watch.first("success")
        self.assertIsNotNone(success, "kvvm's status never reached success during the run: {0}".format(
            watch.statuses))
        dep_install = [t for (t, _, c, _) in H.read_events(self.events) if c == "install"][0]
        self.assertGreaterEqual(dep_install, success[1],
                                "the dependent was installed before kvvm's status became success")
        with open(self.seen) as f:
            parsed, err = H.parse_status_text(f.read())
        self.assertIsNone(err)
        self.assertEqual(parsed.status, "success", "kvvm status when the dependent's install ran")
        reports = self.h.report()
        self.assertEqual((reports[NAME].status, reports[NAME].ext_status), ("Ready", "success"),
                         reports[NAME])
        self.assertEqual((reports[DEP_FULL].status, reports[DEP_FULL].ext_status), ("Ready", "success"),
                         reports[DEP_FULL])


if __name__ == "__main__":
    unittest.main()
