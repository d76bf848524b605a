#!/usr/bin/env python3
"""Write hostile (and one good) ZIP archives for the zip reader's tests.

    make_hostile_zip.py KIND OUT.zip [--max BYTES]
    make_hostile_zip.py --list

Each KIND is one thing an untrusted archive can do wrong; `good` is a small
valid space (sila.md, space-v1/space.json, an ops file, a CAS blob named by
its SHA-256). Everything is deterministic: the same KIND gives the same
bytes. Only the standard library is used: zipfile where it can express the
case, raw struct packing where it cannot (names holding NUL or backslashes,
a wrong CRC in a data descriptor, the 'xl' extra field, junk between
entries).

Prints one JSON line: {"kind", "out", "bytes", "entries", "note"}; a kind
that ZIP cannot express prints {"kind", "skipped": true, "note"}, writes
nothing and exits 0.
"""

import argparse
import hashlib
import io
import json
import random
import struct
import sys
import warnings
import zipfile
import zlib

SPACE_ID = "5f1c2a3b4d5e6f708192a3b4c5d6e7f8"
TREE_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
PEER_ID = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
MTIME = (2024, 5, 1, 12, 0, 0)

S_IFREG = 0o100000
S_IFLNK = 0o120000
S_IFCHR = 0o020000
S_IFDIR = 0o040000


def sila_md():
    return (b"# Sila workspace\n\nThis folder is a Sila workspace. Do not edit "
            b"the files in space-v1 by hand.\n")


def space_json():
    return ('{"id":"%s"}' % SPACE_ID).encode()


def ops_lines(n=200):
    rnd = random.Random(7)
    out = []
    for i in range(n):
        target = "%032x" % rnd.getrandbits(128)
        out.append('[%d,"%s","text","message number %d, some words"]\n'
                   % (i + 1, target, i))
    return "".join(out).encode()


def blob_bytes(n=5000):
    return random.Random(11).randbytes(n)


def cas_name(data):
    h = hashlib.sha256(data).hexdigest()
    return "space-v1/files/static/sha256/%s/%s" % (h[:2], h[2:])


def ops_name():
    return "space-v1/ops/%s/%s/2024/05/01/%s-p.jsonl" % (TREE_ID[:2],
                                                        TREE_ID[2:], PEER_ID)


def good_entries():
    blob = blob_bytes()
    return [
        ("sila.md", sila_md(), zipfile.ZIP_DEFLATED),
        ("space-v1/space.json", space_json(), zipfile.ZIP_STORED),
        (ops_name(), ops_lines(), zipfile.ZIP_DEFLATED),
        (cas_name(blob), blob, zipfile.ZIP_STORED),
    ]


def info(name, method=zipfile.ZIP_DEFLATED, mode=S_IFREG | 0o644):
    zi = zipfile.ZipInfo(name, date_time=MTIME)
    zi.compress_type = method
    zi.create_system = 3
    zi.external_attr = mode << 16
    return zi


def with_zipfile(entries, stream=False):
    """entries: (ZipInfo or name, data[, method]). stream=True writes to a
    non-seekable file, so every entry has a data descriptor (bit 3)."""
    raw = io.BytesIO()

    class NoSeek(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            return raw.write(b)

    out = NoSeek() if stream else raw
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        with zipfile.ZipFile(out, "w") as z:
            for e in entries:
                zi = e[0] if isinstance(e[0], zipfile.ZipInfo) else info(
                    e[0], e[2] if len(e) > 2 else zipfile.ZIP_DEFLATED)
                if stream:
                    with z.open(zi, "w") as f:
                        f.write(e[1])
                else:
                    z.writestr(zi, e[1])
    return raw.getvalue()


def dos_time():
    y, mo, d, h, mi, s = MTIME
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d


class RawZip:
    """A ZIP written byte by byte, for what zipfile refuses to write."""

    def __init__(self):
        self.buf = bytearray()
        self.cd = bytearray()
        self.count = 0
        self.zip64 = False

    def junk(self, data):
        self.buf += data

    def add(self, name, data, method=8, crc=None, descriptor=False,
            mode=S_IFREG | 0o644, local_extra=b"", cd_name=None,
            flags=0, zip64=False, z64_local=None, z64_cd=None,
            sentinel=False):
        """zip64: sizes (and the offset, in the central directory) in ZIP64
        extra fields; z64_local / z64_cd replace those fields' bytes (the
        header fields still hold 0xFFFFFFFF). sentinel: 0xFFFFFFFF in the
        size fields and no ZIP64 extra field at all."""
        t, d = dos_time()
        real_crc = zlib.crc32(data)
        if crc is None:
            crc = real_crc
        if method == 8:
            co = zlib.compressobj(9, zlib.DEFLATED, -15)
            body = co.compress(data) + co.flush()
        else:
            body = data
        if descriptor:
            flags |= 0x08
        if any(b >= 0x80 for b in name):
            flags |= 0x800
        offset = len(self.buf)
        lcrc, lcs, lus = (0, 0, 0) if descriptor else (crc, len(body),
                                                       len(data))
        if zip64:
            # sizes only in the ZIP64 extra field: both, as the spec says
            if z64_local is None:
                z64_local = struct.pack("<HHQQ", 1, 16, lus, lcs)
            local_extra = z64_local + local_extra
            lcs = lus = 0xFFFFFFFF
            self.zip64 = True
        if sentinel:
            lcs = lus = 0xFFFFFFFF
        self.buf += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04",
                                45 if zip64 else 20, flags, method, t, d,
                                lcrc, lcs, lus, len(name), len(local_extra))
        self.buf += name + local_extra + body
        if descriptor:
            fmt = "<4sIQQ" if zip64 else "<4sIII"
            self.buf += struct.pack(fmt, b"PK\x07\x08", crc, len(body),
                                    len(data))
        cd_name = name if cd_name is None else cd_name
        cs, us, off, cd_extra = len(body), len(data), offset, b""
        if zip64:
            cd_extra = struct.pack("<HHQQQ", 1, 24, us, cs, off)
            if z64_cd is not None:
                cd_extra = z64_cd
            cs = us = off = 0xFFFFFFFF
        if sentinel:
            cs = us = 0xFFFFFFFF
        self.cd += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02",
                               (3 << 8) | 45, 45 if zip64 else 20, flags,
                               method, t, d, crc, cs, us, len(cd_name),
                               len(cd_extra), 0, 0, 0, mode << 16, off)
        self.cd += cd_name + cd_extra
        self.count += 1

    def bytes(self, trailing=b"", z64_count=None, z64_size=None,
              z64_offset=None, locator=None):
        """z64_*: what the ZIP64 end record says instead of the truth (entry
        count, central directory size and offset); locator: where the
        ZIP64 end locator says that record is."""
        start = len(self.buf)
        end = b""
        count, size, offset = self.count, len(self.cd), start
        if self.zip64:
            z64 = start + len(self.cd)
            n = count if z64_count is None else z64_count
            end = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0,
                              0, n, n, size if z64_size is None else z64_size,
                              start if z64_offset is None else z64_offset)
            end += struct.pack("<4sIQI", b"PK\x06\x07", 0,
                               z64 if locator is None else locator, 1)
            count, size, offset = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
        eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count,
                           size, offset, 0)
        return bytes(self.buf + self.cd + end + eocd + trailing)


def xl_extra(mode):
    """libarchive's experimental 'xl' field: the Unix mode in the local
    header, which is how its streaming reader learns an entry's type."""
    body = struct.pack("<BHI", 0x05, (3 << 8) | 20, mode << 16)
    return struct.pack("<HH", 0x6C78, len(body)) + body


def flip_in_first_deflate(zipbytes, name):
    """Damage the deflate data of entry `name` (its local header's body)."""
    data = bytearray(zipbytes)
    z = zipfile.ZipFile(io.BytesIO(zipbytes))
    zi = z.getinfo(name)
    off = zi.header_offset
    n, m = struct.unpack("<HH", data[off + 26:off + 30])
    body = off + 30 + n + m
    size = zi.compress_size
    for k in range(8):
        data[body + size // 3 + k * 7] ^= 0x5A
    return bytes(data)


def text(n):
    line = b"a Sila op line that compresses well, with some words in it\n"
    return (line * (n // len(line) + 1))[:n]


def kind_good(a):
    return with_zipfile(good_entries()), 4, "a small valid space"


def kind_stream(a):
    return (with_zipfile(good_entries(), stream=True), 4,
            "the good space written to a pipe: data descriptors on every "
            "entry, sizes only after the data")


def kind_zip64(a):
    z = RawZip()
    for name, data, method in good_entries():
        z.add(name.encode(), data, method=method, zip64=True,
              descriptor=method == 8)
    return (z.bytes(), 4, "the good space with ZIP64 everywhere: local "
            "extra fields, 64-bit data descriptors, central directory extra "
            "fields, ZIP64 end record and locator")


def kind_zip64_stream(a):
    raw = io.BytesIO()

    class NoSeek(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            return raw.write(b)

    with zipfile.ZipFile(NoSeek(), "w") as z:
        for name, data, method in good_entries():
            with z.open(info(name, method), "w", force_zip64=True) as f:
                f.write(data)
    return (raw.getvalue(), 4, "the good space from Python's zipfile into a "
            "pipe with force_zip64: ZIP64 local headers and 64-bit data "
            "descriptors")


def kind_absolute(a):
    return (with_zipfile([(info("/etc/passwd"), b"root:x:0:0\n")]), 1,
            "absolute name /etc/passwd")


def kind_dotdot(a):
    return (with_zipfile([(info("space-v1/../../etc/passwd"), b"x\n")]), 1,
            "name with '..' components")


def kind_backslash(a):
    z = RawZip()
    z.add(b"space-v1\\..\\..\\evil", b"x\n")
    return (z.bytes(), 1, "backslashes and no '/': libarchive's reader "
            "rewrites them to '/' for MS-DOS headers")


def kind_nul(a):
    z = RawZip()
    z.add(b"space-v1/ok.txt\x00/../../evil", b"x\n")
    return (z.bytes(), 1, "NUL inside the declared name: libarchive "
            "truncates the name at the NUL")


def kind_control(a):
    return (with_zipfile([(info("space-v1/a\x1b[31mred"), b"x\n")]), 1,
            "escape character in the name")


def kind_symlink(a):
    zi = info("space-v1/link", zipfile.ZIP_STORED, S_IFLNK | 0o777)
    return (with_zipfile([(zi, b"../../../etc/passwd")]), 1,
            "symlink in the central directory's external attributes only "
            "(as Info-ZIP and Python write them)")


def kind_symlink_xl(a):
    z = RawZip()
    z.add(b"space-v1/link", b"../../../etc/passwd", method=0,
          mode=S_IFLNK | 0o777, local_extra=xl_extra(S_IFLNK | 0o777))
    return (z.bytes(), 1, "symlink announced in the local header too "
            "(libarchive's 'xl' extra field)")


def kind_hardlink(a):
    return None, 0, ("ZIP has no hard links: no attribute or extra field "
                     "expresses one, and libarchive's ZIP reader never "
                     "reports one")


def kind_device(a):
    zi = info("space-v1/dev", zipfile.ZIP_STORED, S_IFCHR | 0o644)
    return (with_zipfile([(zi, b"")]), 1,
            "character device in the external attributes")


def kind_directory(a):
    zi = info("space-v1/dir/", zipfile.ZIP_STORED, S_IFDIR | 0o755)
    zi.external_attr |= 0x10
    return with_zipfile([(zi, b"")]), 1, "a directory entry"


def kind_duplicate(a):
    return (with_zipfile([("space-v1/a", b"first\n"),
                          ("space-v1/a", b"second\n")]), 2,
            "the same name twice")


def kind_rootfiles(a):
    # not hostile: a space with files outside sila.md and space-v1/, as
    # every earlier version archived them; they must restore
    return (with_zipfile(good_entries() + [
        ("notes.txt", b"my notes\n"),
        (".DS_Store", b"\x00\x00\x00\x01Bud1"),
        (".cache/x", b""),
        ("a b+c%d~e.txt", b"odd but safe\n"),
    ]), 8, "the good space plus root-level files, dotfiles and a dotted "
        "folder (what older versions archived)")


def kind_emptycomp(a):
    z = RawZip()
    z.add(b"space-v1//a", b"x\n")
    return z.bytes(), 1, "an empty path component (S3 allows a//b)"


def kind_badutf8(a):
    z = RawZip()
    z.add(b"space-v1/a\xffb", b"x\n")
    return z.bytes(), 1, "a name that is not UTF-8"


def kind_bomb(a):
    return (with_zipfile([("space-v1/bomb", bytes(50 << 20))]), 1,
            "50 MiB of zeros, deflated")


def kind_oversize(a):
    rnd = random.Random(3)
    half = a.max // 2 + 1
    return (with_zipfile([("space-v1/a", rnd.randbytes(half)),
                          ("space-v1/b", rnd.randbytes(half))]), 2,
            "two ordinary entries adding up to more than --max")


def kind_truncated(a):
    whole = with_zipfile([("sila.md", sila_md()),
                          ("space-v1/big", ops_lines(3000))])
    return whole[:len(whole) // 2], 2, "a valid archive cut in half"


def kind_corrupt(a):
    whole = with_zipfile([("space-v1/big", ops_lines(3000))])
    return (flip_in_first_deflate(whole, "space-v1/big"), 1,
            "bytes flipped inside the deflate data")


def kind_badcrc(a):
    z = RawZip()
    data = text(10000)
    z.add(b"space-v1/crc", data, crc=zlib.crc32(data) ^ 0x1)
    return (z.bytes(), 1, "valid deflate data, wrong CRC in the local "
            "header and the central directory")


def kind_badcrc_stored(a):
    z = RawZip()
    data = text(10000)
    z.add(b"space-v1/crc", data, method=0, descriptor=True,
          crc=zlib.crc32(data) ^ 0x1)
    z.add(b"space-v1/next", b"next\n")
    return (z.bytes(), 2, "stored entry with a data descriptor holding the "
            "wrong CRC")


def kind_cdname(a):
    z = RawZip()
    z.add(b"space-v1/a", b"a\n", cd_name=b"space-v1/b")
    return (z.bytes(), 1, "the central directory names the entry "
            "differently from its local header")


def kind_gap(a):
    z = RawZip()
    z.add(b"space-v1/a", b"a\n")
    z.junk(b"junk between entries, which a streaming reader skips")
    z.add(b"space-v1/b", b"b\n")
    return z.bytes(), 2, "junk between two entries"


def kind_trailing(a):
    z = RawZip()
    z.add(b"space-v1/a", b"a\n")
    return z.bytes(trailing=b"trailing junk"), 1, "bytes after the end record"


def kind_encrypted(a):
    z = RawZip()
    z.add(b"space-v1/a", b"a\n", method=0, flags=0x01)
    return z.bytes(), 1, "encryption flag set"


def kind_method(a):
    return (with_zipfile([("space-v1/a", text(1000), zipfile.ZIP_BZIP2)]), 1,
            "bzip2 compression (method 12)")


def zip64_space(**add):
    """The good space in ZIP64 (as kind zip64); add: extra arguments for the
    first entry (sila.md, deflated)."""
    z = RawZip()
    for i, (name, data, method) in enumerate(good_entries()):
        z.add(name.encode(), data, method=method, zip64=True,
              descriptor=method == 8 and not add, **(add if i == 0 else {}))
    return z


def kind_z64_locator_outside(a):
    return (zip64_space().bytes(locator=1 << 40), 4, "the ZIP64 end locator "
            "points far past the end of the file")


def kind_z64_locator_garbage(a):
    return (zip64_space().bytes(locator=0), 4, "the ZIP64 end locator "
            "points at the first local header, not at a ZIP64 end record")


def kind_z64_eocd_count(a):
    return (zip64_space().bytes(z64_count=5), 4, "the ZIP64 end record "
            "says 5 entries, the central directory has 4")


def kind_z64_eocd_size(a):
    z = zip64_space()
    return (z.bytes(z64_size=len(z.cd) + 46), 4, "the ZIP64 end record's "
            "central directory size is 46 bytes too large")


def kind_z64_eocd_offset(a):
    return (zip64_space().bytes(z64_offset=0), 4, "the ZIP64 end record "
            "says the central directory starts at offset 0, over the "
            "entries")


def kind_z64_extra_short(a):
    data = sila_md()
    short = struct.pack("<HHQ", 1, 8, len(data))
    return (zip64_space(z64_local=short).bytes(), 4, "local ZIP64 extra "
            "field of 8 bytes where both sizes are 0xFFFFFFFF (16 needed)")


def kind_z64_extra_overrun(a):
    data = sila_md()
    # declares 24 bytes of data and holds 16: runs past the extra area
    over = struct.pack("<HHQQ", 1, 24, len(data), 0)
    return (zip64_space(z64_local=over).bytes(), 4, "local ZIP64 extra "
            "field that declares more bytes than the extra area holds")


def kind_z64_huge(a):
    data = sila_md()
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    cs = len(co.compress(data) + co.flush())
    huge = 1 << 63
    return (zip64_space(
        z64_local=struct.pack("<HHQQ", 1, 16, huge, cs),
        z64_cd=struct.pack("<HHQQQ", 1, 24, huge, cs, 0)).bytes(), 4,
        "ZIP64 extra fields (local and central) declaring 2^63 "
        "uncompressed bytes for a small entry")


def kind_z64_huge_stored(a):
    z = RawZip()
    data = b"stored entry data\n" * 10
    huge = 1 << 62
    z.add(b"space-v1/huge", data, method=0, zip64=True,
          z64_local=struct.pack("<HHQQ", 1, 16, huge, huge),
          z64_cd=struct.pack("<HHQQQ", 1, 24, huge, huge, 0))
    z.add(b"space-v1/next", b"next\n")
    return (z.bytes(), 2, "a stored entry whose ZIP64 extra fields declare "
            "2^62 bytes: a reader that trusts it takes the rest of the "
            "archive as its data")


def kind_z64_cd_disagrees(a):
    data = sila_md()
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    cs = len(co.compress(data) + co.flush())
    return (zip64_space(
        z64_cd=struct.pack("<HHQQQ", 1, 24, len(data) + 1000, cs, 0)).bytes(),
        4, "the central directory's ZIP64 extra field gives another "
        "uncompressed size than the local one")


def kind_sentinel(a):
    z = RawZip()
    for name, data, method in good_entries():
        z.add(name.encode(), data, method=method, sentinel=name == "sila.md")
    return (z.bytes(), 4, "0xFFFFFFFF sizes in the first entry's local "
            "header and central directory record, no ZIP64 extra field")


def kind_overlap(a):
    """David Fifield's overlapping-files bomb ("A better zip bomb", 2019):
    every local header is quoted (a stored deflate block) by the entry
    before it, and all entries share one deflated kernel, so the central
    directory's entries overlap."""
    k = 5
    names = [("space-v1/bomb-%d" % i).encode() for i in range(k)]
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    plain = bytes(4 << 20)
    kernel = co.compress(plain) + co.flush()
    t, d = dos_time()

    def lfh(name, crc, cs, us):
        return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, t, d,
                           crc, cs, us, len(name), 0) + name

    # from the last entry back: its data is the kernel; entry i's data is a
    # stored block quoting entry i + 1's header, then entry i + 1's data, so
    # it outputs every later header and then the kernel's output
    crcs, css, uss, headers = [0] * k, [0] * k, [0] * k, [b""] * k
    crcs[-1], css[-1], uss[-1] = zlib.crc32(plain), len(kernel), len(plain)
    headers[-1] = lfh(names[-1], crcs[-1], css[-1], uss[-1])
    for i in range(k - 2, -1, -1):
        h = headers[i + 1]
        crcs[i] = zlib.crc32(plain, zlib.crc32(b"".join(headers[i + 1:])))
        css[i] = 5 + len(h) + css[i + 1]
        uss[i] = len(h) + uss[i + 1]
        headers[i] = lfh(names[i], crcs[i], css[i], uss[i])
    body = bytearray()
    offsets = []
    for i in range(k):
        offsets.append(len(body))
        body += headers[i]
        if i < k - 1:
            n = len(headers[i + 1])
            body += struct.pack("<BHH", 0, n, n ^ 0xFFFF)
    body += kernel
    cd = bytearray()
    for i in range(k):
        cd += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02",
                          (3 << 8) | 20, 20, 0, 8, t, d, crcs[i], css[i],
                          uss[i], len(names[i]), 0, 0, 0, 0,
                          (S_IFREG | 0o644) << 16, offsets[i])
        cd += names[i]
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, k, k, len(cd),
                       len(body), 0)
    return (bytes(body + cd + eocd), k, "%d entries overlapping in one "
            "deflated kernel of %d MiB: %d MiB out of %d KiB" % (
                k, len(plain) >> 20, sum(uss) >> 20, len(body) >> 10))


KINDS = {
    "good": kind_good,
    "stream": kind_stream,
    "zip64": kind_zip64,
    "zip64_stream": kind_zip64_stream,
    "absolute": kind_absolute,
    "dotdot": kind_dotdot,
    "backslash": kind_backslash,
    "nul": kind_nul,
    "control": kind_control,
    "symlink": kind_symlink,
    "symlink_xl": kind_symlink_xl,
    "hardlink": kind_hardlink,
    "device": kind_device,
    "directory": kind_directory,
    "duplicate": kind_duplicate,
    "rootfiles": kind_rootfiles,
    "emptycomp": kind_emptycomp,
    "badutf8": kind_badutf8,
    "bomb": kind_bomb,
    "oversize": kind_oversize,
    "truncated": kind_truncated,
    "corrupt": kind_corrupt,
    "badcrc": kind_badcrc,
    "badcrc_stored": kind_badcrc_stored,
    "cdname": kind_cdname,
    "gap": kind_gap,
    "trailing": kind_trailing,
    "encrypted": kind_encrypted,
    "method": kind_method,
    "z64_locator_outside": kind_z64_locator_outside,
    "z64_locator_garbage": kind_z64_locator_garbage,
    "z64_eocd_count": kind_z64_eocd_count,
    "z64_eocd_size": kind_z64_eocd_size,
    "z64_eocd_offset": kind_z64_eocd_offset,
    "z64_extra_short": kind_z64_extra_short,
    "z64_extra_overrun": kind_z64_extra_overrun,
    "z64_huge": kind_z64_huge,
    "z64_huge_stored": kind_z64_huge_stored,
    "z64_cd_disagrees": kind_z64_cd_disagrees,
    "sentinel": kind_sentinel,
    "overlap": kind_overlap,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--max", type=int, default=1 << 20,
                    help="for oversize: the total to exceed (bytes)")
    ap.add_argument("--list", action="store_true", help="print the kinds")
    a = ap.parse_args()
    if a.list:
        print("\n".join(KINDS))
        return 0
    if a.kind not in KINDS or not a.out:
        ap.error("need KIND OUT.zip; kinds: " + ", ".join(KINDS))
    data, entries, note = KINDS[a.kind](a)
    if data is None:
        print(json.dumps({"kind": a.kind, "skipped": True, "note": note}))
        return 0
    with open(a.out, "wb") as f:
        f.write(data)
    print(json.dumps({"kind": a.kind, "out": a.out, "bytes": len(data),
                      "entries": entries, "note": note}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
