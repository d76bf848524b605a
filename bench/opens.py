#!/usr/bin/env python3
"""Opens of archived spaces as the app server sees them, for bench/run.sh:
the time from the enqueue of an urgent unarchive to the `ready` and the
`complete` event on the space's channel. Standard library only (a small
RESP client over a socket).

    opens.py run --redis URL --bin SILA_ARCHIVER --label NAME --out FILE.jsonl
                 [--bg JOBID,...] [--budget-s S] [--timeout-s S] SPACE_ID...
        Opens the spaces one after the other: SUBSCRIBE sila:space:<id>, then
        `sila-archiver enqueue unarchive <id> --urgent` (its process start
        counts: an open is an enqueue), then waits for `complete` (or
        `failed`), polling the job's status hash every 10 ms as well: a worker
        that publishes no `complete` (before issue 16) ends the open when the
        hash says `succeeded` (recorded as "complete via: state"). One JSON
        line per open goes to FILE: ready_ms, complete_ms (from the enqueue),
        what was observed, the job's own timeToReadyMs, the runner (the
        status hash's `worker`), and whether every --bg job was running at
        the enqueue and still at ready (a "busy" open). --budget-s stops
        after that long (the rest are not opened); --timeout-s per open.

    opens.py watch --redis URL --space ID --out FILE.jsonl
        SUBSCRIBE to the space channel, print "subscribed", then write each
        event with its arrival time (epoch seconds, "t") to FILE until
        `complete` or `failed` arrives or SIGTERM.

    opens.py ready-after FILE.jsonl T0
        print the seconds from epoch T0 to the first `ready` event of a
        watch file ("-" if none).

    opens.py field --redis URL JOBID FIELD
        print one field of the job's status hash (empty when missing).

    opens.py summary FILE.jsonl... [--rss-idle MIB] [--rss-busy MIB]
        print the table of idle / busy opens: count, p50 and p95 of
        open->ready and open->complete, the events observed, and the ratio
        busy / idle of the p95 open->ready (target <= 1.5).

Percentiles are nearest-rank (p95 of 20 opens is the 19th smallest).
"""

import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

PREFIX = os.environ.get("SILA_REDIS_PREFIX", "sila:")


class Resp:
    """A minimal Redis connection: commands in, replies out (RESP2)."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=10)
        self.buf = b""
        if u.password:
            self.call("AUTH", *([u.username, u.password] if u.username else [u.password]))
        db = (u.path or "/0").lstrip("/") or "0"
        if db != "0":
            self.call("SELECT", db)

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError("bad RESP reply %r" % line[:40])

    def call(self, *args):
        self.send(*args)
        return self.reply()

    def pending(self):
        """True when a reply is (at least partly) buffered or readable now."""
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r)

    def wait_readable(self, timeout):
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)


def messages(sub, timeout):
    """Pub/sub messages that arrive within timeout: [(arrival, dict)]."""
    out = []
    if not sub.wait_readable(timeout):
        return out
    while True:
        m = sub.reply()
        now = time.time()
        if isinstance(m, list) and len(m) == 3 and m[0] == "message":
            try:
                out.append((now, json.loads(m[2])))
            except ValueError:
                out.append((now, {"event": "not-json", "raw": m[2][:200]}))
        if not sub.pending():
            return out


def hget(r, key, field):
    return r.call("HGET", key, field)


def open_one(r, sub, args, sid):
    chan = PREFIX + "space:" + sid
    sub.send("SUBSCRIBE", chan)
    while True:
        m = sub.reply()
        if isinstance(m, list) and m[0] == "subscribe":
            break
    bg = [j for j in (args.bg or "").split(",") if j]
    bg_states = [hget(r, PREFIX + "job:" + j, "state") for j in bg]
    busy_start = bool(bg) and all(s == "running" for s in bg_states)
    rec = {"space": sid, "label": args.label, "bg": len(bg), "busy_at_enqueue": busy_start,
           "bg_states_at_enqueue": bg_states}
    t0 = time.time()
    p = subprocess.run([args.bin, "enqueue", "unarchive", sid, "--urgent"],
                       capture_output=True, text=True, timeout=60)
    t_enq = time.time()
    job = (p.stdout.strip().splitlines() or [""])[-1].strip()
    rec["enqueue_ms"] = round((t_enq - t0) * 1000, 1)
    if p.returncode != 0 or not job:
        rec["error"] = "enqueue failed: %s" % (p.stderr.strip()[-300:])
        sub.send("UNSUBSCRIBE", chan)
        return rec
    rec["job"] = job
    jkey = PREFIX + "job:" + job
    events = []
    t_ready = t_complete = None
    via = None
    deadline = t0 + args.timeout_s
    next_poll = 0.0
    busy_ready = None
    while time.time() < deadline:
        for at, ev in messages(sub, 0.01):
            if ev.get("jobId") not in (None, job):
                continue
            e = ev.get("event")
            events.append(e)
            if e == "ready" and t_ready is None:
                t_ready = at
                if bg:
                    busy_ready = all(hget(r, PREFIX + "job:" + j, "state") == "running" for j in bg)
            elif e == "complete" and t_complete is None:
                t_complete, via = at, "complete event"
            elif e == "failed":
                rec["error"] = "failed: %s" % ev.get("error")
        if t_complete is not None or "error" in rec:
            break
        now = time.time()
        if now >= next_poll:
            next_poll = now + 0.01
            st = hget(r, jkey, "state")
            if st == "succeeded":
                # A `complete` published in the same transaction may be in the
                # socket already: read what is there first.
                for at, ev in messages(sub, 0.02):
                    e = ev.get("event")
                    if ev.get("jobId") not in (None, job):
                        continue
                    events.append(e)
                    if e == "ready" and t_ready is None:
                        t_ready = at
                    elif e == "complete" and t_complete is None:
                        t_complete, via = at, "complete event"
                if t_complete is None:
                    t_complete, via = now, "state"
                break
            if st == "failed":
                rec["error"] = "failed: %s" % hget(r, jkey, "error")
                break
    else:
        rec["error"] = "timeout after %.0f s" % args.timeout_s
    sub.send("UNSUBSCRIBE", chan)
    rec["events"] = events
    rec["complete_via"] = via
    rec["ready_ms"] = round((t_ready - t0) * 1000, 1) if t_ready else None
    rec["complete_ms"] = round((t_complete - t0) * 1000, 1) if t_complete else None
    if bg:
        rec["busy_at_ready"] = busy_ready
        rec["busy_at_complete"] = all(hget(r, PREFIX + "job:" + j, "state") == "running" for j in bg)
    rec["runner"] = hget(r, jkey, "worker")
    res = hget(r, jkey, "result")
    try:
        res = json.loads(res) if res else {}
    except ValueError:
        res = {}
    rec["job_timeToReadyMs"] = res.get("timeToReadyMs")
    rec["job_timeToCompleteMs"] = res.get("timeToCompleteMs")
    rec["restored"] = res.get("restored")
    return rec


def cmd_run(argv):
    import argparse

    p = argparse.ArgumentParser(prog="opens.py run")
    p.add_argument("--redis", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--bg", default="")
    p.add_argument("--budget-s", type=float, default=0)
    p.add_argument("--timeout-s", type=float, default=300)
    p.add_argument("spaces", nargs="+")
    args = p.parse_args(argv)
    r, sub = Resp(args.redis), Resp(args.redis)
    start = time.time()
    failed = 0
    with open(args.out, "a") as f:
        for i, sid in enumerate(args.spaces):
            if args.budget_s and time.time() - start > args.budget_s:
                print("opens: %s: budget of %.0f s spent after %d opens" % (args.label, args.budget_s, i),
                      file=sys.stderr)
                break
            rec = open_one(r, sub, args, sid)
            rec["n"] = i + 1
            f.write(json.dumps(rec) + "\n")
            f.flush()
            failed += "error" in rec
            print("opens: %s %2d %s ready %s ms, complete %s ms%s%s" % (
                args.label, i + 1, sid[:8], rec.get("ready_ms"), rec.get("complete_ms"),
                (" busy" if rec.get("busy_at_enqueue") else " (load ended)") if rec["bg"] else "",
                (" ERROR " + rec["error"]) if "error" in rec else ""), file=sys.stderr)
            time.sleep(0.05)
    return 1 if failed else 0


def cmd_watch(argv):
    import argparse

    p = argparse.ArgumentParser(prog="opens.py watch")
    p.add_argument("--redis", required=True)
    p.add_argument("--space", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sub = Resp(args.redis)
    sub.call("SUBSCRIBE", PREFIX + "space:" + args.space)
    print("subscribed", flush=True)
    with open(args.out, "a") as f:
        while True:
            for at, ev in messages(sub, 1.0):
                ev["t"] = at
                f.write(json.dumps(ev) + "\n")
                f.flush()
                if ev.get("event") in ("complete", "failed"):
                    return 0


def cmd_ready_after(argv):
    path, t0 = argv[0], float(argv[1])
    try:
        with open(path) as f:
            for line in f:
                ev = json.loads(line)
                if ev.get("event") == "ready":
                    print("%.3f" % (ev["t"] - t0))
                    return 0
    except OSError:
        pass
    print("-")
    return 0


def pct(values, q):
    v = sorted(values)
    if not v:
        return None
    return v[max(0, math.ceil(q * len(v)) - 1)]


def fmt_ms(x):
    return "-" if x is None else ("%.0f" % x if x >= 100 else "%.1f" % x)


def cmd_summary(argv):
    import argparse

    p = argparse.ArgumentParser(prog="opens.py summary")
    p.add_argument("files", nargs="+")
    p.add_argument("--rss-idle", default="?")
    p.add_argument("--rss-busy", default="?")
    p.add_argument("--rss-busy-large", default="?")
    p.add_argument("--rss-max", type=float, default=64)
    p.add_argument("--target", type=float, default=1.5)
    p.add_argument("--describe", default="")
    p.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    args = p.parse_args(argv)
    recs = []
    for path in args.files:
        with open(path) as f:
            recs += [json.loads(x) for x in f if x.strip()]
    rows = []
    p95 = {}
    for label in dict.fromkeys(["idle", "busy"] + [x["label"] for x in recs]):
        rs = [x for x in recs if x["label"] == label]
        if not rs:
            continue
        ok = [x for x in rs if "error" not in x]
        if label != "idle":
            meas = [x for x in ok if x.get("busy_at_enqueue")]
        else:
            meas = ok
        ready = [x["ready_ms"] for x in meas if x.get("ready_ms") is not None]
        comp = [x["complete_ms"] for x in meas if x.get("complete_ms") is not None]
        seen = {}
        for x in meas:
            k = "+".join(dict.fromkeys(x.get("events") or [])) or "none"
            k += " (complete via %s)" % x.get("complete_via")
            seen[k] = seen.get(k, 0) + 1
        runners = {}
        for x in meas:
            tail = (x.get("runner") or "?").rsplit("-", 1)[-1]
            k = tail if tail[:1] == "u" and tail[1:].isdigit() else "main"
            runners[k] = runners.get(k, 0) + 1
        p95[label] = pct(ready, 0.95)
        rows.append([label, "%d/%d" % (len(meas), len(rs)),
                     fmt_ms(pct(ready, 0.5)), fmt_ms(pct(ready, 0.95)),
                     fmt_ms(pct(comp, 0.5)), fmt_ms(pct(comp, 0.95)),
                     fmt_ms(max(ready) if ready else None),
                     {"idle": args.rss_idle, "busy": args.rss_busy,
                      "busy-large": args.rss_busy_large}.get(label, ""),
                     "; ".join("%dx %s" % (n, k) for k, n in seen.items()) +
                     ("; runner " + ", ".join("%s %d" % kv for kv in sorted(runners.items()))
                      if runners else "")])
        errs = [x for x in rs if "error" in x]
        for x in errs[:3]:
            rows.append(["", "", "", "", "", "", "", "", "error: %s" % x["error"][:120]])
        if label != "idle" and len(meas) < len(rs) - len(errs):
            rows.append(["", "", "", "", "", "", "", "",
                         "%d open(s) left out: the background job had ended at the enqueue"
                         % (len(rs) - len(meas) - len(errs))])
    head = ["pass", "opens", "ready p50", "ready p95", "complete p50", "complete p95",
            "ready max", "peak RSS MiB", "observed"]
    print("Opens of archived spaces (open = enqueue unarchive --urgent; ms from the enqueue to the "
          "event on sila:space:<id>)")
    if args.describe:
        print(args.describe)
    w = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    for r in [head, ["-" * x for x in w]] + rows:
        print("  ".join(c.rjust(w[i]) if 1 <= i <= 7 else c.ljust(w[i])
                        for i, c in enumerate(r)).rstrip())
    verdicts = []
    missed = False
    if p95.get("idle") and p95.get("busy"):
        ratio = p95["busy"] / p95["idle"]
        missed = missed or ratio > args.target
        verdicts.append("open->ready p95 busy / idle: %.2f (target <= %g: %s)" % (
            ratio, args.target, "met" if ratio <= args.target else "MISSED"))
    else:
        missed = True
        verdicts.append("open->ready p95 busy / idle: ? (a pass measured nothing)")
    rss = []
    for what, v in (("small opens", args.rss_busy), ("the large open", args.rss_busy_large)):
        try:
            rss.append((float(v), what))
        except ValueError:
            pass
    if rss:
        m, what = rss[0]
        for v, w in rss[1:]:
            if v > m:  # (the large open only when it raised the peak)
                m, what = v, w
        missed = missed or m > args.rss_max
        verdicts.append("worker peak RSS with an urgent restore and a background archive at once: "
                        "%.1f MiB, with %s (target <= %g: %s)" % (
                            m, what, args.rss_max, "met" if m <= args.rss_max else "MISSED"))
    else:
        missed = True
    for v in verdicts:
        print(v)
    return 3 if args.strict and missed else 0


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "run":
        return cmd_run(argv[2:])
    if cmd == "watch":
        return cmd_watch(argv[2:])
    if cmd == "ready-after" and len(argv) == 4:
        return cmd_ready_after(argv[2:])
    if cmd == "field" and len(argv) == 6 and argv[2] == "--redis":
        print(Resp(argv[3]).call("HGET", PREFIX + "job:" + argv[4], argv[5]) or "")
        return 0
    if cmd == "summary":
        return cmd_summary(argv[2:])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
