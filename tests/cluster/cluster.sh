#!/usr/bin/env bash
# Redis Cluster (issue 17): 3 redis-server nodes with --cluster-enabled yes
# on free loopback ports, made one cluster (3 masters, no replicas), moto
# for S3 (scripts/services.sh), a worker with SILA_REDIS_CLUSTER=1 and
# SILA_KEY_PREFIX={silact}: pointed at a node that does NOT own the
# prefix's slot.
#  1. archive + unarchive jobs succeed (the worker followed MOVED), one
#     followed by `enqueue --wait`;
#  2. 4 archive jobs queued, each slowed at its start (failpoint), and while
#     they run the prefix's slot is moved to another node by hand
#     (SETSLOT IMPORTING / MIGRATING, MIGRATE a few keys at a time, slowly,
#     so that ASK and TRYAGAIN are seen, then SETSLOT NODE); then unarchive
#     jobs on the new owner. Every job must end succeeded, every archived
#     space must have its manifest, and the worker must have logged the
#     redirections ("redis.redirected", moved and ask).
# Every process is started here and stopped by PID (scripts/services.sh).
# Exit 0 = pass. KEEP=1 keeps the temp dir.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/services.sh
source "$root/scripts/services.sh"
BIN=${BIN:-$root/build/sila-archiver}

T=$(mktemp -d "${TMPDIR:-/tmp}/sila-cluster.XXXXXX")
svc=$T/services
mkdir -p "$svc"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    svc_stop "$svc" worker # before the nodes it talks to
    svc_stop_all "$svc"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() {
    echo "FAIL: $*"
    echo "--- worker log: warnings and errors"
    grep -v '"level":"info"' "$T/worker.log" 2>/dev/null | grep -v failpoint | tail -n 20 || true
    echo "--- worker log (tail)"
    tail -n 20 "$T/worker.log" 2>/dev/null || true
    if [ -n "${SEED:-}" ]; then
        echo "--- lanes"
        for l in jobs jobs:urgent; do
            redis-cli -c -p "$SEED" XINFO GROUPS "${PREFIX}$l" 2>&1 | tr '\n' ' '
            echo
        done
    fi
    exit 1
}

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL || true
svc_start_s3 "$svc" || fail "could not start moto"
BUCKET="sila-cluster-$$"
svc_make_bucket "$BUCKET" || fail "could not create bucket $BUCKET"
export AWS_ENDPOINT_URL_S3=$SVC_S3_ENDPOINT

# a free port p whose cluster bus port p + 10000 is free too (so p <= 55535)
node_port() {
    python3 -c 'import random, socket
for _ in range(200):
    p = random.randint(20000, 55000)
    ss = []
    try:
        for q in (p, p + 10000):
            s = socket.socket()
            s.bind(("127.0.0.1", q))
            ss.append(s)
    except OSError:
        continue
    finally:
        for s in ss:
            s.close()
    print(p)
    break'
}

# three cluster nodes
PORTS=""
for i in 1 2 3; do
    ok=0
    for try in 1 2 3; do
        p=$(node_port)
        [ -n "$p" ] || fail "no free port pair for a cluster node"
        mkdir -p "$T/n$i"
        redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$T/n$i" --cluster-enabled yes \
            --cluster-config-file "$T/n$i/nodes.conf" \
            --cluster-node-timeout 5000 --daemonize no \
            </dev/null >>"$T/n$i.log" 2>&1 &
        svc_register_pid "$svc" "node$i" $!
        if _svc_wait redis "$!" "$p" 10; then ok=1; break; fi
        svc_stop "$svc" "node$i"
    done
    [ $ok = 1 ] || fail "node $i did not start: $(tail -n 5 "$T/n$i.log")"
    PORTS="$PORTS $p"
done
read -r P1 P2 P3 <<<"$PORTS"
redis-cli --cluster create "127.0.0.1:$P1" "127.0.0.1:$P2" "127.0.0.1:$P3" \
    --cluster-replicas 0 --cluster-yes >"$T/create.log" 2>&1 ||
    fail "redis-cli --cluster create: $(tail -n 5 "$T/create.log")"
for p in $PORTS; do
    for i in $(seq 100); do
        redis-cli -p "$p" CLUSTER INFO | grep -q '^cluster_state:ok' && break
        sleep 0.1
    done
    redis-cli -p "$p" CLUSTER INFO | grep -q '^cluster_state:ok' ||
        fail "node $p: cluster not ok"
done

PREFIX='{silact}:'
SLOT=$(redis-cli -p "$P1" CLUSTER KEYSLOT "${PREFIX}jobs")
node_id() { redis-cli -p "$1" CLUSTER MYID; }
# the port of the node that serves SLOT, as node $1 sees it
owner() {
    redis-cli -p "$1" CLUSTER NODES | awk -v s="$SLOT" '
        $3 ~ /master/ { for (i = 9; i <= NF; i++) {
            if ($i ~ /^\[/) continue
            n = split($i, r, "-"); lo = r[1]; hi = (n > 1) ? r[2] : r[1]
            if (s + 0 >= lo + 0 && s + 0 <= hi + 0) {
                split($2, a, "[:@]"); print a[2] } } }'
}
OWNER=$(owner "$P1")
[ -n "$OWNER" ] || fail "no owner of slot $SLOT"
SEED="" TARGET=""
for p in $PORTS; do
    [ "$p" = "$OWNER" ] && continue
    if [ -z "$SEED" ]; then SEED=$p; else TARGET=$p; fi
done
echo "cluster $PORTS: slot $SLOT of '$PREFIX' on $OWNER; worker seed $SEED; move to $TARGET"

# small spaces in active/<id>/ (the layout of SILA-FORMAT.md), on S3
mkspace() {
    local s=$1 d="$T/spaces/$1"
    mkdir -p "$d/space-v1/ops/ab/cdef/2026/12/07"
    printf '# %s\n' "$s" >"$d/sila.md"
    printf '{"id":"%s","name":"cluster test"}\n' "$s" >"$d/space-v1/space.json"
    for k in 1 2 3; do
        printf '{"op":"set","k":"t%s","v":"%s"}\n' "$k" "$s" \
            >"$d/space-v1/ops/ab/cdef/2026/12/07/peer$k-m.jsonl"
    done
    python3 "$root/tests/upload_dir.py" "$d" "$BUCKET" "active/$s/" \
        --endpoint "$AWS_ENDPOINT_URL_S3" >/dev/null || fail "upload of $s"
}
count() { # objects under a prefix
    python3 - "$BUCKET" "$1" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1], Prefix=sys.argv[2]):
    n += len(page.get("Contents", []))
print(n)
PY
}
SPACES="cl-space-1 cl-space-2 cl-space-3 cl-space-4 cl-space-5 cl-space-6"
for s in $SPACES; do mkspace "$s"; done

export SILA_STORE="s3://$BUCKET" REDIS_URL="redis://127.0.0.1:$SEED"
export SILA_REDIS_CLUSTER=1 SILA_KEY_PREFIX=$PREFIX

# an untagged prefix is refused at start, with the reason
if SILA_KEY_PREFIX=sila: "$BIN" worker </dev/null >"$T/refused.log" 2>&1; then
    fail "the worker started with an untagged prefix in cluster mode"
fi
grep -q 'needs a {tag} in SILA_KEY_PREFIX' "$T/refused.log" ||
    fail "no clear refusal: $(cat "$T/refused.log")"

# without SILA_REDIS_CLUSTER=1 a redirection is an error that says so
if SILA_REDIS_CLUSTER=0 "$BIN" enqueue archive cl-space-9 >"$T/plain.log" 2>&1; then
    fail "a plain-mode client followed a cluster redirection"
fi
grep -q 'set SILA_REDIS_CLUSTER=1' "$T/plain.log" ||
    fail "no clear error in plain mode: $(cat "$T/plain.log")"

SILA_FAILPOINTS="job.started=sleep:3000@1+" SILA_URGENT_SLOTS=0 \
    "$BIN" worker </dev/null >"$T/worker.log" 2>&1 &
svc_register_pid "$svc" worker $!
WP=$!
sleep 0.5
kill -0 "$WP" 2>/dev/null || fail "the worker exited at once"

state() {
    "$BIN" status "$1" 2>/dev/null |
        sed -n 's/.*"state": *"\([a-z_]*\)".*/\1/p' | head -1
}
wait_done() { # every job of $* ends succeeded
    local j st i
    for j in "$@"; do
        st=""
        for i in $(seq 900); do
            st=$(state "$j")
            case $st in succeeded | failed | dead) break ;; esac
            sleep 0.2
        done
        [ "$st" = succeeded ] ||
            fail "job $j ended '$st', want succeeded: $("$BIN" status "$j" 2>&1 | head -c 600)"
    done
}
archived() {
    local s
    for s in "$@"; do
        [ "$(count "metadata/$s.json")" = 1 ] || fail "no manifest for $s"
        [ "$(count "active/$s/")" = 0 ] || fail "$s: objects left under active/"
    done
}

# 1. archive + unarchive through the seed node (MOVED to the owner)
J1=$("$BIN" enqueue archive cl-space-1)
# --wait: the CLI subscribes to the job's channel (SUBSCRIBE names no key:
# no redirection) and reads the status (redirected); it also polls, so this
# shows the subscription path does not break, not that messages arrive
timeout 120 "$BIN" enqueue archive cl-space-2 --wait >"$T/wait.log" 2>&1 ||
    fail "enqueue --wait: $(tail -n 5 "$T/wait.log")"
wait_done "$J1"
archived cl-space-1 cl-space-2
U1=$("$BIN" enqueue unarchive cl-space-1 --urgent)
wait_done "$U1"
[ "$(count "active/cl-space-1/")" -ge 5 ] || fail "cl-space-1 not restored"
grep -q '"event":"redis.redirected".*"kind":"moved".*"port":'"$OWNER" "$T/worker.log" ||
    fail "the worker never logged the MOVED to $OWNER"
echo "phase 1: archive x2 + unarchive succeeded through seed $SEED (MOVED to $OWNER)"

# 2. move the slot while jobs are queued and running
JOBS=""
for s in cl-space-3 cl-space-4 cl-space-5 cl-space-6; do
    JOBS="$JOBS $("$BIN" enqueue archive "$s")"
done
running=""
for i in $(seq 300); do
    for j in $JOBS; do
        if [ "$(state "$j")" = running ]; then running=$j; break; fi
    done
    [ -n "$running" ] && break
    sleep 0.1
done
[ -n "$running" ] || fail "no job ran within 30 s"
SRC_ID=$(node_id "$OWNER")
DST_ID=$(node_id "$TARGET")
redis-cli -p "$TARGET" CLUSTER SETSLOT "$SLOT" IMPORTING "$SRC_ID" >/dev/null
redis-cli -p "$OWNER" CLUSTER SETSLOT "$SLOT" MIGRATING "$DST_ID" >/dev/null
moved=0
# a few keys at a time, slowly: for seconds the slot is half here, half
# there (ASK for the keys gone, TRYAGAIN for commands naming both)
while :; do
    keys=$(redis-cli -p "$OWNER" CLUSTER GETKEYSINSLOT "$SLOT" 3)
    [ -n "$keys" ] || break
    # shellcheck disable=SC2086 # the keys are words
    out=$(redis-cli -p "$OWNER" MIGRATE 127.0.0.1 "$TARGET" "" 0 5000 KEYS $keys)
    case $out in OK | NOKEY) ;; *) fail "MIGRATE: $out" ;; esac
    moved=$((moved + $(echo "$keys" | wc -w)))
    sleep 0.4
done
for p in $TARGET $OWNER $SEED; do
    redis-cli -p "$p" CLUSTER SETSLOT "$SLOT" NODE "$DST_ID" >/dev/null
done
for i in $(seq 100); do
    [ "$(owner "$SEED")" = "$TARGET" ] && break
    sleep 0.1
done
echo "phase 2: slot $SLOT moved $OWNER -> $TARGET ($moved keys) while job $running ran"
wait_done $JOBS
archived cl-space-3 cl-space-4 cl-space-5 cl-space-6
U2=$("$BIN" enqueue unarchive cl-space-3 --urgent)
U3=$("$BIN" enqueue unarchive cl-space-4)
wait_done "$U2" "$U3"
[ "$(count "active/cl-space-3/")" -ge 5 ] || fail "cl-space-3 not restored"
[ "$(redis-cli -p "$OWNER" CLUSTER COUNTKEYSINSLOT "$SLOT")" = 0 ] ||
    fail "keys left on the old owner"
grep -q '"event":"redis.redirected".*"kind":"moved".*"port":'"$TARGET" "$T/worker.log" ||
    fail "the worker never logged the MOVED to $TARGET"
asks=$(grep -c '"event":"redis.redirected".*"kind":"ask"' "$T/worker.log" || true)
[ "$asks" -gt 0 ] || fail "no ASK was seen while the slot moved"
kill -0 "$WP" 2>/dev/null || fail "the worker died"
grep -q '"level":"error"' "$T/worker.log" &&
    echo "note: errors logged: $(grep '"level":"error"' "$T/worker.log" | head -3)"
echo "PASS redis cluster: 3 nodes, 9 of 9 jobs succeeded, slot $SLOT moved $OWNER -> $TARGET under load, $asks ASK redirections followed"
