#!/usr/bin/env bash
# The worker's flows against OpenStack Swift's S3 API (s3api), the way
# tests/integration/run.sh runs them against moto: starts redis-server and a
# throw-away Swift (tests/swift/swift.sh: memcached, account, container,
# object servers, proxy with s3api + tempauth) on free loopback ports in a
# temp dir, creates the bucket, checks which S3 features Swift has
# (tests/swift/features.py, pinned with --expect), runs the Swift suites
# (archive, unarchive --urgent, migrate, sweep), then stops every process
# by PID and removes the temp dir. A service that cannot start fails the run.
#
#   WK_SWIFT_TESTS=build/rel/swift-tests WK_BIN=build/rel/sila-archiver \
#       tests/swift/run.sh
#   CK_RUN_CASE=... / CK_RUN_SUITE=...   as for Check
#   WK_KEEP_TMP=1 ...            keeps the temp dir (server logs) for a look
#   SILA_S3_FEATURES=...         passed through to the workers (pin)
#
# The suites see what the moto suites see (WK_TEST_REDIS_PORT,
# WK_TEST_S3_ENDPOINT, WK_TEST_BUCKET, AWS_* credentials, WK_BIN, WK_SRCDIR,
# WK_TEST_TMP) plus WK_TEST_S3_KIND=swift.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/services.sh
source "$root/scripts/services.sh"
# shellcheck source=tests/swift/swift.sh
source "$root/tests/swift/swift.sh"

WK_SWIFT_TESTS=${WK_SWIFT_TESTS:-$root/build/rel/swift-tests}
WK_BIN=${WK_BIN:-$root/build/rel/sila-archiver}
if [ ! -x "$WK_SWIFT_TESTS" ]; then
    echo "swift/run.sh: runner '$WK_SWIFT_TESTS' not found (make build/rel/swift-tests)" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sila-swift.XXXXXX")
svc="$tmp/services"
mkdir -p "$svc" "$tmp/work"
t0=$(date +%s)

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    svc_stop_all "$svc"
    if [ "${WK_KEEP_TMP:-0}" = 1 ]; then
        echo "swift/run.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    echo "swift/run.sh: $(($(date +%s) - t0)) s" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# tempauth's user sila:tester; the secret is the one the flow suites give
# every worker (IT_SECRET in tests/integration/it_flow.h), which Swift,
# unlike moto, checks.
secret=itSecretKq93Zx
export AWS_ACCESS_KEY_ID=sila:tester AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL || true
# boto3 (the Python helpers) must not send aws-chunked bodies with trailing
# checksums, which Swift 2.30's s3api does not take
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required
export AWS_RESPONSE_CHECKSUM_VALIDATION=when_required

if ! svc_start_redis "$svc"; then
    echo "swift/run.sh: FAILED: could not start redis-server (run scripts/install-deps.sh)" >&2
    exit 1
fi
if ! swift_start "$svc" "$secret"; then
    echo "swift/run.sh: FAILED: could not start Swift (run scripts/install-deps.sh)" >&2
    exit 1
fi
export SVC_S3_ENDPOINT=$SWIFT_S3_ENDPOINT
bucket="sila-swift-$$"
if ! svc_make_bucket "$bucket"; then
    echo "swift/run.sh: FAILED: could not create bucket $bucket" >&2
    exit 1
fi
echo "swift/run.sh: redis 127.0.0.1:$SVC_REDIS_PORT, swift s3api $SWIFT_S3_ENDPOINT, bucket $bucket (up in $(($(date +%s) - t0)) s)"

# What Swift 2.30's s3api has (Debian 12), checked with raw SigV4 requests:
# a change in the packaged Swift shows here first. Then the test bucket is
# versioned, as OPERATIONS.md advises on servers without conditional deletes.
python3 "$root/tests/swift/features.py" "$SWIFT_S3_ENDPOINT" "$bucket" \
    --json "$tmp/work/features.json" --enable-versioning \
    --expect "${WK_SWIFT_EXPECT:-cond-put=no,cond-put-match=no,cond-delete=no,cond-delete-single=yes,versioning=yes,part-copy=yes,list-parts=yes,delete-md5=yes,delete-no-md5=no}"

export WK_TEST_REDIS_PORT=$SVC_REDIS_PORT
export WK_TEST_S3_ENDPOINT=$SWIFT_S3_ENDPOINT
export AWS_ENDPOINT_URL_S3=$SWIFT_S3_ENDPOINT
export WK_TEST_BUCKET=$bucket
export WK_TEST_S3_KIND=swift
export WK_SRCDIR=$root
export WK_TEST_TMP=$tmp/work
export WK_BIN

svc_spawn_group "$svc" runner "$WK_SWIFT_TESTS" "$@"
rc=0
wait "$SVC_SPAWNED_PID" || rc=$?
svc_stop "$svc" runner
if [ "$rc" -ne 0 ]; then
    echo "swift/run.sh: Swift tests failed (exit $rc)" >&2
fi
exit "$rc"
