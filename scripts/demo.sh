#!/usr/bin/env bash
# The README's demo, on this machine only: Redis and an S3 server (moto) on
# free loopback ports, a generated Sila space uploaded to active/<spaceId>/,
# one worker, one archive job with a progress bar; then the manifest, the
# archive's entries, a byte-for-byte check and the emptied active/ prefix.
# Everything it starts is stopped at exit, by PID.
#
#   scripts/demo.sh                      (make demo builds first)
#   WK_BIN=path/to/sila-archiver         another binary
#   DEMO_GEN_ARGS="--ops-files 2000"     other space shape (tests/gen_space.py)
#   DEMO_KEEP=1                          keep the temp dir (logs, archive)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/services.sh
source "$root/scripts/services.sh"

BIN=${WK_BIN:-$root/build/rel/sila-archiver}
BUCKET=sila-demo

if [ -t 1 ]; then
    B=$'\e[1m' N=$'\e[0m'
else
    B='' N=''
fi
step() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }
fail() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}

[ -x "$BIN" ] || fail "$BIN not found: run 'make' (or 'make demo')"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sila-demo.XXXXXX")
svc=$tmp/services
mkdir -p "$svc"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    svc_stop_all "$svc" # the worker first, then S3 and Redis
    if [ "$rc" -ne 0 ] && [ -s "$tmp/worker.log" ]; then
        printf '\ndemo: last lines of the worker log:\n' >&2
        tail -n 20 "$tmp/worker.log" >&2
    fi
    if [ "${DEMO_KEEP:-0}" = 1 ]; then
        echo "demo: kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# S3 helpers (boto3), independent of the C code under demonstration.
s3py() {
    python3 - "$@" <<'PY'
import json, os, sys
import boto3

cmd, bucket, arg = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")

def keys(prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            yield o

if cmd == "count":  # objects and bytes under a prefix
    n = b = 0
    for o in keys(arg):
        n += 1
        b += o["Size"]
    print("%d objects, %d bytes" % (n, b))
elif cmd == "manifest":  # print metadata/<id>.json; the archive key to $KEYFILE
    sid = arg
    doc = json.loads(s3.get_object(Bucket=bucket, Key="metadata/%s.json" % sid)["Body"].read())
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    found = []

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str) and x.startswith("archived/%s/" % sid):
            found.append(x)
        elif isinstance(x, str) and x.startswith("s3://%s/archived/%s/" % (bucket, sid)):
            found.append(x.split("/", 3)[3])

    walk(doc)
    if not found:  # the manifest names it some other way: take the newest
        objs = sorted(keys("archived/%s/" % sid), key=lambda o: o["LastModified"])
        found = [o["Key"] for o in objs[-1:]]
    if not found:
        sys.exit("demo: no archive under archived/%s/" % sid)
    with open(os.environ["KEYFILE"], "w") as f:
        f.write(found[0])
elif cmd == "get":  # get KEY to the file named by $OUT
    s3.download_file(bucket, arg, os.environ["OUT"])
else:
    sys.exit("s3py: unknown command " + cmd)
PY
}

step "1. Redis and S3 (moto) on free loopback ports"
svc_start_redis "$svc" || fail "could not start redis-server (run scripts/install-deps.sh)"
svc_start_s3 "$svc" || fail "could not start moto's S3 server (run scripts/install-deps.sh)"
svc_make_bucket "$BUCKET" || fail "could not create bucket $BUCKET"
export AWS_ENDPOINT_URL_S3=$SVC_S3_ENDPOINT
export SILA_STORE=s3://$BUCKET
export REDIS_URL=redis://127.0.0.1:$SVC_REDIS_PORT/0
echo "redis:  $REDIS_URL"
echo "s3:     $AWS_ENDPOINT_URL_S3 (bucket $BUCKET)"

step "2. A Sila space: generate it, upload it to active/<spaceId>/"
# shellcheck disable=SC2086 # DEMO_GEN_ARGS is a list of options
summary=$(python3 "$root/tests/gen_space.py" --out "$tmp/space" --space-id random \
    --seed "$RANDOM" ${DEMO_GEN_ARGS:-})
sid=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["space_id"])' "$summary")
echo "generated: $summary"
python3 "$root/tests/upload_dir.py" "$tmp/space" "$BUCKET" "active/$sid/" \
    --endpoint "$AWS_ENDPOINT_URL_S3" >/dev/null
echo "space $sid"
echo "active/$sid/: $(s3py count "$BUCKET" "active/$sid/")"

step "3. Start a worker"
"$BIN" worker </dev/null >"$tmp/worker.log" 2>&1 &
svc_register_pid "$svc" worker $!
echo "worker pid $! (log: $tmp/worker.log)"
sleep 0.5
kill -0 "$(cat "$svc/worker.pid")" 2>/dev/null || fail "the worker exited at once"

step "4. Archive it: $(basename "$BIN") enqueue archive $sid --wait"
"$BIN" enqueue archive "$sid" --wait || fail "the archive job failed"

step "5. The manifest: metadata/$sid.json"
KEYFILE=$tmp/archive-key s3py manifest "$BUCKET" "$sid" || fail "no manifest"
key=$(cat "$tmp/archive-key")

step "6. The archive: $key"
OUT=$tmp/archive.zip s3py get "$BUCKET" "$key"
unzip -l "$tmp/archive.zip" >"$tmp/archive.list"
lines=$(wc -l <"$tmp/archive.list")
if [ "$lines" -le 40 ]; then
    cat "$tmp/archive.list"
else
    head -n 23 "$tmp/archive.list"
    echo "   ... $((lines - 28)) more entries ..."
    tail -n 5 "$tmp/archive.list"
fi

step "7. Check: the archive holds the space byte for byte"
mkdir -p "$tmp/extracted"
unzip -q "$tmp/archive.zip" -d "$tmp/extracted"
got=$tmp/extracted
# Entries may sit under one top folder (e.g. <spaceId>/).
if [ ! -e "$got/sila.md" ] && [ "$(find "$got" -mindepth 1 -maxdepth 1 | wc -l)" = 1 ]; then
    got=$(find "$got" -mindepth 1 -maxdepth 1)
fi
# Empty folders are not objects; compare files only.
find "$tmp/space" -type d -empty -delete
if diff -r "$tmp/space" "$got" >"$tmp/diff.txt"; then
    echo "identical: $(find "$got" -type f | wc -l) files"
else
    head -n 20 "$tmp/diff.txt"
    fail "the archive differs from the uploaded space"
fi
python3 "$root/tests/gen_space.py" --check "$got" | python3 -c \
    'import json,sys; r=json.load(sys.stdin); print("format check:", "ok" if r["ok"] else r["errors"][:5], "(%d CAS blobs verified by sha256)" % r["cas_blobs"])'

step "8. active/$sid/ afterwards"
echo "active/$sid/: $(s3py count "$BUCKET" "active/$sid/")"

step "9. Read one file without restoring: $(basename "$BIN") cat $sid space-v1/space.json"
"$BIN" cat "$sid" space-v1/space.json || fail "cat failed"
echo

step "10. A user opens the space: $(basename "$BIN") enqueue unarchive $sid --urgent --wait"
"$BIN" enqueue unarchive "$sid" --urgent --wait || fail "the unarchive job failed"
echo "active/$sid/: $(s3py count "$BUCKET" "active/$sid/")"

step "Done"
