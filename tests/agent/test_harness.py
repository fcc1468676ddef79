"""Self-test of harness.py against shell-script fake handlers (no kvvm code involved).

If these fail, the harness (or the agent installation) is broken and the kvvm scenarios in
test_lifecycle.py say nothing. They also pin down the agent behaviour the kvvm scenarios
rely on: command order on update and uninstall, and the 5 s dependency wait.
"""

import os
import time
import unittest

import harness as H

A = "Test.FakeA"
B = "Test.FakeB"


class FakeHandlerChain(H.AgentTestCase):
    """A (level 0) and B (level 1). A 1.0.0 reports success 3 s after its enable, from a
    detached process: later than the agent's first look (enable's exit + 1 s), so the agent
    must really wait (it polls every 5 s). A 1.1.0 reports success at once."""

    CRITICAL = ("test_01_install_enable_with_dependency",)

    @classmethod
    def prepare(cls):
        super().prepare()
        cls.events = os.path.join(cls.h.root, "fake-events.log")
        cls.h.add_package(H.make_fake_package(cls.h.root, A, "1.0.0", cls.events, success_delay=3))
        cls.h.add_package(H.make_fake_package(cls.h.root, A, "1.1.0", cls.events))
        cls.h.add_package(H.make_fake_package(cls.h.root, B, "1.0.0", cls.events))

    def goal_state(self, a_version, state="enabled"):
        return [self.h.extension(A, a_version, seq=3, public={"k": "v"}, dependency_level=0, state=state),
                self.h.extension(B, "1.0.0", seq=0, public={}, dependency_level=1, state=state)]

    def test_01_install_enable_with_dependency(self):
        self.h.set_goal_state(self.goal_state("1.0.0"))
        with H.StatusWatcher(self.h.status_path(A, "1.0.0", 3)) as watch:
            res = self.h.run()
        self.assertCommands(res, A, [("1.0.0", "install"), ("1.0.0", "enable")])
        self.assertCommands(res, B, [("1.0.0", "install"), ("1.0.0", "enable")])
        # A's own detached process turned the placeholder into success ...
        self.assertEqual(watch.statuses, ["transitioning", "success"])
        success_seen, success_mtime = watch.first("success")
        # ... and the agent started B only after that (it polls every 5 s).
        events = H.read_events(self.events)
        a_enable = [t for (t, v, c, _) in events if c == "enable"][0]
        b_install = [t for (t, v, c, _) in events if c == "install"][-1]
        self.assertGreaterEqual(b_install, success_mtime)
        self.assertGreaterEqual(b_install - a_enable, 5, "the agent did not wait for A")
        reports = self.h.report()
        for name in (A, B):
            self.assertEqual((reports[name].status, reports[name].code), ("Ready", 0), reports[name])
            self.assertEqual(reports[name].ext_status, "success", reports[name])
        self.assertEqual(reports[A].ext_seq, 3)
        self.assertEqual(self.h.daemons("fakebgd"), [])

    def test_02_restart_reruns_enable_only(self):
        res = self.h.run(restart=True)
        self.assertCommands(res, A, [("1.0.0", "enable")])
        self.assertCommands(res, B, [("1.0.0", "enable")])

    def test_03_update_order(self):
        self.h.set_goal_state(self.goal_state("1.1.0"))
        res = self.h.run()
        self.assertCommands(res, A, [("1.0.0", "disable"), ("1.1.0", "update"), ("1.0.0", "uninstall"),
                                     ("1.1.0", "install"), ("1.1.0", "enable")])
        self.assertFalse(os.path.exists(self.h.handler_dir(A, "1.0.0")))
        update = [rest for (_, v, c, rest) in H.read_events(self.events) if c == "update"][-1]
        self.assertIn("from=1.0.0 version_env=1.1.0 dis_rc=0", update)
        report = self.h.wait_for_status(A, lambda r: r.ext_status == "success", timeout=10)
        self.assertEqual(report.version, "1.1.0")

    def test_04_uninstall_in_reverse_dependency_order(self):
        self.h.set_goal_state(self.goal_state("1.1.0", state="uninstall"))
        res = self.h.run()
        self.assertEqual([(n, c) for (n, _, c) in res.commands],
                         [(B, "disable"), (B, "uninstall"), (A, "disable"), (A, "uninstall")])
        self.assertFalse(os.path.exists(self.h.handler_dir(A, "1.1.0")))
        self.assertEqual(self.h.report(), {})


class HarnessProcessHygiene(unittest.TestCase):
    """close() kills detached processes the agent's commands left behind."""

    def test_close_kills_detached_children(self):
        h = H.AgentHarness(prefix="kvvm-agent-hygiene-")
        try:
            events = os.path.join(h.root, "events.log")
            h.add_package(H.make_fake_package(h.root, A, "1.0.0", events, success_delay=300))
            h.set_goal_state([h.extension(A, "1.0.0", seq=0, public={})])
            h.run()
            self.assertEqual(len(h.daemons("fakebgd")), 1)
            root = h.root
        finally:
            h.close()
        time.sleep(0.2)
        self.assertEqual([p for p in H.live_processes() if p.environ.get(H.MARKER_ENV) == root], [])


if __name__ == "__main__":
    unittest.main()
