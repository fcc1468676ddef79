"""Drive extension handler packages through the real Linux guest agent (Debian waagent 2.7.3).

The agent's own extension code (azurelinuxagent.ga.exthandlers.ExtHandlersHandler) runs
unchanged; only the wire protocol is faked, so no network is used: packages are "downloaded"
by copying local zips, and the status the agent would upload is captured in memory.
See docs/agent-protocol.md section 9 (steering repo: /work/shared/docs).

Run with Debian's /usr/bin/python3: the pyenv python3 on PATH cannot see dist-packages.

Typical use:

    h = AgentHarness(keep=False)
    h.add_package("dist/Kvvm.Azure.KeyVaultCerts__0.1.0.zip")
    ext = h.extension("Kvvm.Azure.KeyVaultCerts", "0.1.0", seq=1, public={...})
    h.set_goal_state([ext])
    h.run()                                   # install + enable, exactly as the agent does
    r = h.wait_for_status("Kvvm.Azure.KeyVaultCerts", lambda r: r.ext_status == "success")
    h.close()                                 # kills every daemon the test started

Environment given to handler commands: the agent merges its own process environment last,
so the harness exports KVVM_STATE_DIR / KVVM_SERVICE_MODE / KVVM_STORE_ROOT while it is
open, and hides variables that would override the agent's own (ConfigSequenceNumber,
VERSION, AZURE_GUEST_AGENT_*).
"""

import atexit
import base64
import ctypes
import glob
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest
import warnings
import zipfile

_AGENT_PATH = "/usr/lib/python3/dist-packages"
if _AGENT_PATH not in sys.path and os.path.isdir(os.path.join(_AGENT_PATH, "azurelinuxagent")):
    # Another interpreter does not search Debian's dist-packages. Appending keeps its own
    # stdlib first; waagent 2.7.3 still needs Python <= 3.11 (it imports distutils).
    sys.path.append(_AGENT_PATH)

with warnings.catch_warnings():
    # waagent 2.7.3 imports distutils, deprecated in 3.10+; not our concern.
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import azurelinuxagent.common.conf as agent_conf
        import azurelinuxagent.common.event as agent_event
        import azurelinuxagent.common.logger as agent_logger
        import azurelinuxagent.ga.exthandlers as exthandlers
        from azurelinuxagent.common.protocol import restapi
        from azurelinuxagent.common.protocol.wire import vm_status_to_v1
    except ImportError as _e:  # pragma: no cover - environment problem, say how to fix it
        raise ImportError(
            "tests/agent needs Debian's guest agent modules (apt-get install waagent) and must "
            "run under /usr/bin/python3: {0}".format(_e))

# Environment variables that the agent sets per command; an exported copy would win over
# the agent's value (the agent merges os.environ last), so the harness hides them.
_AGENT_OWNED_ENV = re.compile(r"^(ConfigSequenceNumber|ConfigExtensionName|VERSION|AZURE_GUEST_AGENT_.*)$")

# Marker exported to every process the agent starts: lets tearDown find daemons that
# detached from the agent, even after their package folder was deleted.
MARKER_ENV = "KVVM_AGENT_TEST_ROOT"


# --------------------------------------------------------------------------------------------
# Process bookkeeping: emulate init's reaping, find and kill what tests started.
# --------------------------------------------------------------------------------------------

_PR_SET_CHILD_SUBREAPER = 36
_reap_lock = threading.Lock()
_popen_pids = set()
_reaper_started = False


def _install_process_reaper():
    """Become a child subreaper and reap orphaned daemons, as systemd (PID 1) does on a VM.

    PID 1 in this sandbox never reaps orphans, so a SIGKILLed or stopped daemon would stay a
    zombie for ever; a handler that checks liveness with kill(pid, 0) would then see a dead
    daemon as alive, which never happens on a real VM. As a subreaper, detached daemons are
    re-parented to this process and the reaper thread collects them. Children that
    subprocess.Popen started (the agent's command processes) are left to Popen, or the agent
    would lose their exit codes.
    """
    global _reaper_started
    if _reaper_started:
        return
    _reaper_started = True
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")

    original = subprocess.Popen._execute_child

    def tracked_execute_child(self, *args, **kwargs):
        # Hold the lock until the pid is recorded, so the reaper cannot take the exit
        # status of a command that finishes instantly.
        with _reap_lock:
            original(self, *args, **kwargs)
            _popen_pids.add(self.pid)

    subprocess.Popen._execute_child = tracked_execute_child

    def reaper():
        me = os.getpid()
        while True:
            time.sleep(0.05)
            with _reap_lock:
                for pid, info in _scan_proc().items():
                    if info["ppid"] == me and info["state"] == "Z" and pid not in _popen_pids:
                        try:
                            os.waitpid(pid, os.WNOHANG)
                        except ChildProcessError:
                            pass
                # Forget pids Popen has reaped, so a reused pid is not skipped later.
                for pid in list(_popen_pids):
                    if not os.path.exists("/proc/{0}".format(pid)):
                        _popen_pids.discard(pid)

    threading.Thread(target=reaper, name="reaper", daemon=True).start()


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except (IOError, OSError):
        return None


def _scan_proc():
    """pid -> {ppid, state, comm} for every process (zombies included)."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read("/proc/{0}/stat".format(name))
        if not stat:
            continue
        # comm may contain spaces and parentheses: split at the last ')'.
        head, _, rest = stat.rpartition(")")
        fields = rest.split()
        procs[int(name)] = {"comm": head.partition("(")[2], "state": fields[0], "ppid": int(fields[1])}
    return procs


class Proc(object):
    """A live (non-zombie) process, as far as /proc tells."""

    def __init__(self, pid, comm, exe, argv, environ, ppid=0):
        self.pid, self.comm, self.exe, self.argv, self.environ = pid, comm, exe, argv, environ
        self.ppid = ppid

    def __repr__(self):
        return "Proc(pid={0}, exe={1!r}, argv={2!r})".format(self.pid, self.exe, self.argv)


def live_processes():
    """Every live process with its executable, argv and environment (zombies skipped)."""
    result = []
    for pid, info in _scan_proc().items():
        if info["state"] in ("Z", "X") or pid == os.getpid():
            continue
        try:
            exe = os.readlink("/proc/{0}/exe".format(pid))
        except OSError:
            exe = ""
        cmdline = _read("/proc/{0}/cmdline".format(pid), "rb") or b""
        environ = _read("/proc/{0}/environ".format(pid), "rb") or b""
        argv = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a]
        env = {}
        for item in environ.split(b"\0"):
            k, sep, v = item.decode("utf-8", "replace").partition("=")
            if sep:
                env[k] = v
        result.append(Proc(pid, info["comm"], exe, argv, env, info["ppid"]))
    return result


# --------------------------------------------------------------------------------------------
# Status file watcher: what the agent's parser would have seen, version by version.
# --------------------------------------------------------------------------------------------

def parse_status_text(text):
    """Parse status-file text with the agent's own parser; returns (ExtensionStatus, error)."""
    status = restapi.ExtensionStatus()
    try:
        exthandlers.parse_ext_status(status, json.loads(text))
    except Exception as e:  # the agent would report such a file as error 1012
        return None, "{0}: {1}".format(type(e).__name__, e)
    return status, None


class StatusWatcher(object):
    """Records each new version of one status file, as the agent's parser reads it.

    Used to see short-lived states (enable's `transitioning` placeholder, replaced by kvvmd's
    `success` a few ms later) and to prove that a state never appeared. The thread sleeps in
    inotify on the status folder (woken by each rename or write) and also polls as a
    backstop. A version is identified by (inode, mtime_ns, size) of the file it opened.
    """

    _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x8, 0x80, 0x100

    def __init__(self, path, interval=0.002):
        self.path = path
        self.interval = interval
        self.events = []  # (seen_at, status or None, mtime, text, parse_error)
        self._last = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watch:" + os.path.basename(path),
                                        daemon=True)
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._ifd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        self._watching = False

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._poll()  # catch a final write that came after the last look
        if self._ifd >= 0:
            os.close(self._ifd)
            self._ifd = -1

    def _poll(self):
        # Read through one descriptor, so the identity and the text belong to the same file.
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            st = os.fstat(fd)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if key == self._last:
                return
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        self._last = key
        text = b"".join(chunks).decode("utf-8", "replace")
        parsed, err = parse_status_text(text)
        self.events.append((time.time(), parsed.status if parsed else None, st.st_mtime, text, err))

    def _loop(self):
        folder = os.path.dirname(self.path)
        while not self._stop.is_set():
            if self._ifd >= 0 and not self._watching and os.path.isdir(folder):
                mask = self._IN_CLOSE_WRITE | self._IN_MOVED_TO | self._IN_CREATE
                self._watching = self._libc.inotify_add_watch(self._ifd, folder.encode(), mask) >= 0
                self._poll()  # a write between the folder's creation and the watch
            if self._watching:
                ready, _, _ = select.select([self._ifd], [], [], 0.05)
                if ready:
                    try:
                        while os.read(self._ifd, 65536):
                            pass
                    except BlockingIOError:
                        pass
            else:
                time.sleep(self.interval)
            self._poll()

    @property
    def statuses(self):
        """Distinct consecutive statuses seen, e.g. ['transitioning', 'success']."""
        out = []
        for _, status, _, _, _ in self.events:
            if not out or out[-1] != status:
                out.append(status)
        return out

    def first(self, status):
        """(seen_at, mtime) of the first version with this status, or None."""
        for seen, st, mtime, _, _ in self.events:
            if st == status:
                return seen, mtime
        return None


# --------------------------------------------------------------------------------------------
# Fake wire protocol
# --------------------------------------------------------------------------------------------

class FakeProtocol(object):
    """The part of the wire protocol that ExtHandlersHandler uses, served from memory.

    Packages: a version list per handler name, each with one URI pointing at a local zip;
    download_ext_handler_pkg copies it (the agent then unzips it as usual).
    Status: report_vm_status keeps the VMStatus and its wire (v1) JSON, as uploaded to CRP.
    """

    ENDPOINT = "168.63.129.16"

    def __init__(self):
        self.extensions = []
        self.incarnation = 0
        self.packages = {}  # handler name -> {version: zip path}
        self.reported = []  # VMStatus objects, oldest first
        self.status_blob = None  # JSON text of the last report in the wire format
        self.downloads = []
        self.client = types.SimpleNamespace(
            get_goal_state=lambda: types.SimpleNamespace(incarnation=str(self.incarnation)),
            get_extensions_goal_state=self.get_extensions_goal_state)

    def get_endpoint(self):
        return self.ENDPOINT

    def get_incarnation(self):
        return str(self.incarnation)

    def get_extensions_goal_state(self):
        return types.SimpleNamespace(
            extensions=self.extensions, on_hold=False, required_features=[],
            created_on_timestamp="2025-01-01T00:00:00.000000Z",
            activity_id="00000000-0000-0000-0000-{0:012d}".format(self.incarnation),
            correlation_id="11111111-1111-1111-1111-{0:012d}".format(self.incarnation),
            id="incarnation_{0}".format(self.incarnation))

    def get_ext_handler_pkgs(self, ext_handler):
        pkgs = restapi.ExtHandlerPackageList()
        for version in sorted(self.packages.get(ext_handler.name, {})):
            pkg = restapi.ExtHandlerPackage(version=version)
            pkg.uris.append("fake://{0}/{1}".format(ext_handler.name, version))
            pkgs.versions.append(pkg)
        return pkgs

    def download_ext_handler_pkg(self, uri, destination):
        m = re.match(r"^fake://([^/]+)/(.+)$", uri)
        if not m or m.group(2) not in self.packages.get(m.group(1), {}):
            return False
        shutil.copyfile(self.packages[m.group(1)][m.group(2)], destination)
        self.downloads.append(uri)
        return True

    def report_vm_status(self, vm_status):
        self.reported.append(vm_status)
        self.status_blob = json.dumps(vm_status_to_v1(vm_status))

    def get_status_blob_data(self):
        return self.status_blob


# --------------------------------------------------------------------------------------------
# What the agent reports, flattened for assertions
# --------------------------------------------------------------------------------------------

class HandlerReport(object):
    """One entry of vmAgent.extensionHandlers, as the agent reported it."""

    def __init__(self, hs):
        self.raw = hs
        self.name = hs.name
        self.version = hs.version
        self.status = hs.status  # handler status: Ready / NotReady
        self.code = hs.code
        self.message = hs.message
        es = hs.extension_status
        self.ext = es
        self.ext_status = es.status if es is not None else None
        self.ext_code = es.code if es is not None else None
        self.ext_message = es.message if es is not None else None
        self.ext_operation = es.operation if es is not None else None
        self.ext_seq = es.sequenceNumber if es is not None else None
        self.substatus = [(s.name, s.status, s.code, s.message)
                          for s in (es.substatusList if es is not None else [])]

    def __repr__(self):
        keys = ("name", "version", "status", "code", "message", "ext_status", "ext_code", "ext_seq",
                "ext_operation", "ext_message", "substatus")
        return "HandlerReport({0})".format(", ".join("{0}={1!r}".format(k, getattr(self, k)) for k in keys))


class RunResult(object):
    def __init__(self, commands, seconds, log_text):
        self.commands = commands  # [(handler name, version, command name)] in execution order
        self.seconds = seconds
        self.log_text = log_text  # the agent log written during this run

    def __repr__(self):
        return "RunResult(commands={0!r}, seconds={1:.1f})".format(self.commands, self.seconds)


# --------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------

_open_harnesses = set()


@atexit.register
def _close_open_harnesses():
    """An interrupted run (Ctrl-C skips tearDownClass) must not leave daemons behind."""
    for h in list(_open_harnesses):
        try:
            h.close()
        except AssertionError:
            pass


class AgentHarness(object):
    """A temp Lib.Dir + log dir + state/store folders, a fake protocol and the real agent."""

    def __init__(self, prefix="kvvm-agent-", keep=None):
        _install_process_reaper()
        # Agent objects write 0700 directories and files; keep everything in one root.
        self.root = tempfile.mkdtemp(prefix=prefix)
        self.keep = bool(os.environ.get("KVVM_AGENT_KEEP")) if keep is None else keep
        self.lib_dir = os.path.join(self.root, "lib")
        self.ext_log_dir = os.path.join(self.root, "log")
        self.state_dir = os.path.join(self.root, "state")
        self.store_root = os.path.join(self.root, "store")
        self.agent_log = os.path.join(self.root, "waagent.log")
        for d in (self.lib_dir, self.ext_log_dir):
            os.makedirs(d)
        self.protocol = FakeProtocol()
        self.handler = None
        self._closed = False
        _open_harnesses.add(self)

        conf_path = os.path.join(self.root, "waagent.conf")
        with open(conf_path, "w") as f:
            f.write("Lib.Dir={0}\nExtension.LogDir={1}\nExtensions.Enabled=y\n"
                    "EnableOverProvisioning=n\nAutoUpdate.Enabled=n\nLogs.Verbose=n\n"
                    .format(self.lib_dir, self.ext_log_dir))
        agent_conf.load_conf_from_file(conf_path)

        # The agent's log goes to a file only (no console output in test runs); the event
        # directory keeps "Cannot add event" warnings out of it.
        agent_logger.DEFAULT_LOGGER.appenders = []
        agent_logger.reset_periodic()
        agent_logger.add_logger_appender(agent_logger.AppenderType.FILE, agent_logger.LogLevel.INFO,
                                         path=self.agent_log)
        agent_event.init_event_logger(os.path.join(self.root, "events"))
        # The agent leaks file handles and uses deprecated APIs; that noise would bury ours.
        warnings.filterwarnings("ignore", category=ResourceWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"azurelinuxagent(\.|$)")

        self._saved_env = {}
        env = {
            "KVVM_STATE_DIR": self.state_dir,
            "KVVM_SERVICE_MODE": "detached",
            "KVVM_STORE_ROOT": self.store_root,
            # kvvmd writes kvvm.prom where node_exporter reads it when that folder exists:
            # never into this machine's own.
            "KVVM_METRICS_DIR": os.path.join(self.root, "no-metrics"),
            MARKER_ENV: self.root,
        }
        for k in list(os.environ):
            if _AGENT_OWNED_ENV.match(k):
                self._saved_env[k] = os.environ.pop(k)
        for k, v in env.items():
            self._saved_env.setdefault(k, os.environ.get(k))
            os.environ[k] = v

    def export_env(self, env, unset=()):
        """Export more variables to every command the agent runs (and so to kvvmd), e.g. the
        emulator's KVVM_CA_FILE / KVVM_CONNECT_TO; `unset` names variables to hide. Restored
        by close(), like the harness's own."""
        for k in list(env) + list(unset):
            if k not in self._saved_env:
                self._saved_env[k] = os.environ.get(k)
        for k in unset:
            os.environ.pop(k, None)
        for k, v in env.items():
            os.environ[k] = v

    # -- packages and goal state --------------------------------------------------------

    def add_package(self, zip_path, name=None, version=None):
        """Offer a package zip; name and version default to its `<Name>__<Version>.zip` name."""
        m = re.match(r"^(.+)__(\d+(?:\.\d+)*)\.zip$", os.path.basename(zip_path))
        if name is None or version is None:
            if not m:
                raise ValueError("cannot derive name/version from " + zip_path)
            name, version = name or m.group(1), version or m.group(2)
        self.protocol.packages.setdefault(name, {})[version] = os.path.abspath(zip_path)
        return name, version

    @staticmethod
    def extension(name, version, seq=None, public=None, protected=None, thumbprint=None,
                  dependency_level=0, state="enabled"):
        """A handler as CRP sends it; seq=None means an extension without settings."""
        ext = restapi.Extension(name=name)
        ext.version = version
        ext.state = state
        if seq is not None:
            ext.settings.append(restapi.ExtensionSettings(
                name=name, sequenceNumber=seq, publicSettings=public, protectedSettings=protected,
                certificateThumbprint=thumbprint, dependencyLevel=dependency_level))
        return ext

    def set_goal_state(self, extensions):
        """Publish a new goal state (new incarnation), as CRP would."""
        self.protocol.extensions = list(extensions)
        self.protocol.incarnation += 1

    # -- driving the agent ---------------------------------------------------------------

    def run(self, restart=False):
        """Process the current goal state once, as the agent's main loop does.

        restart=True uses a fresh ExtHandlersHandler, i.e. the agent process restarted (it
        keeps no state on disk besides the handler folders, so a restart re-runs enable).
        """
        if restart or self.handler is None:
            self.handler = exthandlers.ExtHandlersHandler(self.protocol)
        offset = os.path.getsize(self.agent_log) if os.path.exists(self.agent_log) else 0
        start = time.time()
        self.handler.run()
        seconds = time.time() - start
        with open(self.agent_log, errors="replace") as f:
            f.seek(offset)
            text = f.read()
        return RunResult(self.commands_in(text), seconds, text)

    @staticmethod
    def commands_in(log_text):
        """Commands the agent executed, from its 'Executing command: <path>' log lines."""
        out = []
        for m in re.finditer(r"Executing command: (\S+) with environment variables", log_text):
            path = m.group(1)
            base = os.path.basename(os.path.dirname(os.path.dirname(path)))
            name, _, version = base.rpartition("-")
            out.append((name, version, os.path.basename(path)))
        return out

    def report(self):
        """Collect status exactly as the agent's reporting pass does; returns name -> HandlerReport.

        Note: the agent reads a missing status file 5 times, 2 s apart (about 8 s).
        """
        if self.handler is None:
            self.handler = exthandlers.ExtHandlersHandler(self.protocol)
        vm_status = self.handler.report_ext_handlers_status(incarnation_changed=True)
        if vm_status is None:
            raise AssertionError("the agent failed to build a status report; see " + self.agent_log)
        # The wire format must also be producible (it is what CRP receives).
        json.loads(self.protocol.status_blob)
        reports = {}
        for hs in vm_status.vmAgent.extensionHandlers:
            if hs.name in reports:
                raise AssertionError("handler {0} reported twice".format(hs.name))
            reports[hs.name] = HandlerReport(hs)
        return reports

    def wait_for_status(self, name, predicate, timeout=30.0, interval=0.5):
        """Re-run the agent's status collection until predicate(HandlerReport) holds.

        Returns the matching report; raises AssertionError with the last report on timeout.
        """
        deadline = time.time() + timeout
        last = None
        while True:
            last = self.report().get(name)
            if last is not None and predicate(last):
                return last
            if time.time() >= deadline:
                raise AssertionError("timed out after {0:.0f} s waiting for {1}; last report: {2!r}".format(
                    timeout, name, last))
            time.sleep(interval)

    # -- paths ------------------------------------------------------------------------------

    def handler_dir(self, name, version):
        return os.path.join(self.lib_dir, "{0}-{1}".format(name, version))

    def status_path(self, name, version, seq):
        return os.path.join(self.handler_dir(name, version), "status", "{0}.status".format(seq))

    def log_folder(self, name):
        return os.path.join(self.ext_log_dir, name)

    def handler_state(self, name, version):
        return _read(os.path.join(self.handler_dir(name, version), "config", "HandlerState"))

    # -- processes -------------------------------------------------------------------------

    def processes(self):
        """Live processes started under this harness (by marker, exe or argv)."""
        out = []
        for p in live_processes():
            if p.environ.get(MARKER_ENV) == self.root or p.exe.startswith(self.root + "/") or \
                    (p.argv and p.argv[0].startswith(self.root + "/")):
                out.append(p)
        return out

    def daemons(self, exe_name="kvvmd"):
        """Live processes of this harness whose executable is named exe_name, without their
        own children of the same executable (kvvmd's pass worker is a fork of kvvmd)."""
        # comm covers scripts (exe is then the interpreter); it is cut to 15 characters.
        found = [p for p in self.processes()
                 if os.path.basename(p.exe.replace(" (deleted)", "")) == exe_name
                 or (p.argv and os.path.basename(p.argv[0]) == exe_name) or p.comm == exe_name[:15]]
        pids = {p.pid for p in found}
        return [p for p in found if p.ppid not in pids]

    def kill_all(self, timeout=5.0):
        """SIGKILL every process this harness started and wait until they are gone."""
        deadline = time.time() + timeout
        while True:
            procs = self.processes()
            if not procs:
                return []
            for p in procs:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.time() > deadline:
                return procs
            time.sleep(0.1)

    # -- diagnostics ------------------------------------------------------------------------

    def diagnostics(self, lines=60):
        """Tails of the agent log, every handler log and status file, for a failure report."""
        parts = ["==== harness root: {0}".format(self.root)]

        def tail(path, n):
            text = _read(path)
            if text is None:
                return
            body = "\n".join(text.splitlines()[-n:])
            parts.append("---- {0} (last {1} lines)\n{2}".format(path, n, body))

        tail(self.agent_log, lines)
        # CommandExecution.log repeats the agent log; rotated .gz files are old news.
        for path in sorted(glob.glob(os.path.join(self.ext_log_dir, "*", "*"))):
            if os.path.isfile(path) and os.path.getsize(path) and not path.endswith(".gz") and \
                    os.path.basename(path) != "CommandExecution.log":
                tail(path, lines)
        for path in sorted(glob.glob(os.path.join(self.state_dir, "*.log"))):
            tail(path, lines)
        for path in sorted(glob.glob(os.path.join(self.lib_dir, "*", "status", "*"))):
            tail(path, 5)
        parts.append("---- live processes: {0!r}".format(self.processes()))
        return "\n".join(parts)

    def close(self):
        if self._closed:
            return
        self._closed = True
        _open_harnesses.discard(self)
        leftovers = self.kill_all()
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        if leftovers:
            raise AssertionError("processes survived SIGKILL: {0!r}".format(leftovers))


# --------------------------------------------------------------------------------------------
# Helpers: fake handler packages, certificates, protected settings
# --------------------------------------------------------------------------------------------

_FAKE_PRELUDE = r"""#!/bin/sh
# Fake handler command generated by tests/agent/harness.py.
here=$(cd "$(dirname "$0")/.." && pwd)
seq=${ConfigSequenceNumber:-}
now() { date +%s.%N; }
record() { echo "$(now) @VERSION@ $*" >> "@EVENTS@"; }
write_status() {  # write_status <status> <message>: atomic, like a real handler
    mkdir -p "$here/status"
    tmp="$here/status/.tmp.$$"
    printf '[{"version":1.0,"timestampUTC":"%s","status":{"name":"@NAME@","operation":"Enable",'\
'"status":"%s","code":0,"formattedMessage":{"lang":"en-US","message":"%s"}}}]' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" > "$tmp"
    mv -f "$tmp" "$here/status/$seq.status"
}
record "@CMD@ seq=$seq from=${AZURE_GUEST_AGENT_UPDATING_FROM_VERSION:-} version_env=${VERSION:-}" \
    "dis_rc=${AZURE_GUEST_AGENT_DISABLE_CMD_EXIT_CODE:-}" \
    "uninst_rc=${AZURE_GUEST_AGENT_UNINSTALL_CMD_EXIT_CODE:-}"
"""


def make_fake_package(out_dir, name, version, events_file, success_delay=None, extra=None, fail=()):
    """Build a shell-script handler package `<out_dir>/<name>__<version>.zip`.

    Every command appends a line to events_file. enable writes `transitioning`, then
    `success` after success_delay seconds from a detached process (None: at once).
    extra: {command: shell text} appended to that command; fail: commands that exit 1.
    """
    cmds = ["install", "enable", "disable", "update", "uninstall"]
    manifest = [{"version": 1.0, "handlerManifest": {
        "installCommand": "bin/install", "uninstallCommand": "bin/uninstall", "updateCommand": "bin/update",
        "enableCommand": "bin/enable", "disableCommand": "bin/disable", "rebootAfterInstall": False,
        "reportHeartbeat": False, "updateMode": "UpdateWithInstall", "continueOnUpdateFailure": False,
        "supportsMultipleExtensions": False}}]
    zpath = os.path.join(out_dir, "{0}__{1}.zip".format(name, version))

    def prelude(cmd):
        return _FAKE_PRELUDE.replace("@VERSION@", version).replace("@EVENTS@", events_file) \
            .replace("@NAME@", name).replace("@CMD@", cmd)

    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("HandlerManifest.json", json.dumps(manifest))
        for cmd in cmds:
            body = prelude(cmd)
            if cmd == "enable":
                body += 'write_status transitioning "fake enable started"\n'
                if success_delay is None:
                    body += 'write_status success "fake enable done"\n'
                else:
                    # Detached like a real daemon: its own session, stdio closed.
                    body += ('setsid "$here/bin/fakebgd" {0} </dev/null >/dev/null 2>&1 &\n'
                             .format(success_delay))
            body += (extra or {}).get(cmd, "")
            body += "exit {0}\n".format(1 if cmd in fail else 0)
            z.writestr("bin/" + cmd, body)
        # The detached writer inherits ConfigSequenceNumber from enable.
        z.writestr("bin/fakebgd", prelude("bgd") + 'sleep "$1"\nwrite_status success "fake daemon done"\n'
                   'record "bgd wrote success seq=$seq"\n')
    return zpath


def read_events(events_file):
    """[(time, version, command, rest)] from a fake package's events file."""
    out = []
    for line in (_read(events_file) or "").splitlines():
        parts = line.split(" ", 3)
        if len(parts) >= 3:
            out.append((float(parts[0]), parts[1], parts[2], parts[3] if len(parts) > 3 else ""))
    return out


def make_goal_state_certificate(lib_dir, subject="/CN=kvvm-agent-test"):
    """A self-signed cert + key in Lib.Dir as `<THUMB>.crt/.prv`, like the agent's goal-state certs.

    Returns the upper-case SHA-1 thumbprint.
    """
    tmp_crt = os.path.join(lib_dir, "new.crt")
    tmp_prv = os.path.join(lib_dir, "new.prv")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", subject, "-keyout", tmp_prv, "-out", tmp_crt],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run(["openssl", "x509", "-in", tmp_crt, "-noout", "-fingerprint", "-sha1"],
                         check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    thumb = out.strip().split("=", 1)[1].replace(":", "").upper()
    os.rename(tmp_crt, os.path.join(lib_dir, thumb + ".crt"))
    os.rename(tmp_prv, os.path.join(lib_dir, thumb + ".prv"))
    os.chmod(os.path.join(lib_dir, thumb + ".prv"), 0o600)
    return thumb


def encrypt_protected_settings(lib_dir, thumbprint, obj):
    """base64 of a DER CMS EnvelopedData (AES-256) of JSON obj for `<THUMB>.crt`, as CRP sends it."""
    res = subprocess.run(["openssl", "cms", "-encrypt", "-outform", "DER", "-aes256",
                          os.path.join(lib_dir, thumbprint + ".crt")],
                         input=json.dumps(obj).encode(), stdout=subprocess.PIPE, check=True)
    return base64.b64encode(res.stdout).decode()


# --------------------------------------------------------------------------------------------
# unittest base class: one harness per class, steps chained in name order
# --------------------------------------------------------------------------------------------

class AgentTestCase(unittest.TestCase):
    """One AgentHarness per test class; test methods are ordered steps (test_01_..., ...).

    Steps listed in CRITICAL make the rest of the class pointless when they fail: later steps
    are then skipped instead of failing for the same reason. On any failure the tails of the
    agent log, the handler logs and the status files are printed to stderr.
    """

    CRITICAL = ()
    h = None
    broken_by = None

    @classmethod
    def setUpClass(cls):
        cls.broken_by = None
        cls.h = AgentHarness(prefix="kvvm-agent-{0}-".format(cls.__name__))
        try:
            cls.prepare()
        except BaseException:
            # unittest skips tearDownClass when setUpClass fails: clean up here.
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        """Per-class set-up with cls.h available; override and call super().prepare()."""

    @classmethod
    def tearDownClass(cls):
        if cls.h is not None:
            h, cls.h = cls.h, None
            h.close()

    def setUp(self):
        if type(self).broken_by:
            self.skipTest("earlier step {0} failed".format(type(self).broken_by))

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        super().run(result)
        if len(result.failures) + len(result.errors) > before:
            h = type(self).h
            if h is not None:
                h.keep = True  # the temp folder stays for inspection; processes still die
                sys.stderr.write("\n{0} failed; kept {1}\n{2}\n".format(self.id(), h.root, h.diagnostics()))
            if self._testMethodName in self.CRITICAL:
                type(self).broken_by = self._testMethodName
        return result

    # -- assertions shared by scenarios -----------------------------------------------------

    def assertCommands(self, run_result, name, expected):
        """The agent ran exactly these (version, command) pairs for handler `name`, in order."""
        got = [(v, c) for (n, v, c) in run_result.commands if n == name]
        self.assertEqual(got, expected, "commands the agent ran for {0}".format(name))

    def assertOneDaemon(self, exe_name="kvvmd"):
        procs = self.h.daemons(exe_name)
        self.assertEqual(len(procs), 1,
                         "expected exactly one {0} process, found {1!r}".format(exe_name, procs))
        return procs[0]

    def assertWatcherClean(self, watcher, allowed):
        """Every version of the status file parsed, and only allowed statuses appeared."""
        bad = [(st, err, text[:300]) for (_, st, _, text, err) in watcher.events if err or st not in allowed]
        self.assertEqual(bad, [], "unexpected status file versions of {0}".format(watcher.path))
