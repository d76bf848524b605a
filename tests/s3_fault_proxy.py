#!/usr/bin/env python3
"""An HTTP/1.1 reverse proxy in front of an S3 server that injects faults.

    s3_fault_proxy.py --port P --target HOST:PORT --control FILE [--seed N]

Listens on 127.0.0.1:P and prints "ready". Every request read from a client
connection (keep-alive, any number of requests per connection; body framed by
Content-Length or chunked) is forwarded byte for byte to the target on a
connection of its own (the Host header is unchanged, so SigV4 signatures stay
valid), and the response is relayed (Content-Length, chunked, or until close).

FILE (JSON, re-read every 50 ms; missing or unparsable = last good value,
initially no faults) sets what happens to the requests that match:

    {"p500": 0.1,           HTTP 500 InternalError (S3 XML body), not forwarded
     "p503_slowdown": 0.1,  HTTP 503 SlowDown (S3 XML body), not forwarded
     "preset": 0.05,        connection reset (SO_LINGER 0): "request": once the
                            request arrived, without forwarding it;
                            "response": after the server handled it, before
                            any response byte; "body": in the middle of the
                            response body (bodiless responses get "response");
                            one of them at random, or of those listed in
                            "reset_modes": ["request", "response", "body"]
     "pslow": 0.05,         response delayed by "slow_ms" (default 1500)
     "slow_ms": 1500,
     "phostile": 0.05,      a hostile reply of the kind "hostile" names:
     "hostile": "huge_body",
                            "huge_body": 200 OK, an XML listing's start and
                              "hostile_bytes" (default 16 MiB) in all, not
                              forwarded; "huge_error": the same as 403
                              AccessDenied; "truncated_xml": forwarded,
                              the reply body cut in half (Content-Length
                              says the half); "not_xml": 200 OK with an
                              HTML page, not forwarded; "status": HTTP
                              "status" (default 418) with no body and no
                              Location, not forwarded; "short_body":
                              forwarded, half the body sent under the
                              full Content-Length, then the connection
                              closed cleanly; "wrong_range": forwarded, a
                              206's Content-Range moved to another start
                              (bytes unchanged); "error_in_200": 200 OK
                              whose body is an S3 <Error> ("error_code",
                              default InternalError), not forwarded
     "hostile_bytes": 16777216,
     "status": 418,
     "error_code": "InternalError",
     "match": "PUT|GET",    regex, full match on the method (default: any)
     "path": "uploadId=",   regex, searched in the request target (default: any)
     "limit": 1}            inject at most this many faults, counted from the
                            time the control file took its current content

One uniform draw per request picks at most one fault, in the order above, so
the probabilities add up. With --seed N the draw of a request depends only on
N, its method, its target (upload ids blanked) and how many requests with the
same method and target came before it: the same requests get the same faults
whatever the interleaving of connections. Without --seed the seed is random
and printed ("seed N") so that a run can be replayed.

Counters go to FILE.stats (JSON, rewritten atomically every 50 ms when they
changed, and on SIGTERM): requests, forwarded, p500, p503_slowdown, reset
(and reset_request, reset_response, reset_body), slow, hostile (and
hostile_<kind>), upstream_errors, and by_method: {METHOD: {same keys}}. Each injected fault is also logged on
stdout ("fault <kind> <METHOD> <target>"). Stdlib only, one thread per connection;
stopped by SIGTERM.
"""
import argparse
import json
import os
import re
import random
import signal
import socket
import struct
import sys
import threading
import time

HOSTILE_KINDS = ("huge_body", "huge_error", "truncated_xml", "not_xml",
                 "status", "short_body", "wrong_range", "error_in_200")
COUNTERS = ("requests", "forwarded", "p500", "p503_slowdown", "reset",
            "reset_request", "reset_response", "reset_body", "slow",
            "upstream_errors", "hostile") + tuple(
                "hostile_" + k for k in HOSTILE_KINDS)
RESET_MODES = ("request", "response", "body")
MAX_HEADER = 64 * 1024

lock = threading.Lock()
cfg = {}
cfg_text = None
injected_under_cfg = 0  # faults injected since the control file changed
stats = {k: 0 for k in COUNTERS}
stats["by_method"] = {}
stats_version = 0
seen = {}           # (method, target) -> requests so far, for the draws
seed = 0
upload_id_re = re.compile(r"(uploadId=)[^&]*")


class Closed(Exception):
    """The peer closed the connection (cleanly, between requests)."""


class Reset(Exception):
    """A fault that ends the client connection with a reset."""


def note(kind, method, target):
    print("fault %s %s %s" % (kind, method, target), flush=True)


def count(method, *keys):
    global stats_version
    with lock:
        m = stats["by_method"].setdefault(method, {k: 0 for k in COUNTERS})
        for k in keys:
            stats[k] += 1
            m[k] += 1
        stats_version += 1


class Reader:
    """Buffered reads from a socket: lines and exact byte counts."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > MAX_HEADER:
                raise ValueError("line too long")
            if not self._fill():
                if self.buf:
                    raise ConnectionError("EOF inside a line")
                raise Closed()

    def read(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("EOF after %d of %d bytes"
                                      % (len(self.buf), n))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_some(self, n):
        """Up to n bytes (at least 1); b"" at EOF."""
        if not self.buf and not self._fill():
            return b""
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data


def read_head(rd):
    """Start line and header lines, raw (CRLF kept); (line, [(name, raw)])."""
    start = rd.readline()
    while start in (b"\r\n", b"\n"):  # tolerated between messages
        start = rd.readline()
    headers = []
    size = len(start)
    while True:
        line = rd.readline()
        size += len(line)
        if size > MAX_HEADER:
            raise ValueError("header too large")
        if line in (b"\r\n", b"\n"):
            return start, headers
        name = line.split(b":", 1)[0].strip().lower().decode("latin-1")
        headers.append((name, line))


def header(headers, name):
    for n, raw in headers:
        if n == name:
            return raw.split(b":", 1)[1].strip().decode("latin-1")
    return None


def is_chunked(headers):
    te = header(headers, "transfer-encoding")
    return te is not None and "chunked" in te.lower()


def read_chunked(rd):
    """The raw bytes of a chunked body, trailers included."""
    out = bytearray()
    while True:
        line = rd.readline()
        out += line
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:
                t = rd.readline()
                out += t
                if t in (b"\r\n", b"\n"):
                    return bytes(out)
        out += rd.read(size + 2)


def read_request(rd, client):
    """One request: (method, target, raw head, raw body, keep_alive)."""
    start, headers = read_head(rd)
    parts = start.decode("latin-1").split()
    if len(parts) != 3:
        raise ValueError("bad request line %r" % start[:80])
    method, target, version = parts
    expect = header(headers, "expect")
    if expect and expect.lower() == "100-continue":
        # answered here: the body is read before any decision, and the
        # server's own interim 100 is dropped
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if is_chunked(headers):
        body = read_chunked(rd)
    else:
        body = rd.read(int(header(headers, "content-length") or 0))
    conn = (header(headers, "connection") or "").lower()
    keep = "close" not in conn and (version == "HTTP/1.1"
                                    or "keep-alive" in conn)
    head = start + b"".join(raw for _, raw in headers) + b"\r\n"
    return method, target, head, body, keep


def reset(sock):
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def close(sock):
    if sock is None:
        return
    try:
        sock.close()
    except OSError:
        pass


def draw(method, target):
    """(fault, rng) for this request; fault None = forward normally."""
    key_target = upload_id_re.sub(r"\1", target)
    with lock:
        c = dict(cfg)
        n = seen.get((method, key_target), 0)
        seen[(method, key_target)] = n + 1
    rng = random.Random("%d|%s|%s|%d" % (seed, method, key_target, n))
    u = rng.random()
    try:
        if c.get("match") and not re.fullmatch(c["match"], method):
            return None, rng, c
        if c.get("path") and not re.search(c["path"], target):
            return None, rng, c
    except re.error:
        return None, rng, c
    acc = 0.0
    for fault in ("p500", "p503_slowdown", "preset", "pslow", "phostile"):
        try:
            acc += float(c.get(fault, 0) or 0)
        except (TypeError, ValueError):
            continue
        if u < acc:
            if not take_limit(c):
                return None, rng, c
            return fault, rng, c
    return None, rng, c


def take_limit(c):
    """Whether one more fault fits in the current "limit"."""
    global injected_under_cfg
    limit = c.get("limit")
    with lock:
        if isinstance(limit, int) and injected_under_cfg >= limit:
            return False
        injected_under_cfg += 1
    return True


def error_response(method, status, reason, code, message):
    rid = "%016X" % random.getrandbits(64)
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
            "<Message>%s</Message><RequestId>%s</RequestId>"
            "<HostId>s3-fault-proxy</HostId></Error>"
            % (code, message, rid)).encode()
    head = ("HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\n"
            "x-amz-request-id: %s\r\nContent-Length: %d\r\n\r\n"
            % (status, reason, rid, 0 if method == "HEAD" else len(body)))
    return head.encode() + (b"" if method == "HEAD" else body)


class Upstream:
    """The connection to the target that serves one client connection."""

    def __init__(self, target):
        self.target = target
        self.sock = None
        self.rd = None
        self.reused = False

    def drop(self):
        close(self.sock)
        self.sock = None
        self.rd = None

    def send(self, data):
        """Send a request; reconnect once when a kept-alive one went stale."""
        for attempt in (0, 1):
            if self.sock is None:
                self.sock = socket.create_connection(self.target, timeout=120)
                self.rd = Reader(self.sock)
                self.reused = False
            try:
                self.sock.sendall(data)
                return
            except OSError:
                self.drop()
                if attempt:
                    raise

    def response_head(self, method):
        """Status line and headers of the final response (1xx skipped)."""
        while True:
            start, headers = read_head(self.rd)
            parts = start.split(None, 2)
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                continue
            return start, headers, status


def body_framing(method, status, headers):
    """("none" | "length" | "chunked" | "close", length)."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return "none", 0
    if is_chunked(headers):
        return "chunked", None
    cl = header(headers, "content-length")
    if cl is not None:
        return "length", int(cl)
    return "close", None


def forward(up, method, head, body):
    """Send the request to the target and read the response head; retries a
    stale kept-alive connection once. Returns (start, headers, status)."""
    for attempt in (0, 1):
        reused = up.sock is not None
        up.send(head + body)
        try:
            return up.response_head(method)
        except (Closed, ConnectionError, OSError):
            up.drop()
            if attempt or not reused:
                raise
    raise ConnectionError("unreachable")


def relay(up, client, method, start, headers, status, cut, rng):
    """Relay the response to the client. cut: send only a random part of the
    body, then reset the client (raises Reset). Returns whether the client
    connection may be kept."""
    framing, length = body_framing(method, status, headers)
    resp_head = start + b"".join(raw for _, raw in headers) + b"\r\n"
    upstream_keep = "close" not in (header(headers, "connection") or "").lower()
    if start.startswith(b"HTTP/1.0") and "keep-alive" not in (
            header(headers, "connection") or "").lower():
        upstream_keep = False
    if cut:
        # a body cut short: read it whole, send a part, then reset
        if framing == "length":
            body = up.rd.read(length)
        elif framing == "chunked":
            body = read_chunked(up.rd)
        elif framing == "close":
            chunks = []
            while True:
                d = up.rd.read_some(65536)
                if not d:
                    break
                chunks.append(d)
            body = b"".join(chunks)
        else:
            body = b""
        n = rng.randint(0, len(body) - 1) if body else 0
        client.sendall(resp_head + body[:n])
        time.sleep(0.05)  # let the client read what it got
        up.drop()
        raise Reset()
    client.sendall(resp_head)
    if framing == "length":
        left = length
        while left > 0:
            d = up.rd.read_some(min(left, 65536))
            if not d:
                raise ConnectionError("upstream closed inside a body")
            client.sendall(d)
            left -= len(d)
    elif framing == "chunked":
        client.sendall(read_chunked(up.rd))
    elif framing == "close":
        while True:
            d = up.rd.read_some(65536)
            if not d:
                break
            client.sendall(d)
        up.drop()
        return False
    if not upstream_keep:
        up.drop()
    return True


def read_body(up, framing, length):
    """The whole response body from upstream, raw (chunked kept as is)."""
    if framing == "length":
        return up.rd.read(length)
    if framing == "chunked":
        return read_chunked(up.rd)
    if framing == "close":
        chunks = []
        while True:
            d = up.rd.read_some(65536)
            if not d:
                break
            chunks.append(d)
        up.drop()
        return b"".join(chunks)
    return b""


def dechunk(raw):
    """The payload of a raw chunked body."""
    out, i = bytearray(), 0
    while True:
        j = raw.index(b"\n", i)
        size = int(raw[i:j].split(b";", 1)[0].strip(), 16)
        if size == 0:
            return bytes(out)
        out += raw[j + 1:j + 1 + size]
        i = j + 1 + size + 2


def without(headers, *names):
    return [(n, raw) for n, raw in headers if n not in names]


def send_stream(client, head, total, first):
    """head, then first, then spaces up to total body bytes."""
    client.sendall(head)
    client.sendall(first[:total])
    left = total - min(len(first), total)
    pad = b" " * 65536
    while left > 0:
        n = min(left, len(pad))
        client.sendall(pad[:n])
        left -= n


REASONS = {200: "OK", 204: "No Content", 301: "Moved Permanently",
           302: "Found", 307: "Temporary Redirect", 403: "Forbidden",
           418: "I'm a teapot"}


def hostile_reply(kind, c, up, client, method, head, body, rng):
    """Answer with a hostile reply of this kind. Returns whether the client
    connection may be kept."""
    try:
        size = int(c.get("hostile_bytes", 16 << 20))
    except (TypeError, ValueError):
        size = 16 << 20
    if kind in ("huge_body", "huge_error"):
        if kind == "huge_body":
            status, first = 200, (
                b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult '
                b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b'
                b'</Name><Prefix></Prefix><KeyCount>0</KeyCount>'
                b'<IsTruncated>false</IsTruncated>')
        else:
            status, first = 403, (
                b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
                b'AccessDenied</Code><Message>Access Denied</Message>')
        send_stream(client, ("HTTP/1.1 %d %s\r\nContent-Type: "
                             "application/xml\r\nContent-Length: %d\r\n\r\n"
                             % (status, REASONS[status], size)).encode(),
                    size, first)
        return True
    if kind == "not_xml":
        page = (b"<!DOCTYPE html><html><head><title>Sign in</title></head>"
                b"<body><p>Please sign in to the network.</p></body></html>")
        client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(page) + page)
        return True
    if kind == "error_in_200":
        code = str(c.get("error_code") or "InternalError")
        err = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s"
               "</Code><Message>We encountered an internal error. Please "
               "try again.</Message><RequestId>0</RequestId></Error>"
               % code).encode()
        client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml"
                       b"\r\nContent-Length: %d\r\n\r\n" % len(err) + err)
        return True
    if kind == "status":
        try:
            status = int(c.get("status", 418))
        except (TypeError, ValueError):
            status = 418
        length = "" if status == 204 else "Content-Length: 0\r\n"
        client.sendall(("HTTP/1.1 %d %s\r\n%s\r\n" % (
            status, REASONS.get(status, "Unknown"), length)).encode())
        return True
    # the rest change what the server said
    start, headers, status = forward(up, method, head, body)
    count(method, "forwarded")
    framing, length = body_framing(method, status, headers)
    raw = read_body(up, framing, length)
    payload = dechunk(raw) if framing == "chunked" else raw
    headers = without(headers, "transfer-encoding", "content-length",
                      "connection")
    if kind == "wrong_range":
        cr = header(headers, "content-range")
        m = re.match(r"bytes (\d+)-(\d+)/(\S+)", cr or "")
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            na = 0 if a > 0 else 1
            headers = without(headers, "content-range") + [(
                "content-range", ("Content-Range: bytes %d-%d/%s\r\n" % (
                    na, na + b - a, m.group(3))).encode())]
        out = payload
        length_said = len(out)
    elif kind == "truncated_xml":
        out = payload[:len(payload) // 2]
        length_said = len(out)
    else:  # short_body
        out = payload[:len(payload) // 2]
        length_said = len(payload)
    resp = (start + b"".join(r for _, r in headers)
            + b"Content-Length: %d\r\n" % length_said)
    if kind == "short_body":
        client.sendall(resp + b"Connection: close\r\n\r\n" + out)
        time.sleep(0.05)
        client.shutdown(socket.SHUT_WR)
        return False
    client.sendall(resp + b"\r\n" + out)
    return True


def handle(client, target):
    rd = Reader(client)
    up = Upstream(target)
    try:
        while True:
            try:
                method, tgt, head, body, keep = read_request(rd, client)
            except Closed:
                return
            count(method, "requests")
            fault, rng, c = draw(method, tgt)
            if fault == "p500":
                count(method, "p500")
                note("p500", method, tgt)
                client.sendall(error_response(
                    method, 500, "Internal Server Error", "InternalError",
                    "We encountered an internal error. Please try again."))
            elif fault == "p503_slowdown":
                count(method, "p503_slowdown")
                note("p503_slowdown", method, tgt)
                client.sendall(error_response(
                    method, 503, "Slow Down", "SlowDown",
                    "Please reduce your request rate."))
            elif fault == "preset":
                modes = [m for m in (c.get("reset_modes") or RESET_MODES)
                         if m in RESET_MODES] or list(RESET_MODES)
                mode = rng.choice(modes)
                if mode == "request":
                    count(method, "reset", "reset_request")
                    note("reset_request", method, tgt)
                    raise Reset()
                start, headers, status = forward(up, method, head, body)
                count(method, "forwarded")
                framing, length = body_framing(method, status, headers)
                if mode == "body" and framing != "none" and length != 0:
                    count(method, "reset", "reset_body")
                    note("reset_body", method, tgt)
                    relay(up, client, method, start, headers, status, True, rng)
                # no body to cut: the server did the work, the client
                # never hears of it
                count(method, "reset", "reset_response")
                note("reset_response", method, tgt)
                up.drop()
                raise Reset()
            elif fault == "phostile":
                kind = c.get("hostile")
                if kind not in HOSTILE_KINDS:
                    kind = "status"
                count(method, "hostile", "hostile_" + kind)
                note("hostile_" + kind, method, tgt)
                if not hostile_reply(kind, c, up, client, method, head, body,
                                     rng):
                    return
            else:
                if fault == "pslow":
                    count(method, "slow")
                    note("slow", method, tgt)
                    try:
                        ms = float(c.get("slow_ms", 1500))
                    except (TypeError, ValueError):
                        ms = 1500.0
                    time.sleep(max(ms, 0.0) / 1000.0)
                try:
                    start, headers, status = forward(up, method, head, body)
                except (Closed, ConnectionError, OSError, ValueError):
                    count(method, "upstream_errors")
                    raise Reset()
                count(method, "forwarded")
                try:
                    kept = relay(up, client, method, start, headers, status,
                                 False, rng)
                except (Closed, ConnectionError, ValueError):
                    count(method, "upstream_errors")
                    raise
                if not kept:
                    keep = False
            if not keep:
                client.shutdown(socket.SHUT_WR)
                return
    except Reset:
        reset(client)
        client = None
    except (ConnectionError, OSError, ValueError):
        pass
    finally:
        up.drop()
        close(client)


def load_control(path):
    global cfg, cfg_text, injected_under_cfg
    try:
        with open(path) as f:
            text = f.read()
        if text == cfg_text:
            return
        c = json.loads(text) if text.strip() else {}
        if isinstance(c, dict):
            with lock:
                cfg = c
                cfg_text = text
                injected_under_cfg = 0
    except (OSError, ValueError):
        pass  # missing or half-written: keep the last good settings


def write_stats(path):
    with lock:
        text = json.dumps(stats, sort_keys=True)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    try:
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except OSError:
        pass


def watch(control):
    written = -1
    while True:
        load_control(control)
        with lock:
            v = stats_version
        if v != written:
            write_stats(control + ".stats")
            written = v
        time.sleep(0.05)


def main():
    global seed
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--seed", type=int)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    target = (host, int(port))
    seed = a.seed if a.seed is not None else random.SystemRandom().getrandbits(
        32)

    def stop(*_):
        write_stats(a.control + ".stats")
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    load_control(a.control)
    write_stats(a.control + ".stats")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.port))
    srv.listen(128)
    threading.Thread(target=watch, args=(a.control,), daemon=True).start()
    print("seed %d" % seed, flush=True)
    print("ready", flush=True)
    while True:
        c, _ = srv.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(c, target), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
