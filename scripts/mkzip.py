#!/usr/bin/python3
"""Write the extension package zip from a staged tree, reproducibly: entries sorted, one
fixed timestamp, fixed modes. The agent unzips with Python's zipfile (no symlinks, no
modes kept; it adds user-execute itself), so a plain deflated zip is all it needs."""
import os
import sys
import zipfile

STAMP = (2020, 1, 1, 0, 0, 0)


def entries(root):
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(top, name)
            yield full, os.path.relpath(full, root)


def main(root, out):
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for full, rel in entries(root):
            info = zipfile.ZipInfo(rel, STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if rel.startswith("bin/") else 0o644
            info.external_attr = (0o100000 | mode) << 16
            with open(full, "rb") as f:
                z.writestr(info, f.read())
    os.replace(tmp, out)
    print(f"{out}: {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
