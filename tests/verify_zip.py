#!/usr/bin/env python3
"""Check an archive against the space folder it was made from.

    verify_zip.py ZIP DIR

Passes (exit 0) when Python's zipfile finds no CRC error (testzip), the
entry names are exactly the relative paths of the files under DIR, every
entry is byte-identical to its file, no entry is a directory, link or
absolute/.. path, and the entries come in restore order (space.json,
sila.md, secrets, ops/, then the rest; key order within each group), and
compression earns its CPU: text (ops logs, space.json, sila.md) is
deflated, while a JPEG or PNG of up to 1 MiB (read whole by the worker
with any SILA_GET_CHUNK the tests use) is stored, unless it holds the data
descriptor signature PK\7\8 (then a stored entry would be unsafe for a
streaming reader). Prints one JSON line with counts; on failure the first
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
    counts = {}
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
                data = f.read()
                if z.read(info) != data:
                    problems.append("entry %r differs from its file" % n)
            method = info.compress_type
            counts[method] = counts.get(method, 0) + 1
            text = n.endswith(".jsonl") or n in ("sila.md",
                                                 "space-v1/space.json")
            image = data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"
            if text and method != zipfile.ZIP_DEFLATED:
                problems.append("text entry %r is not deflated" % n)
            if (image and len(data) <= 1 << 20 and b"PK\x07\x08" not in data
                    and method != zipfile.ZIP_STORED):
                problems.append("compressed entry %r is deflated again" % n)
        missing = set(files) - set(names)
        for n in sorted(missing)[:10]:
            problems.append("file %r is missing from the archive" % n)
    print(json.dumps({"entries": len(names), "files": len(files),
                      "stored": counts.get(zipfile.ZIP_STORED, 0),
                      "deflated": counts.get(zipfile.ZIP_DEFLATED, 0),
                      "problems": len(problems)}))
    for p in problems[:20]:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
