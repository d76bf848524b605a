#!/usr/bin/env python3
"""Upload a directory tree to S3 as individual objects, independently of the
C code (the tests and the demo use it to lay out active/<spaceId>/).

    upload_dir.py DIR BUCKET PREFIX [--endpoint URL] [--jobs N]

Every regular file DIR/<rel> becomes the object PREFIX<rel> (PREFIX gets a
trailing "/" when it has none and isn't empty). Credentials come from the
usual AWS_* variables (default: test/test, us-east-1). The endpoint is
--endpoint, else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or SVC_S3_ENDPOINT.
Prints one JSON line {"files", "bytes", "seconds"}; exit status 1 if any
upload failed.
"""

import argparse
import concurrent.futures as cf
import json
import os
import sys
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

BIG = 64 << 20  # above this, multipart via s3transfer


def endpoint_from_env():
    for v in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "SVC_S3_ENDPOINT"):
        if os.environ.get(v):
            return os.environ[v]
    return None


def make_client(endpoint, jobs):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=Config(max_pool_connections=max(10, jobs),
                      retries={"max_attempts": 5, "mode": "standard"}),
    )


def list_files(root):
    out = []
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                out.append(path)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir")
    p.add_argument("bucket")
    p.add_argument("prefix")
    p.add_argument("--endpoint", default=None)
    p.add_argument("--jobs", type=int, default=16)
    a = p.parse_args(argv)

    if not os.path.isdir(a.dir):
        sys.exit("upload_dir: %s is not a directory" % a.dir)
    prefix = a.prefix
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    s3 = make_client(a.endpoint or endpoint_from_env(), a.jobs)
    big = TransferConfig(multipart_threshold=BIG, multipart_chunksize=16 << 20, max_concurrency=4)

    def put(path):
        key = prefix + os.path.relpath(path, a.dir).replace(os.sep, "/")
        size = os.path.getsize(path)
        if size > BIG:
            s3.upload_file(path, a.bucket, key, Config=big)
        else:
            with open(path, "rb") as f:
                s3.put_object(Bucket=a.bucket, Key=key, Body=f.read())
        return size

    t0 = time.monotonic()
    files = list_files(a.dir)
    nbytes = 0
    failed = 0
    with cf.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        futs = {pool.submit(put, f): f for f in files}
        for fut in cf.as_completed(futs):
            try:
                nbytes += fut.result()
            except Exception as e:  # noqa: BLE001 - report every failure
                failed += 1
                if failed <= 10:
                    print("upload_dir: %s: %s" % (futs[fut], e), file=sys.stderr)
    print(json.dumps({"files": len(files) - failed, "bytes": nbytes, "failed": failed,
                      "seconds": round(time.monotonic() - t0, 3)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
