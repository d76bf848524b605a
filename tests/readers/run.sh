#!/usr/bin/env bash
# Every reader opens our archives (issue 18): a generated space (text, small
# and big already-compressed blobs, non-ASCII names, an empty file) archived
# by the real worker on moto, downloaded, then opened by Info-ZIP (unzip -t,
# then extracted), 7-Zip (7z t, then extracted), bsdtar reading a pipe,
# Python's zipfile, Java's ZipFile and ZipInputStream: every entry's bytes
# compared with the source files. Then our own readers: `cat` of two files
# (libarchive's seekable reader over ranged GETs) and a restore (the
# streaming reader zipr + ua_source), compared object by object.
#
#   tests/readers/run.sh [BIN]        (make check-readers)
#   READERS_KEEP=1                    keep the temp dir
# Every tool is required: a missing one fails the run (scripts/install-deps.sh
# installs them). Everything started here is stopped at exit, by PID.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/services.sh
source "$root/scripts/services.sh"

BIN=${1:-${WK_BIN:-$root/build/rel/sila-archiver}}
BUCKET=sila-readers
CHUNK=$((1 << 20)) # SILA_GET_CHUNK: objects above it take the big path
export LC_ALL=C.UTF-8 # non-ASCII names on disk for unzip, 7z, bsdtar

fail() {
    printf 'readers: FAIL: %s\n' "$*" >&2
    exit 1
}
ok() { printf 'readers: ok: %s\n' "$*"; }

[ -x "$BIN" ] || fail "$BIN not found: run make"
for t in unzip 7z bsdtar java python3 diff cmp; do
    command -v "$t" >/dev/null 2>&1 || fail "'$t' is missing (scripts/install-deps.sh)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sila-readers.XXXXXX")
svc=$tmp/services
mkdir -p "$svc"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    svc_stop_all "$svc"
    if [ "$rc" -ne 0 ] && [ -s "$tmp/worker.log" ]; then
        printf 'readers: last lines of the worker log:\n' >&2
        tail -n 20 "$tmp/worker.log" >&2
    fi
    if [ "${READERS_KEEP:-0}" = 1 ]; then
        echo "readers: kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

svc_start_redis "$svc" || fail "could not start redis-server"
svc_start_s3 "$svc" || fail "could not start moto's S3 server"
svc_make_bucket "$BUCKET" || fail "could not create bucket $BUCKET"
export AWS_ENDPOINT_URL_S3=$SVC_S3_ENDPOINT
export SILA_STORE=s3://$BUCKET
export REDIS_URL=redis://127.0.0.1:$SVC_REDIS_PORT/0
export SILA_KEY_PREFIX="readers$$:"
export SILA_GET_CHUNK=$CHUNK

# The space: gen_space.py's (ops text, CAS blobs of random bytes, two big
# ones over the chunk), plus JPEG/PNG files small and big, non-ASCII names,
# an empty file, and a JPEG holding "PK\7\8" + the CRC-32 and sizes of the
# bytes before it (what ended a stored entry early when stored entries had
# data descriptors).
space=$tmp/space
summary=$(python3 "$root/tests/gen_space.py" --out "$space" --space-id random \
    --seed 18 --ops-files 60 --blobs 30 --big-blobs 2 --big-size $((3 * CHUNK)) \
    --var-blobs 3 --unknown-files 3)
sid=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["space_id"])' "$summary")
python3 - "$space" "$CHUNK" <<'PY'
import os, random, struct, sys, zlib
root, chunk = sys.argv[1], int(sys.argv[2])
rnd = random.Random(18)
def put(rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
jpeg = lambda n: b"\xff\xd8\xff\xe0" + rnd.randbytes(n - 4)
put("photos/café-日本.jpg", jpeg(300000))
put("photos/big.jpg", jpeg(3 * chunk + 12345))
put("photos/exactly-chunk.jpg", jpeg(chunk))
put("photos/just-over.jpg", jpeg(chunk + 1))
put("photos/tiny.png", b"\x89PNG\r\n\x1a\n" + rnd.randbytes(100))
d = bytearray(jpeg(50000))
d[1000:1016] = struct.pack("<IIII", 0x08074B50, zlib.crc32(bytes(d[:1000])), 1000, 1000)
put("photos/pk-inside.jpg", bytes(d))
big = bytearray(jpeg(2 * chunk + 7))
big[chunk + 5:chunk + 21] = struct.pack("<IIII", 0x08074B50, zlib.crc32(bytes(big[:chunk + 5])), chunk + 5, chunk + 5)
put("photos/pk-inside-big.jpg", bytes(big))
put("notes/Ünïcødé – notes.txt", ("Grüße, 日本語のテキスト\n" * 2000).encode())
put("space-v1/files/empty", b"")
put("notes/empty ü.txt", b"")
PY
python3 "$root/tests/upload_dir.py" "$space" "$BUCKET" "active/$sid/" >/dev/null
nfiles=$(find "$space" -type f | wc -l)
echo "readers: space $sid: $nfiles files ($summary)"

"$BIN" worker </dev/null >"$tmp/worker.log" 2>&1 &
svc_register_pid "$svc" worker $!
start=$(date +%s.%N)
"$BIN" enqueue archive "$sid" --wait >/dev/null || fail "the archive job failed"
secs=$(python3 -c "import sys,time; print('%.2f' % (time.time() - float(sys.argv[1])))" "$start")
zip=$tmp/archive.zip
python3 - "$BUCKET" "$sid" "$zip" <<'PY'
import boto3, json, os, sys
bucket, sid, out = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
mf = json.loads(s3.get_object(Bucket=bucket, Key="metadata/%s.json" % sid)["Body"].read())
assert mf["state"] == "archived", mf["state"]
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="archived/%s/" % sid).get("Contents", [])]
assert len(keys) == 1, keys
s3.download_file(bucket, keys[0], out)
PY
ok "archived in ${secs}s, $(stat -c %s "$zip") bytes"

# Extracted trees are compared with the space (files only: no empty dirs).
same_tree() {
    local got=$1 who=$2
    find "$got" -type d -empty -delete
    diff -r "$space" "$got" >"$tmp/diff.txt" 2>&1 || {
        head -n 20 "$tmp/diff.txt" >&2
        fail "$who: extracted files differ from the space"
    }
    ok "$who: $(find "$got" -type f | wc -l) of $nfiles files identical"
}

unzip -tq "$zip" >"$tmp/unzip-t.txt" 2>&1 || { cat "$tmp/unzip-t.txt" >&2; fail "unzip -t"; }
ok "unzip -t: $(cat "$tmp/unzip-t.txt")"
mkdir "$tmp/unzip" && unzip -q "$zip" -d "$tmp/unzip" || fail "unzip (extract)"
same_tree "$tmp/unzip" "unzip"

7z t "$zip" >"$tmp/7z-t.txt" 2>&1 || { tail -n 20 "$tmp/7z-t.txt" >&2; fail "7z t"; }
grep -q "Everything is Ok" "$tmp/7z-t.txt" || fail "7z t: no 'Everything is Ok'"
ok "7z t: Everything is Ok"
7z x -o"$tmp/7z" "$zip" >/dev/null 2>&1 || fail "7z x"
same_tree "$tmp/7z" "7z x"

mkdir "$tmp/bsdtar"
# shellcheck disable=SC2002 # a pipe on purpose: no seeking
cat "$zip" | (cd "$tmp/bsdtar" && bsdtar -xf -) || fail "bsdtar -xf - (from a pipe)"
same_tree "$tmp/bsdtar" "bsdtar from a pipe"

java "$root/tests/readers/Readers.java" zipfile "$zip" "$space" || fail "java ZipFile"
# shellcheck disable=SC2002 # stdin is a pipe: a true stream
cat "$zip" | java "$root/tests/readers/Readers.java" stream "$space" \
    || fail "java ZipInputStream"

# Python's zipfile, and the shape PROTOCOL.md promises (stored entries
# without descriptor, big compressed ones deflated at level 0)
python3 "$root/tests/readers/check_zip.py" "$zip" "$space" "$CHUNK" || fail "python zipfile"

# Our own readers. cat: libarchive's seekable reader over ranged GETs.
for f in "photos/café-日本.jpg" "photos/big.jpg" "notes/Ünïcødé – notes.txt"; do
    "$BIN" cat "$sid" "$f" >"$tmp/cat.out" || fail "cat '$f'"
    cmp -s "$tmp/cat.out" "$space/$f" || fail "cat '$f': bytes differ"
done
ok "sila-archiver cat: 3 files identical"

# A restore: the streaming reader (zipr) through ua_source, every object.
"$BIN" enqueue unarchive "$sid" --urgent --wait >/dev/null || fail "the unarchive job failed"
python3 - "$BUCKET" "$sid" "$space" <<'PY' || fail "restore: objects differ"
import boto3, os, sys
bucket, sid, root = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
pre = "active/%s/" % sid
got = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=pre):
    for o in page.get("Contents", []):
        got[o["Key"][len(pre):]] = o["Key"]
want = {}
for d, _, names in os.walk(root):
    for n in names:
        p = os.path.join(d, n)
        want[os.path.relpath(p, root)] = p
bad = sorted(set(want) ^ set(got))
for rel in sorted(set(want) & set(got)):
    with open(want[rel], "rb") as f:
        if s3.get_object(Bucket=bucket, Key=got[rel])["Body"].read() != f.read():
            bad.append(rel)
if bad:
    sys.exit("restore: %d objects differ or are missing, e.g. %r" % (len(bad), bad[:5]))
print("readers: ok: restore (zipr): %d objects identical" % len(got))
PY

echo "readers: all readers agree ($nfiles files)"
