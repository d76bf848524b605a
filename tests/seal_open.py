#!/usr/bin/env python3
"""Open a sealed archive ("sila-seal-v1") from the spec alone.

    seal_open.py BUCKET SPACE_ID KEY_FILE OUT.zip [--archive-key K]
                 [--endpoint URL]

An implementation of docs/PROTOCOL.md, "Client-side encryption", that
shares nothing with the C code under test (Python's `cryptography` AESGCM,
boto3): it reads the manifest, finds the master key by its id in KEY_FILE,
unwraps the data key, checks the stored object's SHA-256 against the
manifest, opens every chunk and writes the ZIP to OUT.zip. Prints one JSON
line (keyId, chunks, zipBytes); exit 1 with the reason on stderr when any
check fails.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import struct
import sys

import boto3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def master_keys(path):
    data = open(path, "rb").read()
    if len(data) == 32 and not all(32 <= b < 127 or b in b"\r\n\t" for b in data):
        keys = [data]
    else:
        keys = [bytes.fromhex(line.strip()) for line in data.decode().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    return {hmac.new(k, b"sila-archiver key id v1", hashlib.sha256)
            .hexdigest()[:16]: k for k in keys}


def fail(msg):
    print("seal_open: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bucket")
    ap.add_argument("space_id")
    ap.add_argument("key_file")
    ap.add_argument("out")
    ap.add_argument("--archive-key")
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL_S3"))
    a = ap.parse_args()
    s3 = boto3.client("s3", endpoint_url=a.endpoint)
    m = json.loads(s3.get_object(Bucket=a.bucket,
                                 Key="metadata/%s.json" % a.space_id)["Body"].read())
    rec = m
    if a.archive_key and a.archive_key != m["archiveKey"]:
        rec = next(h for h in m.get("history", []) if h["archiveKey"] == a.archive_key)
    enc = rec.get("encryption")
    if not enc:
        fail("archive is not sealed")
    if enc["scheme"] != "sila-seal-v1" or enc["algorithm"] != "AES-256-GCM":
        fail("unknown scheme %r" % enc)
    mk = master_keys(a.key_file).get(enc["keyId"])
    if mk is None:
        fail("no key %s in the key file" % enc["keyId"])
    w = base64.b64decode(enc["wrappedKey"], validate=True)
    if len(w) != 60:
        fail("wrapped key is %d bytes" % len(w))
    dk = AESGCM(mk).decrypt(w[:12], w[12:],
                            b"sila-seal-v1 data key\0" + a.space_id.encode())
    stored = s3.get_object(Bucket=a.bucket, Key=rec["archiveKey"])["Body"].read()
    if len(stored) != rec["size"]:
        fail("size %d, manifest %d" % (len(stored), rec["size"]))
    if hashlib.sha256(stored).hexdigest() != rec["checksum"]:
        fail("checksum mismatch")
    c = enc["chunkSize"]
    header = stored[:16]
    if header != b"SILASEAL\x01\0\0\0" + struct.pack(">I", c):
        fail("bad header %r" % header)
    body = stored[16:]
    n = max(1, -(-len(body) // (c + 16)))
    gcm = AESGCM(dk)
    out = bytearray()
    for i in range(n):
        chunk = body[i * (c + 16):(i + 1) * (c + 16)]
        nonce = struct.pack(">QI", i, 1 if i == n - 1 else 0)
        out += gcm.decrypt(nonce, chunk, header)
    with open(a.out, "wb") as f:
        f.write(out)
    print(json.dumps({"keyId": enc["keyId"], "chunks": n, "zipBytes": len(out)}))


if __name__ == "__main__":
    main()
