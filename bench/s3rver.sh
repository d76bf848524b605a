#!/usr/bin/env bash
# s3rver (npm, 3.x) as the benchmark's S3 server: a Node.js fake S3 that
# serves several times more requests per second on loopback than moto (which
# is single-core bound and makes every client look the same). Library for
# bench/run.sh; source it after scripts/services.sh, whose process records
# (DIR/<name>.pid + start time) and readiness check it reuses, so that
# svc_stop_all stops s3rver by PID like any other service.
#
#   bench_s3rver_install CACHE   npm install s3rver@3 into CACHE/s3rver (once);
#                                sets BENCH_S3RVER_BIN
#   bench_s3rver_start DIR BUCKET [DATA]
#                                start it on a free 127.0.0.1 port with data in
#                                DATA (default DIR/s3rver-data) and BUCKET
#                                created (silent;
#                                BENCH_S3RVER_LOG=1 logs every request and
#                                error to DIR/s3.log, slower); exports
#                                SVC_S3_ENDPOINT and s3rver's fixed credentials
#                                (S3RVER / S3RVER) as AWS_ACCESS_KEY_ID/SECRET
#   bench_s3rver_stop DIR        stop it (KILL: s3rver 3.x catches TERM and
#                                keeps running; its data is throw-away)
#   bench_s3rver_version         print the installed version
# Functions print errors to stderr and return non-zero; they never exit.

BENCH_S3RVER_BIN=${BENCH_S3RVER_BIN:-}

bench_s3rver_install() {
    local cache=${1:?bench_s3rver_install CACHE} dir
    dir=$cache/s3rver
    if [ ! -x "$dir/node_modules/.bin/s3rver" ]; then
        command -v npm >/dev/null 2>&1 || { echo "bench: npm not found" >&2; return 1; }
        mkdir -p "$dir" || return 1
        # A package.json of its own: npm must not walk up into the checkout.
        [ -e "$dir/package.json" ] ||
            printf '{"name":"sila-bench-s3rver","private":true}\n' >"$dir/package.json"
        echo "bench: npm install s3rver@3 into $dir" >&2
        (cd "$dir" && npm install --no-audit --no-fund --loglevel=error s3rver@3 >&2) ||
            { echo "bench: npm install s3rver@3 failed" >&2; return 1; }
    fi
    BENCH_S3RVER_BIN=$dir/node_modules/s3rver/bin/s3rver.js
    [ -f "$BENCH_S3RVER_BIN" ] || { echo "bench: $BENCH_S3RVER_BIN missing" >&2; return 1; }
}

bench_s3rver_version() {
    local pkg
    pkg=$(dirname "$(dirname "$BENCH_S3RVER_BIN")")/package.json
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$pkg"
}

bench_s3rver_start() {
    local dir=${1:?bench_s3rver_start DIR BUCKET} bucket=${2:?bench_s3rver_start DIR BUCKET}
    local data=${3:-$1/s3rver-data}
    [ -n "$BENCH_S3RVER_BIN" ] || { echo "bench: call bench_s3rver_install first" >&2; return 1; }
    local -a quiet=(--silent)
    [ "${BENCH_S3RVER_LOG:-0}" != 1 ] || quiet=()
    mkdir -p "$data" || return 1
    _svc_add_no_proxy
    # "env" execs node, so the recorded PID is the server's own. Node 17+ needs
    # the legacy OpenSSL provider for s3rver's MD5-based code paths.
    _svc_start s3 http "$dir" "$SVC_WAIT_S3_S" \
        env NODE_OPTIONS=--openssl-legacy-provider node "$BENCH_S3RVER_BIN" \
        --directory "$data" --address 127.0.0.1 --port @PORT@ \
        "${quiet[@]}" --no-vhost-buckets --configure-bucket "$bucket" || return 1
    # shellcheck disable=SC2154 # _svc_port is set by _svc_start
    export SVC_S3_ENDPOINT=http://127.0.0.1:$_svc_port
    export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
    unset AWS_SESSION_TOKEN
}

bench_s3rver_stop() {
    local dir=${1:?bench_s3rver_stop DIR} pid start
    pid=$(cat "$dir/s3.pid" 2>/dev/null) || return 0
    start=$(cat "$dir/s3.start" 2>/dev/null || true)
    rm -f "$dir/s3.pid" "$dir/s3.start" "$dir/s3.group"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    # Only the process recorded at start, never a recycled PID.
    if [ -n "$start" ] && [ "$(_svc_starttime "$pid")" = "$start" ]; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
