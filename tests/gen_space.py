#!/usr/bin/env python3
"""Generate a realistic Sila space on disk (layout: shared SILA-FORMAT.md).

Deterministic: the same arguments (seed, counts, sizes, --end-date) give the
same bytes. Only the standard library is used.

    gen_space.py --out DIR [--space-id HEX32|random] [--seed N]
                 [--ops-files K] [--blobs M] [--big-blobs B] [--big-size BYTES]
                 [--big-text]
                 [--var-blobs V] [--unknown-files U]
                 [--files N] [--total-mib T] [--end-date YYYY-MM-DD] [--days D]

DIR becomes the space root (sila.md + space-v1/). It must not exist or be
empty. Defaults give a few hundred files and ~30 MB: 300 ops files, 60 small
blobs (long tail, median ~150 KB), 3 big blobs of 3-6 MiB, 10 var blobs.

--files N fixes the total file count (the counts are derived: ~2% var blobs,
~20% CAS blobs, the rest ops); --total-mib T fixes the total size exactly
(blob sizes are scaled to fill what the ops files leave). E.g. the benchmark
space: --files 10000 --total-mib 200.

Prints one JSON line: {"space_id", "files", "bytes", ...} on stdout.

    gen_space.py --check DIR

checks that DIR is a well-formed space (any space, not only a generated one):
space.json, secrets, op file paths and lines, every CAS blob's sha256 against
its name, var blob names. Files the format doesn't know are allowed and listed.
Prints one JSON line {"ok", "space_id", "files", "bytes", ..., "errors"};
exit status 1 when something is wrong.
"""

import argparse
import base64
import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import sys
import time

MIB = 1 << 20
MIN_BLOB = 64  # random bytes: no two CAS blobs collide
CHUNK = 1 << 20

SILA_MD = (
    "# Sila workspace\n"
    "\n"
    "This folder is a Sila workspace. Sila keeps the workspace data in\n"
    "`space-v1/`: don't edit, move or delete anything inside it by hand, or\n"
    "the workspace may not open again. Open the folder with Sila instead.\n"
)

WORDS = (
    "the a an and or but so if then because while when where which that this "
    "these those it its we you they I he she our your their my me us them is "
    "are was were be been being have has had do does did can could would should "
    "will shall may might must not no yes all any some every each more most less "
    "few many much very just only also too again still already yet now here there "
    "about above after before between into through during without within under "
    "over again further once model prompt token context window answer question "
    "summary draft email report meeting agenda budget invoice customer project "
    "deadline release version server client storage archive bucket object file "
    "folder image photo document table chart query result error warning fix bug "
    "test build deploy config setting option feature request response latency "
    "throughput memory cache index search filter sort page list item user team "
    "plan idea note task todo review comment change update delete create open "
    "close send receive write read explain compare translate rewrite improve "
    "shorten expand check verify estimate calculate schedule remind organise "
    "quickly carefully clearly roughly exactly probably maybe definitely "
    "important useful simple complex small large new old first last next "
    "previous better worse good bad fast slow cheap expensive safe risky "
    "Monday Tuesday Wednesday Thursday Friday morning evening week month year "
    "café naïve résumé déjà Zürich Kraków São Paulo München"
).split()

OPENERS = [
    "Sure, here is", "Good question:", "Let me summarise", "In short,",
    "Here's a draft:", "Thanks!", "Could you", "Please", "I think",
    "One more thing:", "To be clear,", "As discussed,", "Quick update:",
    "Okay —", "Great, so", "Hmm,", "Note:", "TL;DR:",
]

EMOJI = ["🙂", "👍", "🚀", "✅", "📎", "🤔", "“quoted”", "…", "→"]


def hex32(rng):
    return "%032x" % rng.getrandbits(128)


class Text:
    """Chat-like text built from a fixed pool of sentences: compresses well."""

    def __init__(self, rng):
        self.rng = rng
        self.pool = [self._sentence() for _ in range(2500)]

    def _sentence(self):
        rng = self.rng
        words = rng.choices(WORDS, k=rng.randint(5, 22))
        if rng.random() < 0.3:
            words.insert(0, rng.choice(OPENERS))
        if rng.random() < 0.05:
            words.append(rng.choice(EMOJI))
        s = " ".join(words)
        return s[0].upper() + s[1:] + rng.choice(".....?!:")

    def message(self, role):
        rng = self.rng
        if role == "user":
            return " ".join(rng.choices(self.pool, k=rng.randint(1, 4)))
        parts = []
        for _ in range(rng.randint(1, 8)):
            kind = rng.random()
            if kind < 0.6:
                parts.append(" ".join(rng.choices(self.pool, k=rng.randint(1, 6))))
            elif kind < 0.85:
                items = rng.choices(self.pool, k=rng.randint(2, 6))
                parts.append("\n".join("- " + i for i in items))
            else:
                body = "\n".join(
                    "    %s = %s(%d)" % (rng.choice(WORDS), rng.choice(WORDS), rng.randint(0, 999))
                    for _ in range(rng.randint(2, 8))
                )
                parts.append("```python\n" + body + "\n```")
        return "\n\n".join(parts)

    def title(self):
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(2, 6))).capitalize()


class Tree:
    def __init__(self, tree_id, kind):
        self.id = tree_id
        self.kind = kind  # "space" or "chat"
        self.counter = 0
        self.vertices = []  # ids already created (first one is the root)
        self.last_msg = None

    def tick(self):
        self.counter += 1
        return self.counter


class OpsWriter:
    def __init__(self, rng, text, root):
        self.rng = rng
        self.text = text
        self.root = root
        self.files = 0
        self.bytes = 0

    def _iso(self, day, sec):
        t = dt.datetime(day.year, day.month, day.day) + dt.timedelta(seconds=sec)
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % self.rng.randint(0, 999)

    def _ops_for_unit(self, tree, day):
        """Returns (moves, props) for one session's writes to one tree on one day."""
        rng = self.rng
        moves, props = [], []
        sec = rng.randint(6 * 3600, 22 * 3600)

        def new_vertex(parent):
            vid = hex32(rng)
            moves.append([tree.tick(), vid, parent])
            tree.vertices.append(vid)
            return vid

        if not tree.vertices:
            root = tree.id
            moves.append([tree.tick(), root, None])
            tree.vertices.append(root)
            props.append([tree.tick(), root, "_c", self._iso(day, sec)])
            if tree.kind == "space":
                props.append([tree.tick(), root, "name", self.text.title()])
                props.append([tree.tick(), root, "version", "1"])
                for name in ("app-configs", "app-forest", "providers", "settings"):
                    v = new_vertex(root)
                    props.append([tree.tick(), v, "_n", name])
            else:
                props.append([tree.tick(), root, "appId", "default"])
                props.append([tree.tick(), root, "_n", self.text.title()])
                tree.last_msg = root

        if tree.kind == "space":
            for _ in range(rng.randint(1, 6)):
                sec += rng.randint(1, 120)
                if rng.random() < 0.4 or len(tree.vertices) < 6:
                    v = new_vertex(rng.choice(tree.vertices[:5]))
                    props.append([tree.tick(), v, "_c", self._iso(day, sec)])
                    props.append([tree.tick(), v, "_n", self.text.title()])
                else:
                    v = rng.choice(tree.vertices[1:])
                if rng.random() < 0.5:
                    props.append([tree.tick(), v, "config", {
                        "id": hex32(rng)[:12],
                        "model": rng.choice(["gpt-4o", "claude-sonnet", "llama-3", "mistral-large"]),
                        "temperature": round(rng.random(), 2),
                        "instructions": self.text.message("user"),
                        "enabled": rng.random() < 0.8,
                    }])
                else:
                    props.append([tree.tick(), v, "description", self.text.message("user")])
            if rng.random() < 0.1:
                v = rng.choice(tree.vertices[1:])
                moves.append([tree.tick(), v, rng.choice(tree.vertices[:5])])
            return moves, props

        for _ in range(rng.randint(1, 10)):
            for role in ("user", "assistant"):
                sec += rng.randint(3, 300)
                v = new_vertex(tree.last_msg)
                tree.last_msg = v
                props.append([tree.tick(), v, "_c", self._iso(day, sec)])
                props.append([tree.tick(), v, "role", role])
                props.append([tree.tick(), v, "main", True])
                if role == "assistant":
                    props.append([tree.tick(), v, "text", ""])  # streaming start
                    props.append([tree.tick(), v, "status", "thinking"])
                props.append([tree.tick(), v, "text", self.text.message(role)])
                if role == "assistant":
                    props.append([tree.tick(), v, "status", "done"])
                if role == "user" and rng.random() < 0.1:
                    props.append([tree.tick(), v, "files", [{
                        "tree": hex32(rng), "vertex": hex32(rng),
                        "mimeType": rng.choice(["image/jpeg", "image/png", "application/pdf"]),
                    }]])
        if rng.random() < 0.15:
            props.append([tree.tick(), tree.id, "_n", self.text.title()])
        if rng.random() < 0.05 and len(tree.vertices) > 2:
            moves.append([tree.tick(), rng.choice(tree.vertices[1:]), None])  # deleted
        return moves, props

    def _write(self, path, lines):
        data = "".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")) + "\n"
                       for x in lines).encode()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "xb") as f:
            f.write(data)
        self.files += 1
        self.bytes += len(data)

    def write_all(self, space_id, n_files, days):
        """Writes exactly n_files ops files."""
        rng = self.rng
        if n_files <= 0:
            return
        n_chats = max(1, n_files // 8)
        trees = [Tree(space_id, "space")] + [Tree(hex32(rng), "chat") for _ in range(n_chats)]
        # Each chat is active over a window of days; sessions pick active trees.
        for t in trees[1:]:
            t.first = rng.randrange(len(days))
        trees[0].first = 0
        legacy_until = max(1, len(days) // 6)  # the oldest days use the mixed format
        remaining = n_files
        di = 0
        while remaining > 0:
            day_idx = min(len(days) - 1, di)
            day = days[day_idx]
            di += rng.choice([0, 0, 1, 1, 1, 2, 3]) if n_files > 40 else 1
            if di >= len(days):
                di = 0
            peer = hex32(rng)  # a new app session
            active = [t for t in trees if t.first <= day_idx] or trees[:1]
            not_started = [t for t in trees if not t.vertices]
            k = min(len(active), rng.randint(1, 4))
            touched = rng.sample(active, k)
            if not_started and not_started[0] not in touched and rng.random() < 0.5:
                touched[0] = not_started[0]
            for tree in touched:
                if remaining <= 0:
                    break
                moves, props = self._ops_for_unit(tree, day)
                base = os.path.join(self.root, "space-v1", "ops", tree.id[:2], tree.id[2:],
                                    "%04d" % day.year, "%02d" % day.month, "%02d" % day.day)
                legacy = day_idx < legacy_until and rng.random() < 0.5
                if remaining == 1 or legacy:
                    mixed = [["m"] + m for m in moves] + [["p"] + p for p in props]
                    mixed.sort(key=lambda x: x[1])
                    self._write(os.path.join(base, peer + ".jsonl"), mixed)
                    remaining -= 1
                    continue
                if moves:
                    self._write(os.path.join(base, peer + "-m.jsonl"), moves)
                    remaining -= 1
                self._write(os.path.join(base, peer + "-p.jsonl"), props)
                remaining -= 1


def jpeg_header(rng):
    return (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48\x00\x48\x00\x00"
            b"\xff\xdb\x00\x43\x00" + rng.randbytes(64))


def png_header(rng):
    w, h = rng.randint(64, 2048), rng.randint(64, 2048)
    ihdr = b"IHDR" + w.to_bytes(4, "big") + h.to_bytes(4, "big") + b"\x08\x06\x00\x00\x00"
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d" + ihdr + rng.randbytes(4)


class BlobWriter:
    def __init__(self, rng, root):
        self.rng = rng
        self.root = root
        self.tmp = os.path.join(root, ".gen-tmp")
        self.files = 0
        self.bytes = 0

    def cas(self, size, text=False):
        """Writes one CAS blob of exactly size bytes; returns its sha256.
        text: hex digits (compressible, slow to deflate well) instead of
        mostly incompressible content."""
        rng = self.rng
        r = 1.0 if text else rng.random()
        head = jpeg_header(rng) if r < 0.35 else png_header(rng) if r < 0.5 else \
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" if r < 0.55 else b""
        head = head[:size]
        h = hashlib.sha256()
        os.makedirs(self.tmp, exist_ok=True)
        tmp = os.path.join(self.tmp, "blob")
        with open(tmp, "wb") as f:
            left = size
            if head:
                f.write(head)
                h.update(head)
                left -= len(head)
            while left > 0:
                n = min(CHUNK, left)
                chunk = rng.randbytes(n // 2 + 1).hex().encode()[:n] if text \
                    else rng.randbytes(n)
                if left == n and r < 0.35 and n >= 2:
                    chunk = chunk[:-2] + b"\xff\xd9"  # JPEG end-of-image marker
                f.write(chunk)
                h.update(chunk)
                left -= n
        digest = h.hexdigest()
        d = os.path.join(self.root, "space-v1", "files", "static", "sha256", digest[:2])
        os.makedirs(d, exist_ok=True)
        os.replace(tmp, os.path.join(d, digest[2:]))
        self.files += 1
        self.bytes += size
        return digest

    def var(self, size, text):
        rng = self.rng
        u = hex32(rng)
        if rng.random() < 0.6:
            doc = {"id": u, "updatedAt": rng.randint(1_700_000_000_000, 1_800_000_000_000),
                   "notes": []}
            data = json.dumps(doc).encode()
            while len(data) < size:
                doc["notes"].append(text.message("user"))
                data = json.dumps(doc, ensure_ascii=False).encode()
        else:
            data = rng.randbytes(size)
        d = os.path.join(self.root, "space-v1", "files", "var", "uuid", u[:2])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, u[2:]), "wb") as f:
            f.write(data)
        self.files += 1
        self.bytes += len(data)

    def unknown(self, i, size):
        name = "ops.sqlite" if i == 0 else os.path.join("future", "part-%04d.bin" % i)
        path = os.path.join(self.root, "space-v1", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = (b"SQLite format 3\x00" if i == 0 else b"") + self.rng.randbytes(size)
        with open(path, "wb") as f:
            f.write(data)
        self.files += 1
        self.bytes += len(data)

    def done(self):
        if os.path.isdir(self.tmp):
            os.rmdir(self.tmp)


def small_size(rng):
    # Long tail: median ~150 KB (downscaled photos, PDFs), a few bytes to 2 MiB.
    return int(min(2 * MIB, max(1024, rng.lognormvariate(math.log(150_000), 1.1))))


HEX32 = "[0-9a-f]{32}"
RE_OPS = re.compile(r"ops/([0-9a-f]{2})/([0-9a-f]{30})/(\d{4})/(\d{2})/(\d{2})/(%s)(-m|-p)?\.jsonl$" % HEX32)
RE_CAS = re.compile(r"files/static/sha256/([0-9a-f]{2})/([0-9a-f]{62})$")
RE_VAR = re.compile(r"files/var/uuid/([0-9a-f]{2})/([0-9a-f]{30})$")
RE_ID = re.compile(HEX32 + "$")


def _is_id(x):
    return isinstance(x, str) and RE_ID.match(x) is not None


def _op_ok(op, kind):
    if kind == "mixed":
        if not isinstance(op, list) or not op or op[0] not in ("m", "p"):
            return False
        kind, op = op[0], op[1:]
        kind = "-" + kind
    if not isinstance(op, list) or not op or not isinstance(op[0], int) or isinstance(op[0], bool):
        return False
    if kind == "-m":
        return len(op) == 3 and _is_id(op[1]) and (op[2] is None or _is_id(op[2]))
    return len(op) == 4 and _is_id(op[1]) and isinstance(op[2], str)


def check_space(root):
    errors, unknown = [], []
    counts = {"ops_files": 0, "ops_lines": 0, "cas_blobs": 0, "var_blobs": 0}
    files = nbytes = 0
    space_id = None

    def err(msg):
        if len(errors) < 50:
            errors.append(msg)

    try:
        raw = open(os.path.join(root, "space-v1", "space.json"), "rb").read()
        m = re.fullmatch(rb'\{"id":"(%s)"\}' % HEX32.encode(), raw)
        if m:
            space_id = m.group(1).decode()
        else:
            err("space-v1/space.json is not exactly {\"id\":\"<32 hex>\"}")
    except OSError as e:
        err("space-v1/space.json: %s" % e)
    try:
        raw = open(os.path.join(root, "space-v1", "secrets"), "rb").read()
        lines = raw.splitlines()
        if len(lines) != 1 or len(base64.b64decode(lines[0], validate=True)) < 12 + 16:
            err("space-v1/secrets is not one line of base64(IV || ciphertext+tag)")
    except (OSError, ValueError) as e:
        err("space-v1/secrets: %s" % e)
    if not os.path.isfile(os.path.join(root, "sila.md")):
        err("sila.md missing")

    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            size = os.path.getsize(path)
            files += 1
            nbytes += size
            if rel in ("sila.md", "space-v1/space.json", "space-v1/secrets"):
                continue
            sub = rel[len("space-v1/"):] if rel.startswith("space-v1/") else None
            if sub is None:
                unknown.append(rel)
                continue
            m = RE_OPS.match(sub)
            if m:
                counts["ops_files"] += 1
                kind = m.group(7) or "mixed"
                try:
                    dt.date(int(m.group(3)), int(m.group(4)), int(m.group(5)))
                except ValueError:
                    err("%s: bad date folder" % rel)
                with open(path, "rb") as f:
                    for n, line in enumerate(f, 1):
                        counts["ops_lines"] += 1
                        try:
                            op = json.loads(line)
                        except ValueError:
                            err("%s:%d: not JSON" % (rel, n))
                            break
                        if not _op_ok(op, kind):
                            err("%s:%d: not a %s op" % (rel, n, kind))
                            break
                continue
            m = RE_CAS.match(sub)
            if m:
                counts["cas_blobs"] += 1
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    while True:
                        chunk = f.read(CHUNK)
                        if not chunk:
                            break
                        h.update(chunk)
                if h.hexdigest() != m.group(1) + m.group(2):
                    err("%s: sha256 is %s" % (rel, h.hexdigest()))
                continue
            if RE_VAR.match(sub):
                counts["var_blobs"] += 1
                continue
            unknown.append(rel)
    out = {"ok": not errors, "space_id": space_id, "files": files, "bytes": nbytes}
    out.update(counts)
    out["unknown"] = sorted(unknown)
    out["errors"] = errors
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", help="space root to create")
    g.add_argument("--check", metavar="DIR", help="verify an existing space instead")
    p.add_argument("--space-id", default=None,
                   help="32 lowercase hex, or 'random' (default: derived from --seed)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ops-files", type=int, default=300)
    p.add_argument("--blobs", type=int, default=60, help="small CAS blobs")
    p.add_argument("--big-blobs", type=int, default=3)
    p.add_argument("--big-size", type=int, default=None,
                   help="bytes per big blob (default: 3-6 MiB each)")
    p.add_argument("--big-text", action="store_true",
                   help="big blobs of hex text: compressible, so the worker "
                        "deflates them (slow at level 9) instead of storing")
    p.add_argument("--var-blobs", type=int, default=10)
    p.add_argument("--unknown-files", type=int, default=0,
                   help="files the format doesn't know (space-v1/ops.sqlite, ...)")
    p.add_argument("--files", type=int, default=None, help="total file count (overrides counts)")
    p.add_argument("--total-mib", type=float, default=None, help="total size, exact")
    p.add_argument("--end-date", default=None, help="newest op date, YYYY-MM-DD (default: today UTC)")
    p.add_argument("--days", type=int, default=120, help="ops dates spread over this many days")
    a = p.parse_args(argv)
    if a.space_id not in (None, "random"):
        sid = a.space_id
        if len(sid) != 32 or any(c not in "0123456789abcdef" for c in sid):
            p.error("--space-id must be 32 lowercase hex characters or 'random'")
    for name in ("ops_files", "blobs", "big_blobs", "var_blobs", "unknown_files"):
        if getattr(a, name) < 0:
            p.error("--%s must be >= 0" % name.replace("_", "-"))
    if a.files is not None:
        fixed = 3 + a.unknown_files
        if a.files < fixed + 1:
            p.error("--files must be at least %d" % (fixed + 1))
        n = a.files - fixed
        a.var_blobs = round(n * 0.02)
        a.big_blobs = min(a.big_blobs, max(0, n // 50))
        a.blobs = max(0, round(n * 0.20) - a.big_blobs)
        a.ops_files = n - a.var_blobs - a.big_blobs - a.blobs
    if a.days < 1:
        p.error("--days must be >= 1")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.check:
        res = check_space(a.check)
        print(json.dumps(res))
        return 0 if res["ok"] else 1
    t0 = time.monotonic()
    rng = random.Random(a.seed)
    if a.space_id == "random":
        space_id = os.urandom(16).hex()
    elif a.space_id:
        space_id = a.space_id
    else:
        space_id = hex32(random.Random("space-id:%d" % a.seed))

    root = a.out
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        sys.exit("gen_space: %s exists and is not an empty directory" % root)
    v1 = os.path.join(root, "space-v1")
    for d in ("ops", "files/static/sha256", "files/var/uuid"):
        os.makedirs(os.path.join(v1, d), exist_ok=True)

    files = 0
    nbytes = 0

    def put(path, data):
        nonlocal files, nbytes
        with open(path, "wb") as f:
            f.write(data)
        files += 1
        nbytes += len(data)

    put(os.path.join(root, "sila.md"), SILA_MD.encode())
    put(os.path.join(v1, "space.json"), json.dumps({"id": space_id}, separators=(",", ":")).encode())
    secret = rng.randbytes(12) + rng.randbytes(rng.randint(120, 400) + 16)
    put(os.path.join(v1, "secrets"), base64.b64encode(secret) + b"\n")

    if a.end_date:
        end = dt.date.fromisoformat(a.end_date)
    else:
        end = dt.datetime.now(dt.timezone.utc).date()
    days = [end - dt.timedelta(days=a.days - 1 - i) for i in range(a.days)]

    text = Text(rng)
    ops = OpsWriter(rng, text, root)
    ops.write_all(space_id, a.ops_files, days)

    blobs = BlobWriter(rng, root)
    var_sizes = [int(min(256 * 1024, max(200, rng.lognormvariate(math.log(4000), 1.2))))
                 for _ in range(a.var_blobs)]
    small = [small_size(rng) for _ in range(a.blobs)]
    if a.big_size is not None:
        big = [a.big_size] * a.big_blobs
    else:
        big = [rng.randint(3 * MIB, 6 * MIB) for _ in range(a.big_blobs)]
    unknown = [rng.randint(1024, 64 * 1024) for _ in range(a.unknown_files)]

    # Var blobs and unknown files first: their exact sizes count in --total-mib.
    for s in var_sizes:
        blobs.var(s, text)
    for i, s in enumerate(unknown):
        blobs.unknown(i, s)

    if a.total_mib is not None:
        target = int(a.total_mib * MIB)
        budget = target - nbytes - ops.bytes - blobs.bytes
        if a.big_size is not None:
            budget -= sum(big)
        scalable = small + (big if a.big_size is None else [])
        if not scalable or budget < MIN_BLOB * len(scalable):
            print("gen_space: warning: --total-mib %g cannot be met (%d bytes before blobs)"
                  % (a.total_mib, target - budget), file=sys.stderr)
            scaled = [MIN_BLOB] * len(scalable)
        else:
            f = budget / sum(scalable)
            scaled = [max(MIN_BLOB, int(s * f)) for s in scalable]
            scaled[scaled.index(max(scaled))] += budget - sum(scaled)  # exact total
        small = scaled[:len(small)]
        if a.big_size is None:
            big = scaled[len(small):]

    for s in small:
        blobs.cas(s)
    for s in big:
        blobs.cas(s, text=a.big_text)
    blobs.done()

    summary = {
        "space_id": space_id,
        "out": root,
        "files": files + ops.files + blobs.files,
        "bytes": nbytes + ops.bytes + blobs.bytes,
        "ops_files": ops.files,
        "ops_bytes": ops.bytes,
        "cas_blobs": len(small) + len(big),
        "var_blobs": len(var_sizes),
        "unknown_files": len(unknown),
        "seconds": round(time.monotonic() - t0, 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
