#!/usr/bin/env python3
"""Compare the objects under an S3 prefix with the files of a folder.

    compare_prefix.py BUCKET PREFIX DIR [--endpoint URL]

Exit 0 when the keys under PREFIX are exactly the relative paths of the
files under DIR and every object is byte-identical to its file. Prints one
JSON line; the first differences go to stderr. Uses boto3 (independent of
the C code under test); credentials and endpoint from the environment.
"""
import argparse
import json
import os
import sys

import boto3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bucket")
    ap.add_argument("prefix")
    ap.add_argument("dir")
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL_S3"))
    a = ap.parse_args()
    s3 = boto3.client("s3", endpoint_url=a.endpoint)
    keys = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=a.bucket, Prefix=a.prefix):
        for o in page.get("Contents", []):
            keys[o["Key"][len(a.prefix):]] = o["Size"]
    files = {}
    for d, _, names in os.walk(a.dir):
        for n in names:
            p = os.path.join(d, n)
            files[os.path.relpath(p, a.dir).replace(os.sep, "/")] = p
    problems = []
    for k in sorted(set(keys) ^ set(files))[:10]:
        problems.append("only in %s: %r" % ("store" if k in keys else "dir", k))
    for k in sorted(set(keys) & set(files)):
        with open(files[k], "rb") as f:
            want = f.read()
        got = s3.get_object(Bucket=a.bucket, Key=a.prefix + k)["Body"].read()
        if got != want:
            problems.append("differs: %r" % k)
    print(json.dumps({"objects": len(keys), "files": len(files),
                      "problems": len(problems)}))
    for p in problems[:20]:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
