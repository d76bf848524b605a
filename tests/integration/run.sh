#!/usr/bin/env bash
# Runs the integration suites against real servers, as hiredis's test.sh does:
# starts redis-server and moto's S3 server on free loopback ports in a temp dir,
# creates a fresh bucket, exports where they are, runs the suites, then stops
# both servers (by PID) and removes the temp dir. A service that cannot start
# fails the run: nothing is skipped.
#
#   WK_IT_TESTS=build/rel/it-tests WK_BIN=build/rel/sila-archiver \
#       tests/integration/run.sh [args for the runner]
#   CK_RUN_SUITE=it_<flow> ...   runs one suite (read by Check itself)
#   WK_KEEP_TMP=1 ...            keeps the temp dir (server logs) for a look
#
# The suites see: WK_TEST_REDIS_PORT, WK_TEST_S3_ENDPOINT (also as
# AWS_ENDPOINT_URL_S3), WK_TEST_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION, WK_BIN, WK_SRCDIR (repo root), WK_TEST_TMP (scratch dir).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/services.sh
source "$root/scripts/services.sh"

WK_IT_TESTS=${WK_IT_TESTS:-$root/build/rel/it-tests}
WK_BIN=${WK_BIN:-$root/build/rel/sila-archiver}
if [ ! -x "$WK_IT_TESTS" ]; then
    echo "run.sh: integration runner '$WK_IT_TESTS' not found (make build/rel/it-tests)" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sila-it.XXXXXX")
svc="$tmp/services"
mkdir -p "$svc" "$tmp/work"

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    svc_stop_all "$svc"
    if [ "${WK_KEEP_TMP:-0}" = 1 ]; then
        echo "run.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Test credentials for moto, whatever the caller's environment holds.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL || true

if ! svc_start_redis "$svc"; then
    echo "run.sh: FAILED: could not start redis-server (run scripts/install-deps.sh)" >&2
    exit 1
fi
if ! svc_start_s3 "$svc"; then
    echo "run.sh: FAILED: could not start moto's S3 server (run scripts/install-deps.sh)" >&2
    exit 1
fi
bucket="sila-test-$$"
if ! svc_make_bucket "$bucket"; then
    echo "run.sh: FAILED: could not create bucket $bucket" >&2
    exit 1
fi

export WK_TEST_REDIS_PORT=$SVC_REDIS_PORT
export WK_TEST_S3_ENDPOINT=$SVC_S3_ENDPOINT
export AWS_ENDPOINT_URL_S3=$SVC_S3_ENDPOINT
export WK_TEST_BUCKET=$bucket
export WK_SRCDIR=$root
export WK_TEST_TMP=$tmp/work
export WK_BIN

echo "run.sh: redis 127.0.0.1:$WK_TEST_REDIS_PORT, s3 $WK_TEST_S3_ENDPOINT, bucket $WK_TEST_BUCKET"
# In the background so that a signal to this script is handled at once (bash
# runs traps only between commands), and in a process group of its own so that
# cleanup also stops what the tests started (forked tests, workers).
svc_spawn_group "$svc" runner "$WK_IT_TESTS" "$@"
rc=0
wait "$SVC_SPAWNED_PID" || rc=$?
svc_stop "$svc" runner  # and anything its tests left behind
if [ "$rc" -ne 0 ]; then
    echo "run.sh: integration tests failed (exit $rc)" >&2
fi
exit "$rc"
