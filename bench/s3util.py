#!/usr/bin/env python3
"""Small S3 and curl helpers for bench/run.sh, independent of the C code.

Nothing here is timed: it sets up, checks and cleans between timed steps.

    s3util.py count BUCKET PREFIX         print "<objects> <bytes>"
    s3util.py rm BUCKET PREFIX            delete every object under PREFIX
    s3util.py archive BUCKET SPACE_ID     print "<archiveKey> <size>" of the
                                          space's current archive (manifest)
    s3util.py touch BUCKET PREFIX FILES  a short session's writes: 1 % of FILES
                                          (at least 3) of the mutable objects
                                          under PREFIX (not files/static/),
                                          spread over them, get a line
                                          appended; print "<objects> <bytes>"
    s3util.py curl-get ENDPOINT BUCKET PREFIX DIR OUT
        write a curl config (curl -K OUT) with one GET per file of DIR, of the
        object PREFIX<rel>, body to /dev/null
    s3util.py curl-put ENDPOINT BUCKET PREFIX DIR OUT
        write a curl config with one PUT (upload-file) per file of DIR to
        PREFIX<rel>
    s3util.py curl-put-ready ENDPOINT BUCKET PREFIX DIR OUT
        the same for the files a restore's ready point waits for only
        (sila.md, space-v1/space.json, space-v1/secrets, space-v1/ops/...)

Credentials and endpoint come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION and AWS_ENDPOINT_URL_S3 (path-style).
"""

import json
import os
import sys
import urllib.parse


def client():
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=16,
                      retries={"max_attempts": 5, "mode": "standard"}),
    )


def objects(s3, bucket, prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def cmd_count(bucket, prefix):
    n = b = 0
    for o in objects(client(), bucket, prefix):
        n += 1
        b += o["Size"]
    print(n, b)


def cmd_rm(bucket, prefix):
    s3 = client()
    keys = [o["Key"] for o in objects(s3, bucket, prefix)]
    for i in range(0, len(keys), 1000):
        batch = keys[i:i + 1000]
        try:
            r = s3.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in batch], "Quiet": True})
            left = [e["Key"] for e in r.get("Errors", [])]
        except Exception:  # noqa: BLE001 - a server without DeleteObjects
            left = batch
        for k in left:
            s3.delete_object(Bucket=bucket, Key=k)


def cmd_archive(bucket, sid):
    s3 = client()
    doc = json.loads(s3.get_object(Bucket=bucket, Key="metadata/%s.json" % sid)["Body"].read())
    key = doc.get("archiveKey")
    if not key:
        sys.exit("s3util: manifest of %s has no archiveKey" % sid)
    size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    print(key, size)


def cmd_touch(bucket, prefix, files):
    s3 = client()
    keys = sorted(o["Key"] for o in objects(s3, bucket, prefix)
                  if "/files/static/" not in o["Key"])
    k = min(len(keys), max(3, int(files) // 100))
    n = b = 0
    for i in range(k):
        key = keys[(i * len(keys)) // k + (len(keys) // k) // 2]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        body += b'{"op":"bench-touch","n":%d}\n' % i
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        n += 1
        b += len(body)
    print(n, b)


def files_of(root):
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path, os.path.relpath(path, root).replace(os.sep, "/")


def quote_cfg(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ready_file(rel):
    """What the worker's ready point waits for (jobs/job_unarchive.c ua_is_meta)."""
    return (rel in ("sila.md", "space-v1/space.json", "space-v1/secrets")
            or rel.startswith("space-v1/ops/"))


def cmd_curl(kind, endpoint, bucket, prefix, root, out):
    base = endpoint.rstrip("/") + "/" + bucket + "/"
    n = 0
    with open(out, "w") as f:
        for path, rel in files_of(root):
            if kind == "put-ready" and not ready_file(rel):
                continue
            url = base + urllib.parse.quote(prefix + rel, safe="/-_.~")
            f.write("url = %s\n" % quote_cfg(url))
            if kind == "get":
                f.write('output = "/dev/null"\n')
            else:
                f.write("upload-file = %s\n" % quote_cfg(path))
            n += 1
    print(n)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "count" and len(args) == 2:
        cmd_count(*args)
    elif cmd == "rm" and len(args) == 2:
        cmd_rm(*args)
    elif cmd == "archive" and len(args) == 2:
        cmd_archive(*args)
    elif cmd == "touch" and len(args) == 3:
        cmd_touch(*args)
    elif cmd in ("curl-get", "curl-put", "curl-put-ready") and len(args) == 5:
        cmd_curl(cmd[5:], *args)
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
