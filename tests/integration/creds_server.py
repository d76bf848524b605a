#!/usr/bin/env python3
"""A local stand-in for the AWS credential endpoints that cannot exist on a
test machine, and a signature-checking front for the S3 server.

    creds_server.py --port P --s3-target HOST:PORT [--sts-target HOST:PORT]
                    --stats FILE [--lifetime-s N] [--container-token T]
                    [--fail-file F] [--s3-delay-ms MS]

Listens on 127.0.0.1:P (HTTP/1.1, one thread per connection) and serves:

  GET  /ping                             200 "pong" (readiness)
  PUT  /latest/api/token                 EC2 IMDSv2 session token (needs
                                         X-aws-ec2-metadata-token-ttl-seconds)
  GET  /latest/meta-data/iam/security-credentials/[ROLE]
                                         role name, then its credentials;
                                         401 without a valid IMDSv2 token
                                         (IMDSv1 is refused, as on an
                                         instance with IMDSv2 required)
  GET  /v2/credentials/ANY               ECS / EKS Pod Identity container
                                         credentials; 401 unless the
                                         Authorization header is exactly T
  POST / with Action=AssumeRoleWithWebIdentity
                                         forwarded to --sts-target (moto's
                                         STS); the credentials in its reply
                                         are recorded (and relayed as is)
  anything else                          an S3 request: its SigV4 signature
                                         is checked (its own code, not the
                                         client's) against the credentials
                                         this server issued or saw STS
                                         issue: known access key, matching
                                         x-amz-security-token, not expired,
                                         payload hash of the body, then
                                         forwarded to --s3-target. Else 403
                                         with an S3 <Error> (AccessDenied,
                                         InvalidAccessKeyId,
                                         SignatureDoesNotMatch or
                                         ExpiredToken), not forwarded.

Issued credentials live --lifetime-s seconds (default 3600); each request to
an endpoint issues new ones (new access key). While --fail-file exists, the
container and IMDS endpoints answer 500 (a refresh that fails).

FILE (JSON, rewritten atomically after every request) counts what happened:
{"issued": [{"source", "access_key", "secret", "token", "expires"}],
 "s3_ok": N, "s3_rejected": N, "rejects": [reason, ...] (first 20),
 "by_key": {access_key: N}, "imds_tokens": N, "imds_v1_refused": N,
 "container_denied": N, "sts_calls": N, "failed_on_purpose": N}
Secrets are in FILE on purpose (the tests look for them in the worker's
logs): keep FILE out of what is searched.
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

LOCK = threading.Lock()
STATE = {
    "issued": [],
    "s3_ok": 0,
    "s3_rejected": 0,
    "rejects": [],
    "by_key": {},
    "imds_tokens": 0,
    "imds_v1_refused": 0,
    "container_denied": 0,
    "sts_calls": 0,
    "failed_on_purpose": 0,
}
CREDS = {}  # access key -> {"secret", "token", "expires" (epoch s)}
IMDS_TOKENS = set()
ARGS = None
ROLE = "sila-archiver-node"
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer",
       "upgrade", "proxy-connection"}


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def save_stats():
    tmp = ARGS.stats + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATE, f)
    os.replace(tmp, ARGS.stats)


def issue(source):
    ak = "ASIA" + secrets.token_hex(8).upper()
    sk = secrets.token_urlsafe(30)
    tok = "tok" + secrets.token_urlsafe(180)
    exp = int(time.time()) + ARGS.lifetime_s
    with LOCK:
        CREDS[ak] = {"secret": sk, "token": tok, "expires": exp}
        STATE["issued"].append({"source": source, "access_key": ak,
                                "secret": sk, "token": tok,
                                "expires": iso(exp)})
        save_stats()
    return {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": ak,
            "SecretAccessKey": sk, "Token": tok, "Expiration": iso(exp),
            "LastUpdated": iso(time.time())}


def bump(name, n=1):
    with LOCK:
        STATE[name] += n
        save_stats()


def hmac256(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,"
    r"\s*SignedHeaders=([a-z0-9;.-]+),\s*Signature=([0-9a-f]{64})$")


def check_sigv4(method, target, headers, body):
    """None when the request is signed right with live credentials, else
    (S3 code, reason)."""
    auth = headers.get("authorization")
    if not auth:
        return ("AccessDenied", "unsigned request")
    m = AUTH_RE.match(auth.strip())
    if not m:
        return ("AccessDenied", "malformed Authorization")
    ak, day, region, service, signed, sig = m.groups()
    with LOCK:
        cred = CREDS.get(ak)
    if cred is None:
        return ("InvalidAccessKeyId", "unknown access key")
    if time.time() >= cred["expires"]:
        return ("ExpiredToken", "credentials expired %d s ago" %
                (time.time() - cred["expires"]))
    if headers.get("x-amz-security-token") != cred["token"]:
        return ("InvalidToken", "wrong or missing x-amz-security-token")
    names = signed.split(";")
    for need in ("host", "x-amz-date", "x-amz-content-sha256",
                 "x-amz-security-token"):
        if need not in names:
            return ("AccessDenied", "%s not signed" % need)
    amz_date = headers.get("x-amz-date", "")
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return ("AccessDenied", "bad x-amz-date")
    if abs(time.time() - t) > 900 or amz_date[:8] != day:
        return ("RequestTimeTooSkewed", "x-amz-date off")
    payload = headers.get("x-amz-content-sha256", "")
    if payload != "UNSIGNED-PAYLOAD" and \
            hashlib.sha256(body).hexdigest() != payload:
        return ("XAmzContentSHA256Mismatch", "payload hash")
    path, _, query = target.partition("?")
    pairs = []
    for part in query.split("&") if query else []:
        k, _, v = part.partition("=")
        pairs.append((k, v))
    pairs.sort()
    cq = "&".join("%s=%s" % kv for kv in pairs)
    ch = ""
    for n in names:
        v = headers.get_all(n) if hasattr(headers, "get_all") else None
        vals = v if v else [headers.get(n, "")]
        ch += "%s:%s\n" % (n, ",".join(" ".join(x.split()) for x in vals))
    creq = "\n".join([method, path, cq, ch, signed, payload])
    scope = "%s/%s/%s/aws4_request" % (day, region, service)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = hmac256(("AWS4" + cred["secret"]).encode(), day)
    k = hmac256(k, region)
    k = hmac256(k, service)
    k = hmac256(k, "aws4_request")
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig):
        return ("SignatureDoesNotMatch", "signature")
    with LOCK:
        STATE["by_key"][ak] = STATE["by_key"].get(ak, 0) + 1
    return None


def record_sts(body):
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return
    vals = {}
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in ("AccessKeyId", "SecretAccessKey", "SessionToken",
                   "Expiration"):
            vals[tag] = (el.text or "").strip()
    if "AccessKeyId" not in vals:
        return
    exp = vals.get("Expiration", "")
    try:
        t = datetime.datetime.fromisoformat(exp.replace("Z", "+00:00"))
        expires = t.timestamp()
    except ValueError:
        expires = time.time() + 3600
    with LOCK:
        CREDS[vals["AccessKeyId"]] = {"secret": vals.get("SecretAccessKey", ""),
                                      "token": vals.get("SessionToken", ""),
                                      "expires": expires}
        STATE["issued"].append({"source": "sts",
                                "access_key": vals["AccessKeyId"],
                                "secret": vals.get("SecretAccessKey", ""),
                                "token": vals.get("SessionToken", ""),
                                "expires": exp})
        save_stats()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the tests read the stats
        pass

    def reply(self, status, body=b"", ctype="text/plain", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def s3_error(self, code, reason):
        with LOCK:
            STATE["s3_rejected"] += 1
            if len(STATE["rejects"]) < 20:
                STATE["rejects"].append("%s %s: %s (%s)" % (
                    self.command, self.path[:80], code, reason))
            save_stats()
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s"
                "</Code><Message>%s</Message></Error>" % (code, reason)).encode()
        self.reply(403, body, "application/xml")

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def failing(self):
        if ARGS.fail_file and os.path.exists(ARGS.fail_file):
            bump("failed_on_purpose")
            self.reply(500, b"failing on purpose")
            return True
        return False

    def forward(self, target, body):
        host, port = target.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() not in HOP and k.lower() != "expect"}
        conn.request(self.command, self.path, body=body or None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        length_seen = False
        for k, v in resp.getheaders():
            if k.lower() in HOP:
                continue
            if k.lower() == "content-length":
                if self.command == "HEAD":
                    self.send_header(k, v)
                    length_seen = True
                continue
            self.send_header(k, v)
        if not length_seen:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()
        return data, resp.status

    def handle_any(self):
        path = self.path
        body = self.body()
        if path == "/ping":
            return self.reply(200, b"pong")
        if path == "/latest/api/token" and self.command == "PUT":
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400, b"missing ttl")
            if self.failing():
                return None
            tok = secrets.token_urlsafe(32)
            with LOCK:
                IMDS_TOKENS.add(tok)
                STATE["imds_tokens"] += 1
                save_stats()
            return self.reply(200, tok.encode())
        if path.startswith("/latest/meta-data/iam/security-credentials/"):
            with LOCK:
                ok = self.headers.get("X-aws-ec2-metadata-token") in IMDS_TOKENS
            if not ok:
                bump("imds_v1_refused")
                return self.reply(401, b"")
            if self.failing():
                return None
            rest = path[len("/latest/meta-data/iam/security-credentials/"):]
            if rest == "":
                return self.reply(200, ROLE.encode())
            if rest != ROLE:
                return self.reply(404, b"")
            return self.reply(200, json.dumps(issue("imds")).encode(),
                              "application/json")
        if path.startswith("/v2/credentials/"):
            if self.headers.get("Authorization") != ARGS.container_token:
                bump("container_denied")
                return self.reply(401, b"{\"message\":\"denied\"}",
                                  "application/json")
            if self.failing():
                return None
            c = issue("container")
            del c["Code"], c["Type"], c["LastUpdated"]
            c["RoleArn"] = "arn:aws:iam::123456789012:role/sila"
            return self.reply(200, json.dumps(c).encode(), "application/json")
        if self.command == "POST" and path == "/" and \
                b"Action=AssumeRoleWithWebIdentity" in body:
            bump("sts_calls")
            if not ARGS.sts_target:
                return self.reply(404, b"no STS here")
            data, status = self.forward(ARGS.sts_target, body)
            if status == 200:
                record_sts(data)
            return None
        bad = check_sigv4(self.command, path, self.headers, body)
        if bad:
            return self.s3_error(*bad)
        bump("s3_ok")
        if ARGS.s3_delay_ms:
            time.sleep(ARGS.s3_delay_ms / 1000.0)
        self.forward(ARGS.s3_target, body)
        return None

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--s3-target", required=True)
    ap.add_argument("--sts-target", default="")
    ap.add_argument("--stats", required=True)
    ap.add_argument("--lifetime-s", type=int, default=3600)
    ap.add_argument("--container-token", default="")
    ap.add_argument("--fail-file", default="")
    ap.add_argument("--s3-delay-ms", type=int, default=0)
    ARGS = ap.parse_args()
    with LOCK:
        save_stats()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    # SIGTERM (how the tests stop it) is a clean exit
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
