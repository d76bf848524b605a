#!/usr/bin/env python3
"""Check an archive against the space folder it was made from.

    verify_zip.py ZIP DIR

Passes (exit 0) when Python's zipfile finds no CRC error (testzip), the
entry names are exactly the relative paths of the files under DIR, every
entry is byte-identical to its file, no entry is a directory, link or
absolute/.. path, and the entries come in restore order (space.json,
sila.md, secrets, ops/, then the rest; key order within each group). Prints one JSON line with counts; on failure the first
problems go to stderr and the exit status is 1.
"""
import json
import os
import sys
import zipfile


def restore_order(name):
    rank = {"space-v1/space.json": 0, "sila.md": 1, "space-v1/secrets": 2}
    r = rank.get(name, 3 if name.startswith("space-v1/ops/") else 4)
    return (r, name.encode())


def main():
    zpath, root = sys.argv[1], sys.argv[2]
    problems = []
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            files[os.path.relpath(p, root).replace(os.sep, "/")] = p
    with zipfile.ZipFile(zpath) as z:
        bad = z.testzip()
        if bad is not None:
            problems.append("CRC error in %r" % bad)
        names = [i.filename for i in z.infolist()]
        if len(names) != len(set(names)):
            problems.append("duplicate entry names")
        if sorted(names, key=restore_order) != names:
            problems.append("entries are not in restore order")
        for info in z.infolist():
            n = info.filename
            if n.startswith("/") or ".." in n.split("/") or n.endswith("/"):
                problems.append("bad entry name %r" % n)
                continue
            if n not in files:
                problems.append("entry %r has no source file" % n)
                continue
            with open(files[n], "rb") as f:
                if z.read(info) != f.read():
                    problems.append("entry %r differs from its file" % n)
        missing = set(files) - set(names)
        for n in sorted(missing)[:10]:
            problems.append("file %r is missing from the archive" % n)
    print(json.dumps({"entries": len(names), "files": len(files),
                      "problems": len(problems)}))
    for p in problems[:20]:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
