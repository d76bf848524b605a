#!/usr/bin/env python3
"""Python's zipfile against the space folder an archive was made from, and
the archive's shape (tests/readers/run.sh).

    check_zip.py ARCHIVE DIR BIG_BYTES

Passes (exit 0) when the entries are exactly the files under DIR, each
byte-identical to its file (zipfile checks every CRC), and the entries look
as docs/PROTOCOL.md "Archive format" says: every stored entry has its CRC-32
and sizes in the local header and no data descriptor (bit 3 clear); every
entry with a data descriptor is deflated; there is at least one stored
entry, and every already-compressed file over BIG_BYTES (more than the
worker reads at once) is deflated at level 0 with a descriptor (compressed
size within 0.1 % of its size). Prints one JSON line with the counts.
"""
import json
import os
import struct
import sys
import zipfile


def main():
    zpath, root, big = sys.argv[1], sys.argv[2], int(sys.argv[3])
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            files[os.path.relpath(p, root).replace(os.sep, "/")] = p
    problems = []
    counts = {"stored": 0, "deflated": 0, "descriptor": 0, "big": 0}
    with open(zpath, "rb") as raw, zipfile.ZipFile(zpath) as z:
        seen = set()
        for i in z.infolist():
            n = i.filename
            if n in seen or n not in files:
                problems.append("entry %r: no source file, or twice" % n)
                continue
            seen.add(n)
            with open(files[n], "rb") as f:
                data = f.read()
            if z.read(i) != data:
                problems.append("entry %r differs from its file" % n)
            raw.seek(i.header_offset)
            h = raw.read(30)
            sig, _, flags, method, _, _, crc, cs, us = struct.unpack(
                "<IHHHHHIII", h[:26])
            desc = bool(flags & 8)
            if sig != 0x04034B50 or flags != i.flag_bits or method != i.compress_type:
                problems.append("entry %r: local header disagrees" % n)
            if method == 0:
                counts["stored"] += 1
                if desc:
                    problems.append("stored entry %r has a data descriptor" % n)
                if crc != i.CRC or (cs, us) not in ((i.file_size,) * 2,
                                                    (0xFFFFFFFF,) * 2):
                    problems.append("stored entry %r: no CRC/sizes in its "
                                    "local header" % n)
            else:
                counts["deflated"] += 1
            counts["descriptor"] += desc
            if desc and method != 8:
                problems.append("entry %r: descriptor on method %d" % (n, method))
            packed = data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"
            if packed and len(data) > big:
                counts["big"] += 1
                if method != 8 or not desc or i.compress_size > len(data) * 1.001:
                    problems.append("big compressed entry %r: method %d, "
                                    "descriptor %s, %d of %d bytes"
                                    % (n, method, desc, i.compress_size,
                                       len(data)))
        for n in sorted(set(files) - seen)[:10]:
            problems.append("file %r is missing from the archive" % n)
    if counts["stored"] == 0:
        problems.append("no stored entry: the stored path was not exercised")
    if counts["big"] == 0:
        problems.append("no big compressed entry: the level-0 path was not "
                        "exercised")
    counts.update(entries=len(seen), problems=len(problems))
    print("python zipfile: " + json.dumps(counts))
    for p in problems[:20]:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
