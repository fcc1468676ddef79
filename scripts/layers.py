#!/usr/bin/python3
"""The layering check (make check; docs/architecture.md).

A module is a header include/kvvm/<m>.h (or a private src/<layer>/<m>_int.h) and the files
named <m>.c, <m>_<part>.c or <m>_<platform>.c. Each module sits on one layer; a file may
include the headers of its own module and of modules on lower layers, or the same layer
when that adds no cycle. Fails, naming the file and the include, on:
  - an include of a module on a higher layer;
  - a cycle between modules (printed as a path);
  - an OS header in a portable folder, or a POSIX or Win32 type in a public header;
  - a file of a platform folder (posix/, linux/, windows/) outside that folder's suffix.
usage: scripts/layers.py [TOP]   (prints "layers: N passed, N failed" like the suites)
"""
import os
import re
import sys

# Low to high; the flow of design.md read bottom-up.
LAYERS = ["base", "certmat", "settings", "agent", "vault", "store", "service"]
PLATFORMS = {"posix": ("_posix",), "linux": ("_linux",), "windows": ("_windows", "win_")}
# Modules with no portable file: their layer is their header's.
PLATFORM_ONLY = {"fileio": "base", "paths": "base", "proc": "base", "rand": "base",
                 "clock": "base", "thread": "base", "wake": "service", "worker": "service",
                 "service": "service",
                 "acl": "store", "win": "base", "posix": "base"}
# Files whose module is not their name's first word.
ALIASES = {"rc2": "p12", "unit_linux": "service", "jansson_link_linux": None, "version": "version",
           "store_hooks_int": "store"}
OS_HEADERS = re.compile(r"#include <(unistd|fcntl|poll|signal|dirent|pwd|grp|dlfcn|spawn|"
                        r"termios|netdb|arpa/[a-z]+|sys/[a-z_]+|windows|winsock2|wincrypt|"
                        r"bcrypt|ws2tcpip|io|direct|process)\.h>")
OS_TYPES = re.compile(r"\b(sigset_t|mode_t|uid_t|gid_t|pid_t|off_t|ssize_t|struct stat|"
                      r"HANDLE|DWORD|HKEY|WCHAR|wchar_t|SOCKET)\b")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


class Check:
    def __init__(self, top):
        self.top = top
        self.passed = 0
        self.failed = 0
        self.headers = {os.path.basename(h)[:-2]
                        for h in os.listdir(os.path.join(top, "include/kvvm"))
                        if h.endswith(".h")}
        self.private = {}
        self.layer = dict(PLATFORM_ONLY)

    def ok(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL: " + what)
        return cond

    def module_of(self, name):
        """The module a file or header name belongs to: the longest known module prefix."""
        base = re.sub(r"\.(c|h)$", "", name)
        if base in ALIASES:
            return ALIASES[base]
        base = re.sub(r"_int$", "", base)
        base = re.sub(r"_(posix|linux|windows)$", "", base)
        known = self.headers | set(self.private)
        best = None
        for m in known:
            if base == m or base.startswith(m + "_"):
                if best is None or len(m) > len(best):
                    best = m
        return best or base

    def sources(self):
        for d in sorted(os.listdir(os.path.join(self.top, "src"))):
            path = os.path.join(self.top, "src", d)
            if os.path.isdir(path):
                for f in sorted(os.listdir(path)):
                    if f.endswith((".c", ".h")):
                        yield d, f, os.path.join(path, f)

    def place_modules(self):
        """Each portable folder gives its modules their layer."""
        for d, f, _ in self.sources():
            if f.endswith("_int.h"):
                self.private[f[:-6]] = d
        for d, f, _ in self.sources():
            if d in LAYERS:
                m = self.module_of(f)
                if m and self.ok(self.layer.get(m, d) == d,
                                 f"src/{d}/{f}: module {m} also lives on layer {self.layer.get(m)}"):
                    self.layer[m] = d

    def includes(self, path):
        text = strip_comments(open(path, encoding="utf-8").read())
        return re.findall(r'#include\s+"(?:kvvm/|[a-z]+/)?([a-z0-9_]+)\.h"', text), text

    def public_headers(self):
        inc = os.path.join(self.top, "include/kvvm")
        for h in sorted(os.listdir(inc)):
            yield "include", h, os.path.join(inc, h)

    def edges(self):
        graph = {}
        for d, f, path in list(self.sources()) + list(self.public_headers()):
            m = self.module_of(f)
            if m is None:
                continue
            incs, text = self.includes(path)
            if d in LAYERS:
                hit = OS_HEADERS.search(text)
                self.ok(not hit, f"src/{d}/{f}: portable file includes {hit.group(0) if hit else ''}")
            if d in PLATFORMS:
                self.ok(f.endswith(".h") or any(s in f for s in PLATFORMS[d]),
                        f"src/{d}/{f}: a file of src/{d}/ carries its suffix {PLATFORMS[d][0]}")
            for h in incs:
                t = self.module_of(h + ".h")
                if t and t != m:
                    where = f"include/kvvm/{f}" if d == "include" else f"src/{d}/{f}"
                    graph.setdefault(m, {}).setdefault(t, where)
        return graph

    def check_ranks(self, graph):
        for m, targets in sorted(graph.items()):
            for t, where in sorted(targets.items()):
                lm, lt = self.layer.get(m), self.layer.get(t)
                if lm is None or lt is None:
                    self.ok(False, f"{where}: module {m if lm is None else t} has no layer")
                    continue
                self.ok(LAYERS.index(lt) <= LAYERS.index(lm),
                        f"{where}: {m} ({lm}) includes {t} ({lt}), a higher layer")

    def check_cycles(self, graph):
        state = {}

        def visit(m, path):
            state[m] = 1
            for t in sorted(graph.get(m, {})):
                if state.get(t) == 1:
                    cyc = path[path.index(t):] + [t] if t in path else [m, t]
                    self.ok(False, "include cycle: " + " -> ".join(cyc) +
                            f" (first at {graph[m][t]})")
                elif not state.get(t):
                    visit(t, path + [t])
            state[m] = 2

        for m in sorted(graph):
            if not state.get(m):
                visit(m, [m])
        self.ok(True, "cycles searched")

    def check_public_headers(self):
        inc = os.path.join(self.top, "include/kvvm")
        for h in sorted(os.listdir(inc)):
            text = strip_comments(open(os.path.join(inc, h), encoding="utf-8").read())
            hit = OS_HEADERS.search(text) or OS_TYPES.search(text)
            ifdefs = len(re.findall(r"#\s*if.*_WIN32", text))
            self.ok(not hit, f"include/kvvm/{h}: carries {hit.group(0) if hit else ''}")
            self.ok(ifdefs == 0 or h == "compat.h",
                    f"include/kvvm/{h}: #ifdef _WIN32 belongs only in compat.h")


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    c = Check(top)
    c.place_modules()
    graph = c.edges()
    c.check_ranks(graph)
    c.check_cycles(graph)
    c.check_public_headers()
    print(f"layers: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
