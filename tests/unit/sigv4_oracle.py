#!/usr/bin/env python3
"""SigV4 oracle for tests/unit/check_sigv4.c: sign requests with botocore.

Reads JSON lines on stdin (or from the file named by the first argument),
one request per line:

  {"id": "...", "method": "GET", "scheme": "https", "host": "b.s3...",
   "path": "/raw key", "query": [["name", "value"], ...],
   "headers": [["Name", "value"], ...], "body": "text" | null,
   "unsigned": false, "region": "us-east-1", "service": "s3",
   "access_key": "...", "secret_key": "...", "token": "" | null,
   "now": 1369353600}

and writes one JSON line per request with what botocore's S3SigV4Auth
signed: canonical_request, string_to_sign, signature, authorization,
x_amz_date and x_amz_content_sha256. The first output line names the oracle:
{"oracle": "botocore.auth.S3SigV4Auth", "version": "..."}.

The request is built the way botocore's S3 client builds it: the raw key
is percent-encoded once with botocore.utils.percent_encode(safe='/~') (what
botocore.serialize does for the greedy {Key+} label), query parameters go
in request.params, headers are added one by one (repeats kept), and the
payload hash is botocore's own: the SHA-256 of the body, or
UNSIGNED-PAYLOAD when payload signing is turned off through the client's
s3 config. The clock is pinned by replacing get_current_datetime in
botocore.auth. Nothing here talks to the network.

Exit status: 0 on success, 3 when botocore cannot be imported, 4 on a bad
request line.
"""

import datetime
import json
import sys

try:
    import botocore
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials
    from botocore.utils import percent_encode
except ImportError as exc:  # the C test turns this into a failure
    sys.stderr.write(
        f"sigv4_oracle: botocore is not importable by {sys.executable}: "
        f"{exc}\n"
    )
    sys.exit(3)


class CapturingS3SigV4Auth(botocore.auth.S3SigV4Auth):
    """S3SigV4Auth that remembers what it computed; behaviour unchanged."""

    def canonical_request(self, request):
        self.captured_canonical_request = super().canonical_request(request)
        return self.captured_canonical_request

    def string_to_sign(self, request, canonical_request):
        self.captured_string_to_sign = super().string_to_sign(
            request, canonical_request
        )
        return self.captured_string_to_sign

    def signature(self, string_to_sign, request):
        self.captured_signature = super().signature(string_to_sign, request)
        return self.captured_signature


def _pin_clock(epoch_seconds):
    fixed = datetime.datetime.fromtimestamp(
        epoch_seconds, datetime.timezone.utc
    )

    def fake_now(remove_tzinfo=True):
        return fixed.replace(tzinfo=None) if remove_tzinfo else fixed

    botocore.auth.get_current_datetime = fake_now


def sign(case):
    _pin_clock(case["now"])
    url = "{}://{}{}".format(
        case.get("scheme", "https"),
        case["host"],
        percent_encode(case["path"], safe="/~"),
    )
    body = case.get("body")
    request = AWSRequest(
        method=case["method"],
        url=url,
        data=body.encode("utf-8") if body is not None else None,
        params=[(k, v) for k, v in case.get("query", [])],
    )
    for name, value in case.get("headers", []):
        request.headers[name] = value  # HTTPHeaders appends repeats
    if case.get("unsigned"):
        request.context["client_config"] = Config(
            s3={"payload_signing_enabled": False}
        )
    creds = Credentials(
        case["access_key"], case["secret_key"], case.get("token") or None
    )
    auth = CapturingS3SigV4Auth(
        creds, case.get("service", "s3"), case["region"]
    )
    auth.add_auth(request)
    return {
        "id": case["id"],
        "canonical_request": auth.captured_canonical_request,
        "string_to_sign": auth.captured_string_to_sign,
        "signature": auth.captured_signature,
        "authorization": request.headers["Authorization"],
        "x_amz_date": request.headers["X-Amz-Date"],
        "x_amz_content_sha256": request.headers["X-Amz-Content-SHA256"],
    }


def main(argv):
    src = open(argv[1], encoding="utf-8") if len(argv) > 1 else sys.stdin
    out = sys.stdout
    out.write(
        json.dumps(
            {
                "oracle": "botocore.auth.S3SigV4Auth",
                "version": botocore.__version__,
            }
        )
        + "\n"
    )
    for lineno, line in enumerate(src, 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
            result = sign(case)
        except (ValueError, KeyError, TypeError) as exc:
            sys.stderr.write(f"sigv4_oracle: line {lineno}: {exc!r}\n")
            return 4
        out.write(json.dumps(result, ensure_ascii=True) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
