"""Play the Windows guest agent's side of the handler contract under wine (docs: windows.md).

What the agent does and this driver copies (shared/docs/windows.md, "The Windows guest agent's
handler contract"):
  - the package zip is unzipped into C:\\Packages\\Plugins\\<Publisher>.<Type>\\<version>, the
    working directory of every command; commands come from its HandlerManifest.json;
  - HandlerEnvironment.json in that folder: a one-element array, `version` a number (a string
    on Arc), handlerEnvironment with logFolder (C:\\WindowsAzure\\Logs\\Plugins\\<name>\\<version>),
    configFolder (RuntimeSettings), statusFolder (Status), heartbeatFile and the agent's extras;
  - RuntimeSettings\\<n>.settings with publicSettings (protectedSettings absent here);
  - ConfigSequenceNumber in each command's environment; Status\\<n>.status read back.

Wine precautions (windows.md): a fresh WINEPREFIX per driver, headless (WINEDEBUG=-all, no
DISPLAY), wine's output to files (never a pipe), one ordinary wine process kept alive while
services run (wine ends services when the last ordinary process exits), `wineserver -k` at
the end. A Windows service gets the service manager's environment, not the caller's: the
testing aids (KVVM_CA_FILE, KVVM_CONNECT_TO, ...) are given to the commands only, and reach
kvvmd through the kvvmd.env file enable writes (service_env_windows.c). They are not set as
machine environment variables: services.exe would hand them to kvvmd and hide a kvvmd.env
that does not work.

Run with /usr/bin/python3 (standard library only).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile

WINE = shutil.which("wine") or "/usr/bin/wine"
WINESERVER = shutil.which("wineserver") or "/usr/bin/wineserver"
BOOT_TIMEOUT = 120.0
COMMAND_TIMEOUT = 120.0
STATUSES = ("transitioning", "success", "error", "warning")
HANDLER_STATE_KEY = r"HKLM\Software\Microsoft\Windows Azure\HandlerState"


class WineError(AssertionError):
    """A wine step the scenario cannot go on without (boot, a helper that would not run)."""


class CmdResult(object):
    def __init__(self, name, rc, seconds, out, err):
        self.name, self.rc, self.seconds, self.out, self.err = name, rc, seconds, out, err

    def __repr__(self):
        return "CmdResult({0}, rc={1}, {2:.2f} s, out={3!r}, err={4!r})".format(
            self.name, self.rc, self.seconds, self.out[-800:], self.err[-800:])


class Status(object):
    """One Status\\<n>.status file, checked against the shape the agent accepts."""

    def __init__(self, text):
        self.text = text
        doc = json.loads(text)
        if not isinstance(doc, list) or len(doc) != 1 or not isinstance(doc[0], dict):
            raise ValueError("a status file is a one-element array: " + text[:200])
        top = doc[0]
        st = top.get("status")
        if not isinstance(st, dict):
            raise ValueError("no status object: " + text[:200])
        if st.get("status") not in STATUSES:
            raise ValueError("status.status {0!r} is not one of {1}".format(st.get("status"), STATUSES))
        code = st.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise ValueError("status.code must be an integer: {0!r}".format(code))
        fm = st.get("formattedMessage") or {}
        self.version = top.get("version")
        self.timestamp = top.get("timestampUTC")
        self.status = st["status"]
        self.code = code
        self.operation = st.get("operation")
        self.message = fm.get("message")
        self.substatus = [(s.get("name"), s.get("status"), s.get("code"),
                           (s.get("formattedMessage") or {}).get("message"))
                          for s in st.get("substatus") or []]

    def __repr__(self):
        return "Status({0}, code={1}, op={2!r}, message={3!r}, substatus={4!r})".format(
            self.status, self.code, self.operation, self.message, self.substatus)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _proc_environ(pid):
    try:
        with open("/proc/{0}/environ".format(pid), "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.decode("utf-8", "replace").partition("=")
        if sep:
            env[k] = v
    return env


def _proc_cmdline(pid):
    try:
        with open("/proc/{0}/cmdline".format(pid), "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _alive(pid):
    try:
        with open("/proc/{0}/stat".format(pid)) as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class WindowsAgent(object):
    """A fresh wine prefix playing one Windows VM with its guest agent.

        a = WindowsAgent(aids={"KVVM_CA_FILE": ..., "KVVM_CONNECT_TO": ...}, files={...})
        pkg = a.install_package("dist/Kvvm.Azure.KeyVaultCertsWindows__0.1.0.zip")
        a.write_settings(pkg, 1, {...})
        r = a.run(pkg, "enable", seq=1)
        st = a.wait_status(pkg, 1, lambda s: s.status == "success")
        a.close()
    """

    def __init__(self, aids=None, files=None, keep=None, prefix="kvvm-win-"):
        self.root = tempfile.mkdtemp(prefix=prefix)
        self.keep = bool(os.environ.get("KVVM_WIN_KEEP")) if keep is None else keep
        self.prefix = os.path.join(self.root, "wp")
        self.logs = os.path.join(self.root, "cmdlogs")
        os.makedirs(self.logs)
        self.aids = dict(aids or {})
        self._n = 0
        self._holder = None
        self._closed = False
        self.env = self._base_env()
        try:
            self._boot()
            for win_path, data in (files or {}).items():
                self.put_file(win_path, data)
            self._start_holder()
        except BaseException:
            self.close()
            raise

    # -- wine itself --------------------------------------------------------------------

    def _base_env(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ("DISPLAY", "WAYLAND_DISPLAY", "ConfigSequenceNumber")
               and not k.startswith("WINE") and not k.startswith("KVVM_")}
        # No Mono or Gecko installer prompts at boot (nothing here needs them).
        env.update({"WINEPREFIX": self.prefix, "WINEDEBUG": "-all", "WINEARCH": "win64",
                    "WINEDLLOVERRIDES": "mscoree,mshtml="})
        env.update(self.aids)
        return env

    def _boot(self):
        start = time.time()
        res = self.wine(["wineboot", "-i"], timeout=BOOT_TIMEOUT, name="wineboot")
        if res.rc != 0 or not os.path.isdir(os.path.join(self.prefix, "drive_c", "windows")):
            raise WineError("wineboot failed: {0!r}".format(res))
        # A first boot returns while the prefix's set-up still runs and restarts services.exe:
        # two services.exe then answer the svcctl pipe, one knowing a service created through
        # the other and one not, so StartServiceW times out (1053). Let that session end; the
        # next command boots the finished prefix with one services.exe.
        try:
            subprocess.run([WINESERVER, "-w"], env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=BOOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise WineError("the first wine session did not end within {0:.0f} s".format(BOOT_TIMEOUT))
        self.boot_seconds = time.time() - start

    def _start_holder(self):
        # An ordinary process that outlives every command: `cmd /c pause` waits for a key on
        # a stdin this driver holds open and never writes to (only stdin is a pipe).
        r, w = os.pipe()
        out = open(os.path.join(self.logs, "holder.out"), "wb")
        try:
            self._holder = subprocess.Popen([WINE, "cmd", "/c", "pause"], stdin=r, stdout=out,
                                            stderr=subprocess.STDOUT, env=self.env,
                                            cwd=self.root, start_new_session=True)
        finally:
            os.close(r)
            out.close()
        self._holder_w = w

    def wine(self, argv, cwd=None, env=None, timeout=COMMAND_TIMEOUT, name=None):
        """Run `wine argv...` to completion; stdout/stderr go to files, returned as text."""
        self._n += 1
        base = os.path.join(self.logs, "{0:03d}-{1}".format(self._n, re.sub(r"[^\w.-]", "_", name or argv[0])))
        full_env = dict(self.env)
        full_env.update(env or {})
        start = time.time()
        with open(base + ".out", "wb") as out, open(base + ".err", "wb") as err:
            p = subprocess.Popen([WINE] + list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 cwd=cwd or self.root, env=full_env, start_new_session=True)
            try:
                rc = p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise AssertionError("{0} did not finish within {1:.0f} s; output in {2}.*".format(
                    name or argv, timeout, base))
        return CmdResult(name or argv[0], rc, time.time() - start, _read(base + ".out") or "",
                         _read(base + ".err") or "")

    # -- paths and registry --------------------------------------------------------------

    def unix_path(self, win_path):
        """C:\\A\\B -> <prefix>/drive_c/A/B (the driver creates every folder with this case)."""
        m = re.match(r"^[Cc]:\\?(.*)$", win_path)
        if not m:
            raise ValueError("not a C: path: " + win_path)
        parts = [p for p in m.group(1).split("\\") if p]
        return os.path.join(self.prefix, "drive_c", *parts)

    def put_file(self, win_path, data):
        path = self.unix_path(win_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())

    def reg_add(self, key, name, value, kind="REG_SZ"):
        res = self.wine(["reg", "add", key, "/v", name, "/t", kind, "/d", str(value), "/f"], name="reg-add")
        if res.rc != 0:
            raise WineError("reg add {0}\\{1} failed: {2!r}".format(key, name, res))

    def reg_query(self, key, name):
        """A registry value as text (REG_DWORD as an int), or None when it is absent."""
        res = self.wine(["reg", "query", key, "/v", name], name="reg-query")
        if res.rc != 0:
            return None
        m = re.search(r"^\s+{0}\s+(REG_\w+)\s+(.*?)\s*$".format(re.escape(name)), res.out, re.M | re.I)
        if not m:
            return None
        return int(m.group(2), 16) if m.group(1) == "REG_DWORD" else m.group(2)

    # -- the package folder, as the agent lays it out ------------------------------------

    def install_package(self, zip_path, env_version=1.0):
        """Unzip <Name>__<version>.zip into C:\\Packages\\Plugins\\<Name>\\<version> and write
        HandlerEnvironment.json (env_version: 1.0 as Azure writes it, "1.0" as on Arc)."""
        m = re.match(r"^(.+)__(\d+(?:\.\d+)*)\.zip$", os.path.basename(zip_path))
        if not m:
            raise ValueError("not <Name>__<version>.zip: " + zip_path)
        pkg = Package(self, m.group(1), m.group(2))
        os.makedirs(pkg.unix_dir)
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(pkg.unix_dir)
        for folder in (pkg.config_dir, pkg.status_dir, pkg.log_dir):
            os.makedirs(self.unix_path(folder), exist_ok=True)
        henv = [{"version": env_version, "name": pkg.name, "handlerEnvironment": {
            "logFolder": pkg.log_dir, "configFolder": pkg.config_dir, "statusFolder": pkg.status_dir,
            "heartbeatFile": pkg.status_dir + "\\HeartBeat.Json",
            "eventsFolder": pkg.log_dir + "\\Events",
            "deploymentid": "00000000-0000-0000-0000-000000000000", "rolename": "kvvmwintest",
            "instance": "_kvvmwintest", "hostResolverAddress": "168.63.129.16"}}]
        with open(os.path.join(pkg.unix_dir, "HandlerEnvironment.json"), "w") as f:
            json.dump(henv, f)
        return pkg

    def remove_package(self, pkg):
        """What the agent does after a successful uninstall: the package folder goes."""
        shutil.rmtree(pkg.unix_dir)

    def write_settings(self, pkg, seq, public):
        doc = {"runtimeSettings": [{"handlerSettings": {"publicSettings": public}}]}
        with open(self.unix_path("{0}\\{1}.settings".format(pkg.config_dir, seq)), "w") as f:
            json.dump(doc, f)

    def run(self, pkg, command, seq, env=None, timeout=COMMAND_TIMEOUT):
        """Run a manifest command (install, enable, ...) from the package folder, as the agent
        does: working directory the package folder, ConfigSequenceNumber set."""
        line = pkg.manifest()[command + "Command"]
        # A manifest command is a relative exe path, possibly with arguments.
        argv = line.split()
        run_env = {"ConfigSequenceNumber": str(seq)}
        run_env.update(env or {})
        return self.wine(argv, cwd=pkg.unix_dir, env=run_env, timeout=timeout, name=command)

    def read_status(self, pkg, seq):
        """The parsed Status\\<seq>.status, or None when it is absent. A file that does not
        parse raises ValueError (the agent would report it as an error)."""
        text = _read(self.unix_path("{0}\\{1}.status".format(pkg.status_dir, seq)))
        if text is None or not text.strip():
            return None
        return Status(text)

    def wait_status(self, pkg, seq, predicate, timeout=30.0, interval=0.1):
        """Poll Status\\<seq>.status until predicate(Status) holds; returns (Status, seen), seen
        being the distinct consecutive statuses observed (e.g. ['transitioning', 'success'])."""
        deadline = time.time() + timeout
        seen, last, bad = [], None, None
        while True:
            try:
                last = self.read_status(pkg, seq)
            except ValueError as e:
                last, bad = None, e  # a reader can meet a half-written file; the agent retries too
            if last is not None and (not seen or seen[-1] != last.status):
                seen.append(last.status)
            if last is not None and predicate(last):
                return last, seen
            if time.time() >= deadline:
                raise AssertionError("timed out after {0:.0f} s waiting on {1}.status; seen {2}, last {3!r}{4}"
                                     .format(timeout, seq, seen, last,
                                             "" if last else "; last parse error: {0}".format(bad)))
            time.sleep(interval)

    # -- processes -----------------------------------------------------------------------

    def processes(self, exe_name=None):
        """[(unix pid, argv)] of this prefix's processes, optionally one executable's."""
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or not _alive(int(name)):
                continue
            if _proc_environ(name).get("WINEPREFIX") != self.prefix:
                continue
            argv = _proc_cmdline(name)
            exe = re.split(r"[\\/]", argv[0])[-1].lower() if argv else ""
            if exe_name is None or exe == exe_name.lower():
                out.append((int(name), argv))
        return out

    def kill(self, unix_pid):
        os.kill(unix_pid, signal.SIGKILL)
        deadline = time.time() + 5
        while _alive(unix_pid):
            if time.time() > deadline:
                raise AssertionError("process {0} survived SIGKILL".format(unix_pid))
            time.sleep(0.05)

    # -- diagnostics and the end ---------------------------------------------------------

    def diagnostics(self, pkg=None, lines=40):
        parts = ["==== wine prefix {0}".format(self.prefix)]
        names = sorted(os.listdir(self.logs))[-6:]
        for n in names:
            text = _read(os.path.join(self.logs, n)) or ""
            if text.strip():
                parts.append("---- {0}\n{1}".format(n, "\n".join(text.splitlines()[-lines:])))
        if pkg is not None:
            for folder in (pkg.log_dir, pkg.status_dir, r"C:\ProgramData\kvvm"):
                d = self.unix_path(folder)
                for dirpath, _, files in os.walk(d):
                    for f in sorted(files):
                        text = _read(os.path.join(dirpath, f)) or ""
                        parts.append("---- {0}\n{1}".format(os.path.join(dirpath, f),
                                                           "\n".join(text.splitlines()[-lines:])))
        parts.append("---- processes: {0!r}".format(self.processes()))
        return "\n".join(parts)

    def close(self):
        if self._closed:
            return
        self._closed = True
        subprocess.run([WINESERVER, "-k"], env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        if self._holder is not None:
            os.close(self._holder_w)
            try:
                self._holder.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._holder.pid, signal.SIGKILL)
                self._holder.wait()
        for pid, _ in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


class Package(object):
    """One installed version: its Windows paths, as the agent names them."""

    def __init__(self, agent, name, version):
        self.agent, self.name, self.version = agent, name, version
        self.dir = "C:\\Packages\\Plugins\\{0}\\{1}".format(name, version)
        self.unix_dir = agent.unix_path(self.dir)
        self.config_dir = self.dir + "\\RuntimeSettings"
        self.status_dir = self.dir + "\\Status"
        self.log_dir = "C:\\WindowsAzure\\Logs\\Plugins\\{0}\\{1}".format(name, version)
        self.handler_state_key = "{0}\\{1}_{2}".format(HANDLER_STATE_KEY, name, version)

    def manifest(self):
        with open(os.path.join(self.unix_dir, "HandlerManifest.json")) as f:
            return json.load(f)[0]["handlerManifest"]

    def exe(self, name):
        return self.dir + "\\bin\\" + name
