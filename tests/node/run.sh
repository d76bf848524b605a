#!/usr/bin/env bash
# Runs the Node client's tests (tests/node/*.test.js, Node's own test runner)
# against real servers, as tests/integration/run.sh does: redis-server and
# moto's S3 server on free loopback ports in a temp dir, a fresh bucket, the
# real worker binary (the tests start and stop their workers by PID). Installs
# the client's one dependency (ioredis, from package-lock.json) with `npm ci`
# into clients/node/node_modules when it is missing. Stops everything it
# started by PID at the end. A service that cannot start fails the run.
#
#   WK_BIN=build/rel/sila-archiver tests/node/run.sh [test files...]
#   WK_KEEP_TMP=1 ...            keeps the temp dir (server and worker logs)
#
# The tests see: WK_TEST_REDIS_PORT, WK_TEST_S3_ENDPOINT (and
# AWS_ENDPOINT_URL_S3), WK_TEST_BUCKET, AWS_*, WK_BIN, WK_SRCDIR, WK_TEST_TMP.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/services.sh
source "$root/scripts/services.sh"

WK_BIN=${WK_BIN:-$root/build/rel/sila-archiver}
if [ ! -x "$WK_BIN" ]; then
    echo "node/run.sh: worker '$WK_BIN' not found (make build/rel/sila-archiver)" >&2
    exit 1
fi
for c in node npm; do
    command -v "$c" >/dev/null 2>&1 ||
        { echo "node/run.sh: $c not found (make deps installs nodejs and npm)" >&2; exit 1; }
done
client=$root/clients/node
if [ ! -f "$client/node_modules/ioredis/package.json" ]; then
    echo "node/run.sh: installing the client's dependencies (npm ci)"
    (cd "$client" && npm ci --no-audit --no-fund --loglevel=error) ||
        { echo "node/run.sh: npm ci failed in $client" >&2; exit 1; }
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sila-node.XXXXXX")
svc="$tmp/services"
mkdir -p "$svc" "$tmp/work"

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    svc_stop_all "$svc"
    if [ "${WK_KEEP_TMP:-0}" = 1 ]; then
        echo "node/run.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL || true

svc_start_redis "$svc" || { echo "node/run.sh: FAILED: could not start redis-server" >&2; exit 1; }
svc_start_s3 "$svc" || { echo "node/run.sh: FAILED: could not start moto's S3 server" >&2; exit 1; }
bucket="sila-node-$$"
svc_make_bucket "$bucket" || { echo "node/run.sh: FAILED: could not create bucket $bucket" >&2; exit 1; }

export WK_TEST_REDIS_PORT=$SVC_REDIS_PORT
export WK_TEST_S3_ENDPOINT=$SVC_S3_ENDPOINT
export AWS_ENDPOINT_URL_S3=$SVC_S3_ENDPOINT
export WK_TEST_BUCKET=$bucket
export WK_SRCDIR=$root
export WK_TEST_TMP=$tmp/work
export WK_BIN
export NODE_PATH=$client/node_modules

if [ "$#" -eq 0 ]; then
    set -- "$root"/tests/node/*.test.js
fi
echo "node/run.sh: redis 127.0.0.1:$WK_TEST_REDIS_PORT, s3 $WK_TEST_S3_ENDPOINT, bucket $bucket, $(node --version)"
# Own process group: cleanup also stops workers a failed test left behind.
svc_spawn_group "$svc" runner node --test "$@"
rc=0
wait "$SVC_SPAWNED_PID" || rc=$?
svc_stop "$svc" runner
if [ "$rc" -ne 0 ]; then
    echo "node/run.sh: node tests failed (exit $rc)" >&2
fi
exit "$rc"
