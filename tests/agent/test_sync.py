"""kvvm syncing for real, driven through the guest agent (Debian waagent 2.7.3) with the Key
Vault + IMDS emulator (tests/emulator): dependency ordering with requireInitialSync, failures
that must fail dependents at once, agent restart, rotation, removal of a certificate from the
settings, and a package update while certificates are installed.

Nothing leaves the machine: every settings document's msiEndpoint is the emulator's IMDS on
loopback, and every vault host is pinned to the emulator through KVVM_CONNECT_TO (its TLS is
trusted through KVVM_CA_FILE), exported to the agent's commands and so to kvvmd.

Run from the repo root (packages as in test_lifecycle.py):
    /usr/bin/python3 -m unittest -v test_sync      # with tests/agent on sys.path
"""

import glob
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import harness as H
import test_lifecycle as L

sys.path.insert(0, os.path.join(L.REPO, "tests", "emulator"))
import emu  # noqa: E402

NAME = L.NAME
VAULT = "kvvmsync"
HOST = VAULT + ".vault.azure.net"
DEP = "Test.Dep.AfterSync"
STATUS_WAIT = 30.0




def url(secret):
    return "https://{0}/secrets/{1}".format(HOST, secret)


class SyncCase(L.KvvmCase):
    """One emulator per class, its CA and host pinning exported to the agent's commands."""

    @classmethod
    def prepare(cls):
        super().prepare()
        cls.emu = emu.Emulator(lifetime=900).start()
        env = cls.emu.client_env([HOST], base={})
        cls.h.export_env({k: env[k] for k in ("KVVM_CA_FILE", "KVVM_CONNECT_TO")},
                         unset=("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                "all_proxy", "IDENTITY_ENDPOINT", "IMDS_ENDPOINT"))
        cls.events = os.path.join(cls.h.root, "dep-events.log")
        cls.h.add_package(H.make_fake_package(cls.h.root, DEP, "1.0.0", cls.events))

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            e = getattr(cls, "emu", None)
            if e is not None:
                e.stop()

    def settings(self, secrets, require=True):
        return {
            "secretsManagementSettings": {
                "pollingIntervalInS": "3600",
                "requireInitialSync": require,
                "observedCertificates": [url(s) for s in secrets],
            },
            "authenticationSettings": {"msiEndpoint": self.emu.imds_endpoint},
        }

    def goal(self, seq, secrets, version=None, require=True):
        return [self.h.extension(DEP, "1.0.0", seq=0, public={}, dependency_level=1),
                self.ext(seq, self.settings(secrets, require), version=version, dependency_level=0)]

    def dep_commands(self):
        return [(t, c) for (t, _, c, _) in H.read_events(self.events)]

    # -- store -------------------------------------------------------------------------------

    def link(self, secret):
        return os.path.join(self.h.store_root, "{0}.{1}".format(VAULT, secret))

    def target(self, secret):
        return os.readlink(self.link(secret))

    def store_files(self):
        """Every regular file kvvm wrote in the store: name -> (inode, mtime_ns)."""
        out = {}
        for p in glob.glob(os.path.join(self.h.store_root, VAULT + ".*")):
            st = os.lstat(p)
            out[os.path.basename(p)] = (st.st_ino, st.st_mtime_ns, os.path.islink(p) and os.readlink(p))
        return out

    def kvvmd_pid(self):
        return self.assertOneDaemon().pid

    def requests_for(self, secret, since):
        log = self.emu.stats(since=since)["log"]
        return [r for r in log if r.get("target") == "kv" and
                r.get("path", "").lower().startswith("/secrets/{0}".format(secret))]

    def last_seq(self):
        return self.emu.stats()["log"][-1]["seq"] if self.emu.stats()["log"] else 0


# --------------------------------------------------------------------------------------------
# The main story: one VM, one vault, steps in order
# --------------------------------------------------------------------------------------------

class KvvmSyncStory(SyncCase):
    CRITICAL = ("test_01_initial_sync_gates_the_dependent",)
    SEQ1, SEQ2 = 1, 2

    @classmethod
    def prepare(cls):
        super().prepare()
        cls.zip2 = L.package_zip2()
        cls.version2 = L.zip_version(cls.zip2)
        cls.h.add_package(cls.zip2, NAME, cls.version2)
        cls.pfx = {}
        cls.ver = {}
        for s in ("web", "api"):
            b64, thumb = emu.make_pfx(s + ".example.com")
            cls.ver[s] = [cls.emu.add_secret(HOST, s, b64)]
            cls.pfx[s] = [thumb]

    def test_01_initial_sync_gates_the_dependent(self):
        # api is refused (403: no "get" permission) until the test grants it.
        self.emu.fault("kv", "403", secret="api")
        path = self.status_path(self.SEQ1)
        granted = {}

        def grant_when_pending():
            # Once kvvm has said "transitioning, waiting for api", wait 2 s more, then grant.
            deadline = time.time() + 60
            while time.time() < deadline:
                text = H._read(path)
                parsed = H.parse_status_text(text)[0] if text else None
                if parsed is not None and parsed.status == "transitioning" and url("api") in parsed.message:
                    granted["pending_message"] = parsed.message
                    time.sleep(2)
                    granted["at"] = time.time()
                    self.emu.clear_faults()
                    return
                time.sleep(0.1)

        t = threading.Thread(target=grant_when_pending, daemon=True)
        t.start()
        self.h.set_goal_state(self.goal(self.SEQ1, ["web", "api"]))
        with H.StatusWatcher(path) as watch:
            res = self.h.run()
        t.join(5)
        self.emu.clear_faults()
        self.assertEqual([(n, c) for (n, _, c) in res.commands],
                         [(NAME, "install"), (NAME, "enable"), (DEP, "install"), (DEP, "enable")])
        self.assertIn("at", granted, "kvvm never reported transitioning naming the pending certificate; "
                      "statuses: {0}".format(watch.statuses))
        # The pending reason is given in words: 403, the permission to grant.
        self.assertRegex(granted["pending_message"], r"403|permission", granted["pending_message"])
        self.assertWatcherClean(watch, ("transitioning", "success"))
        self.assertEqual(watch.statuses, ["transitioning", "success"])
        success = watch.first("success")
        dep_install = [t for (t, c) in self.dep_commands() if c == "install"][0]
        self.assertGreaterEqual(success[1], granted["at"] - 0.5, "success before the certificate was readable")
        self.assertGreaterEqual(dep_install, success[1], "the dependent ran before kvvm reported success")
        reports = self.h.report()
        r = reports[NAME]
        self.assertEqual((r.status, r.ext_status, r.ext_seq), ("Ready", "success", self.SEQ1), r)
        self.assertEqual((reports[DEP].status, reports[DEP].ext_status), ("Ready", "success"), reports[DEP])
        self.assertSubstatus(r, {"web": 0, "api": 0})
        for s in ("web", "api"):
            self.assertEqual(self.target(s), "{0}.{1}.{2}".format(VAULT, s, self.ver[s][0]))
        # kvvmd itself runs with the vault host pinned to the emulator (nothing leaves the machine).
        env = self.assertOneDaemon().environ
        self.assertEqual(env.get("KVVM_CONNECT_TO"), self.emu.connect_to([HOST]))
        self.assertEqual(env.get("KVVM_CA_FILE"), self.emu.ca_file)

    def assertSubstatus(self, report, expected):
        """One substatus per certificate, named by its URL, with version and thumbprint."""
        subs = {name: (status, msg) for (name, status, _, msg) in report.substatus}
        self.assertEqual(sorted(subs), sorted(url(s) for s in expected), report)
        for s, idx in expected.items():
            status, msg = subs[url(s)]
            self.assertEqual(status, "success", report)
            self.assertIn(self.ver[s][idx], msg, report)
            self.assertIn(self.pfx[s][idx].lower(), msg.lower(), report)

    def test_02_agent_restart_same_seq_reinstalls_nothing(self):
        before = self.store_files()
        pid = self.kvvmd_pid()
        with H.StatusWatcher(self.status_path(self.SEQ1)) as watch:
            res = self.h.run(restart=True)
            report = self.h.report()[NAME]
            time.sleep(1.5)
        self.assertCommands(res, NAME, [(self.version, "enable")])
        self.assertCommands(res, DEP, [("1.0.0", "enable")])
        self.assertEqual((report.status, report.ext_status, report.ext_seq), ("Ready", "success", self.SEQ1),
                         report)
        self.assertWatcherClean(watch, ("success",))
        self.assertEqual(self.kvvmd_pid(), pid, "enable must keep the running daemon")
        self.assertEqual(self.store_files(), before, "files were rewritten after an agent restart")

    def test_03_rotation_picked_up_on_next_pass(self):
        b64, thumb = emu.make_pfx("web2.example.com")
        self.ver["web"].append(self.emu.add_secret(HOST, "web", b64))
        self.pfx["web"].append(thumb)
        api_before = self.store_files()["{0}.api.{1}".format(VAULT, self.ver["api"][0])]
        os.kill(self.kvvmd_pid(), signal.SIGUSR1)
        new = "{0}.web.{1}".format(VAULT, self.ver["web"][1])
        deadline = time.time() + 15
        while self.target("web") != new and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.target("web"), new, "the link does not point at the new version")
        self.assertTrue(os.path.isfile(os.path.join(self.h.store_root, "{0}.web.{1}".format(
            VAULT, self.ver["web"][0]))), "the previous version was not kept")
        report = self.h.wait_for_status(
            NAME, lambda r: any(self.ver["web"][1] in m for (_, _, _, m) in r.substatus), timeout=STATUS_WAIT)
        self.assertEqual(report.ext_status, "success", report)
        self.assertSubstatus(report, {"web": 1, "api": 0})
        self.assertEqual(self.store_files()["{0}.api.{1}".format(VAULT, self.ver["api"][0])], api_before,
                         "an unchanged certificate was rewritten")

    def test_04_removed_certificate_stays_on_disk_and_is_no_longer_polled(self):
        api_files = {k: v for k, v in self.store_files().items() if ".api" in k}
        self.assertTrue(api_files)
        self.h.set_goal_state(self.goal(self.SEQ2, ["web"]))
        res = self.h.run()
        self.assertCommands(res, NAME, [(self.version, "enable")])
        report = self.wait_success(self.SEQ2)
        self.assertSubstatus(report, {"web": 1})
        # A pass after the change: web is asked for, api is not.
        since = self.last_seq()
        os.kill(self.kvvmd_pid(), signal.SIGUSR1)
        deadline = time.time() + 15
        while not self.requests_for("web", since) and time.time() < deadline:
            time.sleep(0.1)
        self.assertTrue(self.requests_for("web", since), "no pass ran after SIGUSR1")
        time.sleep(1)
        self.assertEqual(self.requests_for("api", since), [], "the removed certificate is still polled")
        self.assertEqual({k: v for k, v in self.store_files().items() if ".api" in k}, api_files,
                         "the removed certificate's files changed")
        report = self.h.wait_for_status(NAME, lambda r: r.ext_seq == self.SEQ2, timeout=STATUS_WAIT)
        self.assertNotIn(url("api"), [n for (n, _, _, _) in report.substatus], report)

    def test_05_package_update_reinstalls_nothing(self):
        before = self.store_files()
        old_pid = self.kvvmd_pid()
        since = self.last_seq()
        self.h.set_goal_state(self.goal(self.SEQ2, ["web"], version=self.version2))
        res = self.h.run()
        old, new = self.version, self.version2
        self.assertCommands(res, NAME, [(old, "disable"), (new, "update"), (old, "uninstall"),
                                        (new, "install"), (new, "enable")])
        report = self.wait_success(self.SEQ2, version=new)
        self.assertSubstatus(report, {"web": 1})
        daemon = self.assertOneDaemon()
        self.assertNotEqual(daemon.pid, old_pid)
        self.assertEqual(daemon.exe, os.path.join(self.h.handler_dir(NAME, new), "bin", "kvvmd"))
        # The new kvvmd has done a pass (it fetched web) and changed nothing on disk.
        self.assertTrue(self.requests_for("web", since), "the new kvvmd never asked the vault")
        self.assertEqual(self.requests_for("api", since), [], "the removed certificate came back")
        self.assertEqual(self.store_files(), before, "files were reinstalled or lost by the update")
        self.assertTrue(os.path.isfile(self.store_sentinel))
        reports = self.h.report()
        self.assertEqual((reports[DEP].status, reports[DEP].ext_status), ("Ready", "success"), reports[DEP])


# --------------------------------------------------------------------------------------------
# What waiting cannot fix fails dependents at once
# --------------------------------------------------------------------------------------------

class KvvmInvalidSettingsFailDependents(SyncCase):
    def test_invalid_settings_skip_the_dependent_at_once(self):
        bad = self.settings(["web"])
        bad["secretsManagementSettings"]["observedCertificates"] = ["http://{0}/secrets/web".format(HOST)]
        self.h.set_goal_state([self.h.extension(DEP, "1.0.0", seq=0, public={}, dependency_level=1),
                               self.ext(0, bad, dependency_level=0)])
        res = self.h.run()
        self.assertEqual([(n, c) for (n, _, c) in res.commands], [(NAME, "install"), (NAME, "enable")])
        self.assertLess(res.seconds, 30, "the agent waited for a status that can never succeed")
        self.assertEqual(self.dep_commands(), [], "the dependent ran")
        reports = self.h.report()
        r = reports[NAME]
        self.assertEqual((r.status, r.ext_status), ("NotReady", "error"), r)
        self.assertIn("observedCertificates", r.ext_message, r)
        d = reports.get(DEP)
        self.assertIsNotNone(d, "the agent reported nothing for the skipped dependent")
        self.assertEqual(d.status, "NotReady", d)
        self.assertIn(NAME, d.message, d)


class KvvmBadContentFailsDependents(SyncCase):
    def test_uninstallable_content_is_error_at_once(self):
        self.emu.add_secret(HOST, "web", emu.fake_pfx_b64())  # not a PFX: waiting cannot fix it
        path = self.status_path(0)
        self.h.set_goal_state(self.goal(0, ["web"]))
        with H.StatusWatcher(path) as watch:
            res = self.h.run()
        self.assertEqual([(n, c) for (n, _, c) in res.commands], [(NAME, "install"), (NAME, "enable")])
        self.assertLess(res.seconds, 30, "the agent waited for a status that can never succeed")
        self.assertEqual(self.dep_commands(), [], "the dependent ran")
        self.assertNotIn("success", watch.statuses)
        reports = self.h.report()
        r = reports[NAME]
        self.assertEqual(r.ext_status, "error", r)
        self.assertIn(url("web"), r.ext_message, r)
        self.assertEqual([(n, s) for (n, s, _, _) in r.substatus], [(url("web"), "error")], r)
        d = reports.get(DEP)
        self.assertIsNotNone(d, "the agent reported nothing for the skipped dependent")
        self.assertEqual(d.status, "NotReady", d)
        self.assertIn("did not succeed", d.message, d)


# --------------------------------------------------------------------------------------------
# Two identities, one refused (authenticationOverride)
# --------------------------------------------------------------------------------------------

class KvvmTwoIdentitiesOneRefused(SyncCase):
    def test_override_identity_refused_is_named_and_the_other_installs(self):
        a, b = self.emu.add_identity(), self.emu.add_identity()
        self.emu.identity_config(system=False)
        for s in ("web", "api"):
            self.emu.add_secret(HOST, s, emu.make_pfx(s + ".example.com")[0])
        # B may not read api; A could (the fault matches B's tokens only).
        self.emu.fault("kv", "403", secret="api", identity=b["client_id"])
        pub = self.settings([], require=False)
        pub["secretsManagementSettings"]["observedCertificates"] = [
            {"url": url("web")},
            {"url": url("api"), "authenticationOverride": {"msiClientId": b["client_id"]}}]
        pub["authenticationSettings"]["msiClientId"] = a["client_id"]
        since = self.last_seq()
        self.h.set_goal_state([self.ext(0, pub, dependency_level=0)])
        self.h.run()

        def settled(r):
            subs = {n: m for (n, _, _, m) in r.substatus}
            return url("api") in subs and b["client_id"] in (subs[url("api")] or "") and \
                url("web") in subs
        r = self.h.wait_for_status(NAME, settled, timeout=STATUS_WAIT)
        subs = {n: (st, m) for (n, st, _, m) in r.substatus}
        self.assertEqual(subs[url("web")][0], "success", r)
        api = subs[url("api")][1]
        self.assertIn("the user-assigned identity with client id {0} may not read secret api"
                      .format(b["client_id"]), api, r)
        self.assertNotIn(a["client_id"], api, r)
        self.assertTrue(os.path.islink(self.link("web")))
        self.assertFalse(os.path.lexists(self.link("api")))
        log = self.emu.stats(since=since)["log"]
        used = {(e["path"].split("?")[0].rstrip("/").rsplit("/", 1)[-1], e.get("identity"))
                for e in log if e.get("target") == "kv" and e.get("identity")}
        self.assertEqual(used, {("web", a["client_id"]), ("api", b["client_id"])}, log)
        asked = [e.get("identity") for e in log if e.get("target") == "imds"]
        self.assertEqual(sorted(set(asked)), sorted([a["client_id"], b["client_id"]]), asked)


class KvvmSplitFilesServedByNginx(SyncCase):
    """fileLayout under the agent: a real nginx on loopback reads the certbot folder's
    fullchain.pem and privkey.pem through <link>.live; a rotation in the vault, the pass
    kvvmd runs on SIGUSR1, the renewal hook's reload, and nginx serves the new certificate,
    never logging a key that does not match its certificate."""
    NGINX = "/usr/sbin/nginx"

    @classmethod
    def prepare(cls):
        super().prepare()
        cls.hooks = os.path.join(cls.h.root, "hooks.d")
        cls.ngx = os.path.join(cls.h.root, "ngx")
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(cls.ngx, d))
        os.makedirs(cls.hooks, mode=0o755)
        cls.h.export_env({"KVVM_HOOKS_DIR": cls.hooks})
        cls.nginx = None

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.nginx is not None:
                cls.nginx.terminate()
                cls.nginx.wait(timeout=10)
        finally:
            super().tearDownClass()

    def ngx_args(self):
        return [self.NGINX, "-e", os.path.join(self.ngx, "error.log"), "-p", self.ngx, "-c",
                os.path.join(self.ngx, "nginx.conf")]

    def write_conf(self, live, port):
        n = self.ngx
        with open(os.path.join(n, "nginx.conf"), "w") as f:
            f.write("pid {0}/nginx.pid;\nerror_log {0}/error.log notice;\nworker_processes 1;\n"
                    "events {{ worker_connections 64; }}\nhttp {{\n access_log off;\n"
                    " client_body_temp_path {0}/body; proxy_temp_path {0}/proxy;\n"
                    " fastcgi_temp_path {0}/fastcgi; uwsgi_temp_path {0}/uwsgi;\n"
                    " scgi_temp_path {0}/scgi;\n server {{\n  listen 127.0.0.1:{1} ssl;\n"
                    "  ssl_certificate {2}/fullchain.pem;\n  ssl_certificate_key {2}/privkey.pem;\n"
                    "  location / {{ return 200 \"ok\\n\"; }}\n }}\n}}\n".format(n, port, live))
        hook = os.path.join(self.hooks, "50-nginx")
        with open(hook, "w") as f:
            f.write("#!/bin/sh\n[ \"$KVVM_HOOK_EVENT\" = renew ] || exit 0\nexec {0} -s reload\n"
                    .format(" ".join(self.ngx_args())))
        os.chmod(hook, 0o755)

    def served_thumbprint(self, port):
        """The SHA-1 thumbprint (upper-case hex) of the certificate nginx serves, or None."""
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        if "BEGIN CERTIFICATE" not in r.stdout:
            return None
        fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha1"],
                            input=r.stdout, capture_output=True, text=True)
        return fp.stdout.strip().split("=")[-1].replace(":", "").upper() or None

    def wait_served(self, port, thumb):
        deadline = time.time() + 15
        while self.served_thumbprint(port) != thumb and time.time() < deadline:
            time.sleep(0.2)
        return self.served_thumbprint(port)

    def test_nginx_serves_the_split_files_across_a_renewal(self):
        if not os.access(self.NGINX, os.X_OK):
            self.skipTest("nginx is not installed (scripts/deps.sh test installs it)")
        b64, thumb1 = emu.make_pfx("web.example.com")
        self.emu.add_secret(HOST, "web", b64)
        pub = self.settings([], require=True)
        pub["secretsManagementSettings"]["observedCertificates"] = [
            {"url": url("web"), "fileLayout": "certbot"}]
        live = self.link("web") + ".live"
        port = _free_port()
        self.write_conf(live, port)
        self.h.set_goal_state([self.ext(0, pub, dependency_level=0)])
        self.h.run()
        r = self.h.wait_for_status(NAME, lambda r: r.ext_status == "success", timeout=STATUS_WAIT)
        self.assertTrue(os.path.isfile(os.path.join(live, "fullchain.pem")), r)
        type(self).nginx = subprocess.Popen(self.ngx_args() + ["-g", "daemon off;"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.assertEqual(self.wait_served(port, thumb1), thumb1, "nginx does not serve version 1")
        b64, thumb2 = emu.make_pfx("web.example.com")
        v2 = self.emu.add_secret(HOST, "web", b64)
        os.kill(self.kvvmd_pid(), signal.SIGUSR1)
        self.assertEqual(self.wait_served(port, thumb2), thumb2,
                         "nginx does not serve version 2 after the renewal hook's reload")
        self.assertEqual(os.readlink(live), "{0}.web.certbot.{1}".format(VAULT, v2))
        with open(os.path.join(self.ngx, "error.log")) as f:
            errors = f.read()
        self.assertNotIn("key values mismatch", errors)
        self.assertIn("reconfiguring", errors, "nginx logged no reload")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    unittest.main()
