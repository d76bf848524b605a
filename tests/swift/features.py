#!/usr/bin/env python3
"""Which S3 features an S3 endpoint really has, asked with raw SigV4
requests (botocore signs them, nothing else of boto3 is used, so no SDK
default hides what the server does).

    features.py ENDPOINT BUCKET [--expect name=yes|no,...] [--json FILE]

Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION. Works in
BUCKET under features/<random>/ (removed at the end) and in a bucket of its
own, BUCKET-ver, for versioning. Prints one line per feature and the JSON
summary; with --expect, exits 1 when a feature differs from what is
expected (the Swift suite pins what Swift's s3api has).

Features (the names of SILA_S3_FEATURES where there is one):
  cond-put       PUT If-None-Match: * refuses (412) an existing key
  cond-put-match PUT If-Match: <wrong ETag> refuses (412)
  cond-delete    DeleteObjects with <ETag> (wrong) keeps the object
  cond-delete-single  DELETE If-Match: <wrong ETag> keeps the object
  versioning     PutBucketVersioning Enabled, two PUTs give two versions,
                 DELETE ?versionId=<old> keeps the current one
  part-copy      UploadPartCopy (x-amz-copy-source-range) in a multipart upload
  list-parts     ListParts of an upload in progress
  delete-md5     DeleteObjects with Content-MD5 works
  delete-no-md5  DeleteObjects without Content-MD5 (CRC32 only) works
Each also gets a "how" string: the status codes seen.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class S3:
    def __init__(self, endpoint, region):
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"],
                                 os.environ["AWS_SECRET_ACCESS_KEY"],
                                 os.environ.get("AWS_SESSION_TOKEN") or None)

    def req(self, method, path, query=None, body=b"", headers=None):
        url = self.endpoint + urllib.parse.quote(path)
        if query:
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        h = dict(headers or {})
        h["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
        r = AWSRequest(method=method, url=url, data=body, headers=h)
        SigV4Auth(self.creds, "s3", self.region).add_auth(r)
        pr = r.prepare()
        u = urllib.request.Request(pr.url, data=body if method in ("PUT", "POST") else None,
                                   method=method, headers=dict(pr.headers.items()))
        try:
            with urllib.request.urlopen(u, timeout=30) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers.items()), e.read()


def hdr(headers, name):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def tag(body, name):
    s = body.decode("utf-8", "replace")
    a = s.find("<%s>" % name)
    b = s.find("</%s>" % name, a)
    return s[a + len(name) + 2:b] if a >= 0 and b > a else None


def delete_xml(key, etag=None, version=None):
    inner = "<Key>%s</Key>" % key
    if etag:
        inner += "<ETag>%s</ETag>" % etag
    if version:
        inner += "<VersionId>%s</VersionId>" % version
    return ("<Delete><Quiet>false</Quiet><Object>%s</Object></Delete>" % inner).encode()


def md5_b64(b):
    return base64.b64encode(hashlib.md5(b).digest()).decode()


def probe(s3, bucket):
    base = "/%s/features/%s/" % (bucket, uuid.uuid4().hex)
    res = {}
    made = []

    def put(key, data=b"x", headers=None):
        made.append(key)
        return s3.req("PUT", base + key, body=data, headers=headers)

    # conditional PUT
    st1, _, _ = put("cp", headers={"If-None-Match": "*"})
    st2, _, _ = put("cp", headers={"If-None-Match": "*"})
    if st1 == 200 and st2 == 412:
        res["cond-put"] = (True, "first 200, second 412")
    else:
        res["cond-put"] = (False, "first %d, second %d%s" % (
            st1, st2, " (ignored)" if st2 == 200 else ""))
    put("cpm")
    st, _, _ = put("cpm", b"y", headers={"If-Match": '"00000000000000000000000000000000"'})
    res["cond-put-match"] = (st == 412, "PUT If-Match wrong: %d" % st)

    # conditional DELETE: DeleteObjects with <ETag>, DELETE If-Match
    put("cd")
    body = delete_xml(base[len(bucket) + 2:] + "cd", etag='"00000000000000000000000000000000"')
    st, _, rb = s3.req("POST", "/%s" % bucket, {"delete": ""}, body, {"Content-MD5": md5_b64(body)})
    hst, _, _ = s3.req("HEAD", base + "cd")
    code = tag(rb, "Code") or ""
    res["cond-delete"] = (st == 200 and hst == 200,
                          "DeleteObjects wrong ETag: %d %s, object then %s" % (
                              st, code, "kept" if hst == 200 else "gone (%d)" % hst))
    put("cds")
    st, _, _ = s3.req("DELETE", base + "cds", headers={"If-Match": '"00000000000000000000000000000000"'})
    hst, _, _ = s3.req("HEAD", base + "cds")
    res["cond-delete-single"] = (st == 412 and hst == 200,
                                 "DELETE If-Match wrong: %d, object then %s" % (
                                     st, "kept" if hst == 200 else "gone (%d)" % hst))

    # DeleteObjects with and without Content-MD5
    put("dm")
    body = delete_xml(base[len(bucket) + 2:] + "dm")
    st, _, rb = s3.req("POST", "/%s" % bucket, {"delete": ""}, body, {"Content-MD5": md5_b64(body)})
    hst, _, _ = s3.req("HEAD", base + "dm")
    res["delete-md5"] = (st == 200 and hst == 404, "with Content-MD5: %d, object then %d" % (st, hst))
    put("dn")
    body = delete_xml(base[len(bucket) + 2:] + "dn")
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    st, _, rb = s3.req("POST", "/%s" % bucket, {"delete": ""}, body,
                       {"x-amz-checksum-crc32": crc, "x-amz-sdk-checksum-algorithm": "CRC32"})
    hst, _, _ = s3.req("HEAD", base + "dn")
    res["delete-no-md5"] = (st == 200 and hst == 404, "CRC32 only: %d %s, object then %d" % (
        st, tag(rb, "Code") or "", hst))

    # multipart: ListParts, UploadPartCopy
    src = b"0123456789" * (600 * 1024)  # 6 MB: a part of at least 5 MiB
    put("mp-src", src)
    st, _, rb = s3.req("POST", base + "mp", {"uploads": ""})
    upload = tag(rb, "UploadId")
    if st != 200 or not upload:
        res["list-parts"] = (False, "CreateMultipartUpload: %d" % st)
        res["part-copy"] = (False, "CreateMultipartUpload: %d" % st)
    else:
        made.append("mp")
        st1, h1, _ = s3.req("PUT", base + "mp", {"partNumber": "1", "uploadId": upload}, src)
        st2, _, rb2 = s3.req("PUT", base + "mp", {"partNumber": "2", "uploadId": upload}, headers={
            "x-amz-copy-source": base + "mp-src",
            "x-amz-copy-source-range": "bytes=0-5242879"})
        e2 = tag(rb2, "ETag")
        st3, _, rb3 = s3.req("GET", base + "mp", {"uploadId": upload})
        nparts = rb3.decode("utf-8", "replace").count("<Part>")
        res["list-parts"] = (st3 == 200 and nparts == (2 if st2 == 200 else 1),
                             "ListParts: %d, %d parts" % (st3, nparts))
        done = False
        if st1 == 200 and st2 == 200 and e2:
            e2 = e2.replace("&quot;", '"')
            cx = ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part>"
                  "<Part><PartNumber>2</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>"
                  % (hdr(h1, "ETag"), e2)).encode()
            st4, _, _ = s3.req("POST", base + "mp", {"uploadId": upload}, cx)
            st5, h5, _ = s3.req("HEAD", base + "mp")
            size = int(hdr(h5, "Content-Length") or -1)
            done = st4 == 200 and st5 == 200 and size == len(src) + 5242880
            res["part-copy"] = (done, "UploadPartCopy: %d, complete: %d, size %d" % (st2, st4, size))
        else:
            res["part-copy"] = (False, "UploadPart: %d, UploadPartCopy: %d" % (st1, st2))
        if not done:
            s3.req("DELETE", base + "mp", {"uploadId": upload})

    for key in made:
        s3.req("DELETE", base + key)

    # versioning, in a bucket of its own
    vb = "%s-ver" % bucket
    st, _, _ = s3.req("PUT", "/%s" % vb)
    vbody = (b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
             b"<Status>Enabled</Status></VersioningConfiguration>")
    st, _, rb = s3.req("PUT", "/%s" % vb, {"versioning": ""}, vbody, {"Content-MD5": md5_b64(vbody)})
    if st != 200:
        res["versioning"] = (False, "PutBucketVersioning: %d %s" % (st, tag(rb, "Code") or ""))
    else:
        _, h1, _ = s3.req("PUT", "/%s/v" % vb, body=b"one")
        _, h2, _ = s3.req("PUT", "/%s/v" % vb, body=b"two")
        v1, v2 = hdr(h1, "x-amz-version-id"), hdr(h2, "x-amz-version-id")
        st, _, rb = s3.req("GET", "/%s" % vb, {"versions": "", "prefix": "v"})
        listed = rb.decode("utf-8", "replace").count("<Version>")
        sd, _, _ = s3.req("DELETE", "/%s/v" % vb, {"versionId": v1 or "none"})
        sg, _, cur = s3.req("GET", "/%s/v" % vb)
        ok = bool(v1 and v2 and v1 != v2 and listed == 2 and sd == 204 and cur == b"two")
        res["versioning"] = (ok, "ids %s/%s, ListObjectVersions %d versions, DELETE old: %d, current %r" % (
            v1, v2, listed, sd, cur[:8]))
        # empty the bucket (every version), then remove it
        st, _, rb = s3.req("GET", "/%s" % vb, {"versions": ""})
        s = rb.decode("utf-8", "replace")
        for part in s.split("<Version>")[1:] + s.split("<DeleteMarker>")[1:]:
            k, vid = tag(part.encode(), "Key"), tag(part.encode(), "VersionId")
            if k and vid:
                s3.req("DELETE", "/%s/%s" % (vb, k), {"versionId": vid})
    s3.req("DELETE", "/%s" % vb)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("endpoint")
    ap.add_argument("bucket")
    ap.add_argument("--expect", default="")
    ap.add_argument("--json")
    ap.add_argument("--enable-versioning", action="store_true",
                    help="afterwards, turn versioning on in BUCKET itself")
    a = ap.parse_args()
    s3 = S3(a.endpoint, os.environ.get("AWS_REGION", "us-east-1"))
    res = probe(s3, a.bucket)
    for k in sorted(res):
        print("features: %-19s %-3s  %s" % (k, "yes" if res[k][0] else "no", res[k][1]))
    out = {k: {"supported": v[0], "how": v[1]} for k, v in res.items()}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
    bad = []
    for item in filter(None, a.expect.split(",")):
        k, want = item.split("=")
        if k not in res or res[k][0] != (want == "yes"):
            bad.append("%s: expected %s, got %s" % (k, want, "missing" if k not in res
                                                    else ("yes" if res[k][0] else "no")))
    for b in bad:
        print("features: MISMATCH " + b, file=sys.stderr)
    if a.enable_versioning and not bad:
        vbody = (b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                 b"<Status>Enabled</Status></VersioningConfiguration>")
        st, _, rb = s3.req("PUT", "/%s" % a.bucket, {"versioning": ""}, vbody,
                           {"Content-MD5": md5_b64(vbody)})
        print("features: versioning of %s enabled: %d" % (a.bucket, st))
        if st != 200:
            return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
