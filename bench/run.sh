#!/usr/bin/env bash
# Benchmark of issues 6 and 16: sila-archiver against the operator's tools, in
# one run, on one S3 server on loopback, straight and through a proxy that
# delays every request (the latency profile). Prints one table: for each
# workload, profile and operation (archive, unarchive) the wall-clock seconds
# of sila-archiver, of the aws-cli pipeline, of the rclone pipeline and of a
# curl lower bound, the ratios, whether the issues' targets are met, and the
# worker's peak RSS (VmHWM from /proc/<pid>/status, reset between the two
# operations); the S3 requests of each sila-archiver job by operation (from
# its result, issue 18) against the compass bound; the re-archive of each
# restored space after a short session (1 % of its files touched) against
# its first archive (issue 18); then the opens of archived
# spaces with idle and with busy workers (bench/opens.sh).
#
#   bash bench/run.sh                 (make bench builds first)
#
# Knobs (environment):
#   BENCH_WORKLOADS=1k,10k,2g,opens  subset of the workloads (default: all four)
#       1k   generated space, 1,000 files / 100 MiB
#       10k  generated space, 10,000 files / 200 MiB
#       2g   generated space, 5,000 files / 2 GiB, 4 blobs of 200 MiB (memory)
#       opens  20 opens (urgent unarchives) of 150-file archived spaces, with
#            idle workers, then while every worker archives a space of
#            10,000 files / 2 GiB (bench/opens.sh has its knobs, BENCH_OPENS_*)
#   BENCH_QUICK=1               smoke run of the harness: 200 files / 10 MiB,
#                               and opens with 8 spaces and a 2,000-file /
#                               200 MiB background archive (a few minutes)
#   BENCH_PROFILE=both|plain|latency  (default both) plain: every request goes
#                               straight to the S3 server; latency: through
#                               bench/latency_proxy.js, which hands each request
#                               on only after BENCH_LATENCY_MS (as real S3
#                               answers after tens of ms). Everything timed
#                               (sila, aws-cli, rclone, curl) goes through the
#                               same endpoint; setup and checks go direct
#   BENCH_LATENCY_MS=20         the latency profile's delay per request
#   BENCH_SERVER=auto|s3rver|moto  S3 server (auto: s3rver, moto if npm or
#                               s3rver fails)
#   BENCH_CACHE=DIR             where s3rver is npm-installed
#                               (default ~/.cache/sila-bench)
#   BENCH_OUT=FILE              also write the table (and notes) to FILE
#   BENCH_STRICT=1              exit 3 when a target is missed (default: the
#                               exit status only says whether every step ran
#                               and checked out; the table says the rest)
#   BENCH_ENCRYPT=1             the worker seals archives (SILA_ENCRYPTION_KEY_FILE,
#                               a fresh key); the alternatives then unarchive
#                               the aws-cli pipeline's plain ZIP
#   BENCH_S3RVER_DATA=auto|disk|DIR  where s3rver keeps its objects. auto (the
#                               default): a tmpfs (/dev/shm) when it has room
#                               (2 GiB, 12 GiB with 2g), else the temp dir on
#                               disk. On ext4, creating files right after
#                               deleting tens of thousands (an archive's delete,
#                               then a restore) makes the kernel's inode
#                               allocator the server's bottleneck, by a varying
#                               amount (measured: a 10k restore took 12-27 s on
#                               disk, 9-10 s on tmpfs); the table says which
#   BENCH_KEEP=1                keep the temp dir (logs, configs) at exit
#   BENCH_S3RVER_LOG=1          s3rver logs requests and errors (services/s3.log)
#   BENCH_TMPDIR=DIR            where the temp dir goes (default $TMPDIR or
#                               /tmp); needs ~16 GiB free for the 2g workload
#   WK_BIN=PATH                 binary to measure (default build/rel/sila-archiver,
#                               copied at start so a rebuild can't change it)
#
# How each number is measured (wall clock, bash $EPOCHREALTIME):
#   sila       `sila-archiver enqueue archive|unarchive <id> --wait` against a
#              fresh worker with default settings (one per workload)
#   aws-cli    archive: aws s3 cp --recursive to disk + zip -r + aws s3 cp;
#              unarchive: aws s3 cp (the archive) + unzip + aws s3 cp --recursive
#   rclone     archive: rclone copy --fast-list --transfers 16 + zip -r +
#              rclone copyto; unarchive: rclone copyto + unzip + rclone copy
#   lower      archive: curl --parallel --parallel-max 32 GET of every object +
#              one curl -T PUT of an archive-sized object (the aws-cli zip);
#              unarchive: one GET of the archive + a parallel PUT of every object;
#              and, noted under the table, the ready point's own bound: a
#              parallel PUT of just the files it waits for (metadata, ops/)
# With each time, the S3 server's CPU seconds (user + system of its process,
# from /proc/<pid>/stat) during that step: how much work each way of doing
# the job asks of the server, and how busy it kept it.
# The alternatives write under bench-alt/ and restore/ (never under active/ or
# archived/), read the same space, and unarchive from sila-archiver's archive.
# Setup (generate, upload) and checks (object counts) are not timed.
#
# Everything started here (redis-server, the S3 server, workers) is recorded
# by PID (scripts/services.sh) and stopped at exit.
set -euo pipefail

# The harness runs from a copy of bench/ (so that an edit of the checkout
# during a run, or a branch switch, cannot change the script bash is reading);
# BENCH_FROZEN is that copy, removed at exit.
if [ -z "${BENCH_FROZEN:-}" ]; then
    _src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    _frozen=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/sila-bench-src.XXXXXX")
    cp -a "$_src/." "$_frozen/"
    BENCH_FROZEN=$_frozen BENCH_ROOT=$(dirname "$_src") exec bash "$_frozen/run.sh" "$@"
fi
root=${BENCH_ROOT:?}
bench=${BENCH_FROZEN:?}
# shellcheck source=scripts/services.sh
source "$root/scripts/services.sh"
# shellcheck source=bench/s3rver.sh
source "$bench/s3rver.sh"
# shellcheck source=bench/opens.sh
source "$bench/opens.sh"

BUCKET=sila-bench
WORKLOADS=${BENCH_WORKLOADS:-1k,10k,2g,opens}
[ "${BENCH_QUICK:-0}" = 1 ] && WORKLOADS=${BENCH_WORKLOADS:-quick,opens}
LATENCY_MS=${BENCH_LATENCY_MS:-20}
case ${BENCH_PROFILE:-both} in
both) PROFILES=(plain latency) ;;
plain | latency) PROFILES=("$BENCH_PROFILE") ;;
*) echo "bench: BENCH_PROFILE must be both, plain or latency" >&2; exit 1 ;;
esac
SERVER=${BENCH_SERVER:-auto}
CACHE=${BENCH_CACHE:-${HOME:-/root}/.cache/sila-bench}
SRC_BIN=${WK_BIN:-$root/build/rel/sila-archiver}
PAR=32          # curl lower bound concurrency
RSS_MAX_MIB=64  # issue 6: peak RSS of the worker with default settings

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}

# --- 1. what is needed -------------------------------------------------------

# Debian packages for the commands that are missing (build deps, redis-server,
# moto and boto3 come from scripts/install-deps.sh).
install_missing() {
    local -a pkgs=()
    command -v aws >/dev/null 2>&1 || pkgs+=(awscli)
    command -v rclone >/dev/null 2>&1 || pkgs+=(rclone)
    command -v zip >/dev/null 2>&1 || pkgs+=(zip)
    command -v unzip >/dev/null 2>&1 || pkgs+=(unzip)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    if [ "$SERVER" != moto ]; then
        command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
        command -v npm >/dev/null 2>&1 || pkgs+=(npm)
    fi
    if [ "${#pkgs[@]}" -gt 0 ]; then
        say "installing ${pkgs[*]}"
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
            die "apt-get update failed"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 ||
            die "apt-get install ${pkgs[*]} failed"
    fi
    "$root/scripts/install-deps.sh" >&2 || die "scripts/install-deps.sh failed"
    # curl learned --aws-sigv4 in 7.75 and --parallel in 7.66.
    curl --help all 2>/dev/null | grep -q -- --aws-sigv4 ||
        die "curl $(curl --version | head -n1 | cut -d' ' -f2) has no --aws-sigv4 (needs >= 7.75)"
}

install_missing
if [ ! -x "$SRC_BIN" ]; then
    say "$SRC_BIN missing: make -C $root"
    make -C "$root" >&2 || die "build failed"
fi

tmp=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/sila-bench.XXXXXX")
svc=$tmp/services
mkdir -p "$svc" "$tmp/bin"
RESULTS=$tmp/results.tsv
NOTES=$tmp/notes.txt
: >"$RESULTS"
: >"$NOTES"
failures=0

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    svc_stop "$svc" worker
    [ "${server_kind:-}" != s3rver ] || bench_s3rver_stop "$svc"
    svc_stop_all "$svc"
    [ -z "${s3_data_own:-}" ] || rm -rf "$s3_data_own" # (outside $tmp)
    case $bench in */sila-bench-src.*) rm -rf "$bench" ;; esac
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "kept $tmp"
    elif [ "$rc" -ne 0 ]; then
        # Keep the logs and configs for a look, not gigabytes of data.
        rm -rf "$svc/s3rver-data" "$tmp"/w-*/space "$tmp"/w-*/u-* \
            "$tmp"/w-*/*-dl "$tmp"/w-*/*.zip
        say "kept $tmp (logs)"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The binary under test, frozen: another build may replace the original.
BIN=$tmp/bin/sila-archiver
cp "$SRC_BIN" "$BIN"
bin_rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD -- 2>/dev/null || bin_rev="$bin_rev+dirty-tree"
bin_rev="$bin_rev, binary sha256 $(sha256sum "$BIN" | cut -c1-12)"

# The 2g workload holds ~14 GiB at its peak (space, downloads, zips, and the
# server's copies of them); warn early rather than fail half-way.
case ",$WORKLOADS," in
*,2g,* | *,opens,*)
    avail_gib=$(df -Pk "$tmp" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
    [ "$avail_gib" -ge 16 ] ||
        say "warning: only $avail_gib GiB free under $tmp; the 2g workload needs ~16 GiB (BENCH_TMPDIR)"
    ;;
esac

# --- 2. servers --------------------------------------------------------------

export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
server_desc=
server_kind=
start_moto() {
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    svc_start_s3 "$svc" || return 1
    svc_make_bucket "$BUCKET" || return 1
    server_kind=moto
    server_desc="moto_server $(python3 -c 'import moto; print(moto.__version__)') (Python, single-threaded)"
}
s3_data_own=
# s3rver_data: the directory for s3rver's objects (BENCH_S3RVER_DATA), and
# s3_data_desc saying where it is.
s3rver_data() {
    local want=${BENCH_S3RVER_DATA:-auto} need=2 free
    case ",$WORKLOADS," in *,2g,* | *,opens,*) need=12 ;; esac
    if [ "$want" = auto ]; then
        want=disk
        if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
            free=$(df -Pk /dev/shm | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
            [ "$free" -lt "$need" ] || want=/dev/shm
        fi
    fi
    if [ "$want" = disk ]; then
        s3_data=$svc/s3rver-data
    else
        s3_data=$(mktemp -d "$want/sila-bench-s3.XXXXXX") || return 1
        s3_data_own=$s3_data
    fi
    local fs
    fs=$(stat -f -c %T "$(dirname "$s3_data")")
    if [ "$fs" = tmpfs ]; then s3_data_desc="objects on tmpfs"; else s3_data_desc="objects on disk ($fs)"; fi
}
start_s3rver() {
    bench_s3rver_install "$CACHE" || return 1
    s3rver_data || return 1
    bench_s3rver_start "$svc" "$BUCKET" "$s3_data" || return 1
    server_kind=s3rver
    server_desc="s3rver $(bench_s3rver_version) (npm, Node.js $(node --version)), $s3_data_desc"
}

svc_start_redis "$svc" || die "could not start redis-server"
case $SERVER in
s3rver) start_s3rver || die "could not start s3rver" ;;
moto) start_moto || die "could not start moto_server" ;;
auto)
    if ! start_s3rver; then
        say "s3rver unavailable: falling back to moto_server (slower: timings are server-bound)"
        bench_s3rver_stop "$svc"
        start_moto || die "could not start moto_server either"
        server_desc="$server_desc [fallback: s3rver unavailable]"
    fi
    ;;
*) die "BENCH_SERVER must be auto, s3rver or moto" ;;
esac
E_DIRECT=$SVC_S3_ENDPOINT
E_LATENCY=
if [[ " ${PROFILES[*]} " = *" latency "* ]] ||
    { [[ ",$WORKLOADS," = *,opens,* ]] && [ "${BENCH_OPENS_PROFILE:-plain}" = latency ]; }; then
    _svc_start s3lat http "$svc" 15 node "$bench/latency_proxy.js" \
        --upstream "$E_DIRECT" --port @PORT@ --delay-ms "$LATENCY_MS" ||
        die "could not start bench/latency_proxy.js"
    # shellcheck disable=SC2154 # _svc_port is set by _svc_start
    E_LATENCY=http://127.0.0.1:$_svc_port
    say "latency profile: $E_LATENCY hands each request to $E_DIRECT after $LATENCY_MS ms"
fi
E=$E_DIRECT
export AWS_ENDPOINT_URL_S3=$E
# The worker runs with default settings: no SILA_* tuning from the caller.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^SILA_' || true)
export SILA_STORE=s3://$BUCKET
export REDIS_URL=redis://127.0.0.1:$SVC_REDIS_PORT/0
settings="default settings"
if [ "${BENCH_ENCRYPT:-0}" = 1 ]; then
    (umask 077 && openssl rand -hex 32 >"$tmp/master.key")
    export SILA_ENCRYPTION_KEY_FILE=$tmp/master.key
    settings="default settings, client-side encryption"
fi
# rclone: an s3 remote named "bench" from the environment only.
export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_BENCH_TYPE=s3 \
    RCLONE_CONFIG_BENCH_PROVIDER=Other RCLONE_CONFIG_BENCH_ENDPOINT=$E \
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID \
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
    RCLONE_CONFIG_BENCH_REGION=$AWS_REGION RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
say "server: $server_desc at $E, redis at $REDIS_URL"

# use_profile plain|latency: the endpoint of every timed step (E), for the
# worker, aws-cli and rclone (environment) and curl (URLs built from $E).
PROFILE=plain
use_profile() {
    PROFILE=$1
    if [ "$1" = latency ]; then E=$E_LATENCY; else E=$E_DIRECT; fi
    export AWS_ENDPOINT_URL_S3=$E RCLONE_CONFIG_BENCH_ENDPOINT=$E
}
profile_label() {  # the profile as the table names it
    if [ "$1" = latency ]; then echo "${LATENCY_MS}ms"; else echo plain; fi
}

# --- 3. the tools, as an operator would call them -----------------------------

awsc() { aws --endpoint-url "$E" --only-show-errors "$@"; }
# AWS_CA_BUNDLE (if the environment sets one) makes rclone's S3 client refuse
# its own HTTP transport; it is irrelevant on plain http.
rcl() { env -u AWS_CA_BUNDLE rclone --log-level ERROR "$@"; }
curls3() {
    curl --silent --no-progress-meter --show-error --fail --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}
# (setup and checks, untimed, go straight to the server)
s3u() { AWS_ENDPOINT_URL_S3=$E_DIRECT python3 "$bench/s3util.py" "$@"; }
count() { s3u count "$BUCKET" "$1" | cut -d' ' -f1; }

# srv_cpu [NAME]: the S3 server's (or service NAME's) user + system CPU
# seconds so far (all its threads), "?" when unknown.
srv_cpu() {
    local pid
    pid=$(cat "$svc/${1:-s3}.pid" 2>/dev/null) || { echo "?"; return; }
    # (fields after the ")" that ends the command name: utime is the 12th)
    sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null |
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($12 + $13) / hz }' || echo "?"
}

# proxy_stats [reset]: "<requests>/<most in flight at once> (<the proxy's
# CPU seconds>)" since the last reset, from the latency proxy ("-" in the
# plain profile).
proxy_cpu0=0
proxy_stats() {
    if [ "$PROFILE" != latency ]; then echo -; return; fi
    local c
    c=$(srv_cpu s3lat)
    curl -s --max-time 5 "$E_LATENCY/__bench/stats${1:+?reset=1}" |
        python3 -c 'import json,sys
d = json.load(sys.stdin)
try:
    cpu = " (%.2f)" % (float(sys.argv[2]) - float(sys.argv[1]))
except ValueError:
    cpu = ""
print("%d/%d%s" % (d["requests"], d["maxInflight"], cpu))' "$proxy_cpu0" "$c" || echo "?"
    [ -z "${1:-}" ] || proxy_cpu0=$c
}

# timed VAR CMD...: run CMD, set VAR to its wall-clock seconds, or to FAIL,
# VAR_cpu to the S3 server's CPU seconds meanwhile ("?" if unknown) and
# VAR_req to the requests it made / kept in flight at once (latency profile).
timed() {
    local __var=$1 t0 t1 c0 c1
    shift
    proxy_stats reset >/dev/null # (in this shell: it sets proxy_cpu0)
    c0=$(srv_cpu)
    t0=$EPOCHREALTIME
    timed_t0=$t0
    if "$@"; then
        t1=$EPOCHREALTIME
        printf -v "$__var" '%s' "$(python3 -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1")"
    else
        printf -v "$__var" FAIL
        failures=$((failures + 1))
    fi
    c1=$(srv_cpu)
    printf -v "${__var}_cpu" '%s' "$(awk -v a="$c0" -v b="$c1" \
        'BEGIN { if (a == "?" || b == "?" || a == "" || b == "") print "?"; else printf "%.2f", b - a }')"
    printf -v "${__var}_req" '%s' "$(proxy_stats)"
}

# expect WHAT GOT WANT: a cheap correctness check of a timed step.
expect() {
    if [ "$2" != "$3" ]; then
        say "CHECK FAILED: $1: got $2, want $3"
        echo "check failed: $1: got $2, want $3" >>"$NOTES"
        failures=$((failures + 1))
        return 1
    fi
}

# curl_all CFG CODES ARGS...: run a parallel curl config; all must be 2xx.
curl_all() {
    local cfg=$1 codes=$2
    shift 2
    curls3 --parallel --parallel-max "$PAR" -w '%{http_code}\n' -K "$cfg" "$@" >"$codes"
}
codes_ok() { ! grep -qv '^2' "$1"; }

arch_aws() {  # SID DIR
    awsc s3 cp --recursive "s3://$BUCKET/active/$1/" "$2/aws-dl" &&
        (cd "$2/aws-dl" && zip -qr "$2/aws.zip" .) &&
        awsc s3 cp "$2/aws.zip" "s3://$BUCKET/bench-alt/aws/$1.zip"
}
arch_rclone() {  # SID DIR
    rcl copy --fast-list --transfers 16 "bench:$BUCKET/active/$1" "$2/rc-dl" &&
        (cd "$2/rc-dl" && zip -qr "$2/rclone.zip" .) &&
        rcl copyto "$2/rclone.zip" "bench:$BUCKET/bench-alt/rclone/$1.zip"
}
arch_lower() {  # SID DIR ZIP
    curl_all "$2/get.cfg" "$2/get.codes" &&
        curls3 -o /dev/null -T "$3" "$E/$BUCKET/bench-alt/curl/$1.zip"
}
unarch_aws() {  # SID DIR KEY
    awsc s3 cp "s3://$BUCKET/$3" "$2/u-aws.zip" &&
        unzip -q "$2/u-aws.zip" -d "$2/u-aws" &&
        awsc s3 cp --recursive "$2/u-aws" "s3://$BUCKET/restore/aws/$1/"
}
unarch_rclone() {  # SID DIR KEY
    rcl copyto "bench:$BUCKET/$3" "$2/u-rc.zip" &&
        unzip -q "$2/u-rc.zip" -d "$2/u-rc" &&
        rcl copy --fast-list --transfers 16 "$2/u-rc" "bench:$BUCKET/restore/rclone/$1"
}
unarch_lower() {  # SID DIR KEY
    curls3 -o /dev/null "$E/$BUCKET/$3" &&
        curl_all "$2/put.cfg" "$2/put.codes"
}

# --- 4. the worker -------------------------------------------------------------

worker_pid=
start_worker() {  # LOG
    "$BIN" worker </dev/null >>"$1" 2>&1 &
    worker_pid=$!
    svc_register_pid "$svc" worker "$worker_pid"
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q '"queue.connected"' "$1" 2>/dev/null && return 0
        kill -0 "$worker_pid" 2>/dev/null || break
        sleep 0.1
    done
    say "the worker did not connect; its log:"
    tail -n 20 "$1" >&2
    return 1
}
hwm_mib() {  # peak RSS of the worker since start or the last reset
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$worker_pid/status" 2>/dev/null || echo "?"
}
hwm_reset() {  # Linux: writing 5 to clear_refs resets VmHWM
    echo 5 >"/proc/$worker_pid/clear_refs" 2>/dev/null
}
# Worker log lines above info from line FROM on, grouped: printed and kept as
# notes for the table (s3rver's NotImplemented answers show up here).
worker_warnings() {  # LOG FROM WHAT
    local sum
    sum=$(python3 "$bench/logsum.py" "$1" "$2" "$3") || return 0
    [ -n "$sum" ] || return 0
    printf '%s\n' "$sum" >&2
    printf '%s\n' "$sum" >>"$NOTES"
}
# What an alternative printed on stderr (errors, retries: rclone retries a
# whole copy after a failed transfer, which shows in its time): kept as notes.
tool_output() {  # LOG WHAT
    [ -s "$1" ] || return 0
    local n
    n=$(wc -l <"$1" | tr -d ' ')
    {
        echo "$2 printed $n line(s) on stderr; first 5:"
        head -n 5 "$1" | cut -c1-300 | sed 's/^/    /'
    } | tee -a "$NOTES" >&2
}
job_s() { python3 "$bench/logsum.py" --job-seconds "$1" "$2"; }
# watch_start SID FILE: follow the space's channel (bench/opens.py watch) into
# FILE, recorded as service "watch"; returns once subscribed.
watch_start() {
    local i
    rm -f "$2"
    python3 "$bench/opens.py" watch --redis "$REDIS_URL" --space "$1" --out "$2" \
        >"$2.sub" 2>&1 </dev/null &
    svc_register_pid "$svc" watch "$!"
    for ((i = 0; i < 100; i++)); do
        grep -q subscribed "$2.sub" 2>/dev/null && return 0
        sleep 0.05
    done
    say "the space channel watcher did not subscribe: $(cat "$2.sub")"
    return 1
}
log_lines() { wc -l <"$1" | tr -d ' '; }

# --- 5. one workload -------------------------------------------------------------

gen_args() {
    local common=(--seed 6 --end-date 2026-06-30)
    case $1 in
    quick) echo "${common[@]}" --files 200 --total-mib 10 ;;
    1k) echo "${common[@]}" --files 1000 --total-mib 100 ;;
    10k) echo "${common[@]}" --files 10000 --total-mib 200 ;;
    2g) echo "${common[@]}" --files 5000 --total-mib 2048 --big-blobs 4 --big-size $((200 << 20)) ;;
    *) return 1 ;;
    esac
}

json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

upload_space() {  # NAME DIR SID FILES: the space under active/ (direct, untimed)
    python3 "$root/tests/upload_dir.py" "$2/space" "$BUCKET" "active/$3/" --jobs 16 \
        --endpoint "$E_DIRECT" >/dev/null || die "upload failed"
    expect "[$1] uploaded objects" "$(count "active/$3/")" "$4" || die "setup failed"
}

run_workload() {
    local name=$1 d=$tmp/w-$1 args summary sid files bytes p
    args=$(gen_args "$name") || die "unknown workload '$name' (quick, 1k, 10k, 2g)"
    mkdir -p "$d"
    say "[$name] generating a space: gen_space.py $args"
    # shellcheck disable=SC2086 # a list of options
    summary=$(python3 "$root/tests/gen_space.py" --out "$d/space" $args)
    sid=$(json_field "$summary" space_id)
    files=$(json_field "$summary" files)
    bytes=$(json_field "$summary" bytes)
    say "[$name] space $sid: $files files, $bytes bytes; uploading to active/$sid/"
    upload_space "$name" "$d" "$sid" "$files"
    for p in "${PROFILES[@]}"; do
        # (a failed restore of the previous profile left active/ short)
        [ "$(count "active/$sid/")" = "$files" ] || {
            s3u rm "$BUCKET" "active/$sid/"
            upload_space "$name" "$d" "$sid" "$files"
        }
        use_profile "$p"
        run_ops "$name" "$d" "$sid" "$files" "$bytes"
    done
    use_profile plain

    # What this workload left: nothing big on disk or on the server.
    s3u rm "$BUCKET" "active/$sid/"
    s3u rm "$BUCKET" "archived/$sid/"
    s3u rm "$BUCKET" "bench-alt/"
    rm -rf "$d/space"
}

# result_row NAME FILES BYTES OP: one row of $RESULTS from the t_* variables.
result_row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$1" "$2" "$3" "$4" "$t_sila" "$t_job" "$t_aws" "$t_rc" "$t_low" "$rss" \
        "$t_sila_cpu" "$t_aws_cpu" "$t_rc_cpu" "$t_low_cpu" "$(profile_label "$PROFILE")" \
        "$t_sila_req" "$t_aws_req" "$t_rc_req" "$t_low_req" "$t_ready" \
        "$job_ops" "${arch_size:--}" >>"$RESULTS"
}

# job_bill FILE WLOG SPACE: the bill of the job whose `enqueue --wait` output
# is FILE ("job <id> succeeded" then its result), as compact JSON
# {"requests": {op: n}, "requestRetries": n, "costUsd": x, "features": the
# S3 features the worker found (its log WLOG), "bigGetExtra": the ranged GETs
# beyond one per object that objects above SILA_GET_CHUNK (8 MiB) take,
# "bigPutExtra": the requests beyond one PUT that restoring them as multipart
# uploads of SILA_PART_SIZE (5 MiB) parts takes (from the files of SPACE)};
# "-" when there is none (issue 18; bench/report.py checks the compass).
job_bill() {
    python3 - "$1" "$2" "$3" <<'PY' 2>/dev/null || echo -
import json, math, os, re, sys
t = open(sys.argv[1]).read()
i = t.rfind(" succeeded\n")
r = json.loads(t[i + len(" succeeded\n"):]) if i >= 0 else {}
if "requests" not in r:
    print("-")
    sys.exit(0)
out = {k: r[k] for k in ("requests", "requestRetries", "costUsd") if k in r}
m = re.search(r'"event":"s3.features".*?"features":"([^"]*)"', open(sys.argv[2]).read())
out["features"] = m.group(1) if m else "?"
chunk, part = 8 << 20, 5 << 20
get_extra = put_extra = 0
for d, _, names in os.walk(sys.argv[3]):
    for n in names:
        size = os.path.getsize(os.path.join(d, n))
        if size > chunk:
            get_extra += math.ceil(size / chunk) - 1
            put_extra += math.ceil(size / part) + 1
out["bigGetExtra"], out["bigPutExtra"] = get_extra, put_extra
print(json.dumps(out, separators=(",", ":"), sort_keys=True))
PY
}

# rearchive NAME DIR SID FILES T_FIRST: issue 18's re-archive. The space
# sila-archiver just restored is touched as a short session would (s3util
# touch: 1 % of its files, ops logs and mutable blobs, spread over the
# space) and archived again; one row of $tmp/rearchive.txt against the first
# archive's T_FIRST seconds (target: at most half of it).
rearchive() {
    local name=$1 d=$2 sid=$3 files=$4 t_first=$5 t_re touched wlog row
    wlog=$d/worker-re-$PROFILE.log
    touched=$(s3u touch "$BUCKET" "active/$sid/" "$files") || {
        echo "[$name] re-archive: touching the space failed" >>"$NOTES"
        return 0
    }
    : >"$wlog"
    start_worker "$wlog" || die "worker start failed"
    say "[$name] re-archive after $touched (objects bytes) touched: sila-archiver"
    timed t_re "$BIN" enqueue archive "$sid" --wait >"$d/enqueue-rearchive.out" 2>&1
    # the space as run_ops leaves it (active, restored) and no record, so
    # that the next profile's first archive reads every object again
    if [ "$t_re" != FAIL ]; then
        "$BIN" enqueue unarchive "$sid" --urgent --wait >"$d/enqueue-re-unarchive.out" 2>&1 ||
            echo "[$name] restore after the re-archive failed: $(tail -n 1 "$d/enqueue-re-unarchive.out")" >>"$NOTES"
    fi
    svc_stop "$svc" worker
    s3u rm "$BUCKET" "metadata/$sid.restored.jsonl"
    if [ "$t_re" = FAIL ]; then
        echo "[$name] re-archive job failed: $(tail -n 1 "$d/enqueue-rearchive.out")" >>"$NOTES"
        return 0
    fi
    row=$(python3 - "$d/enqueue-rearchive.out" "$t_first" "$t_re" "$files" "${touched%% *}" <<'PY'
import json, sys
t = open(sys.argv[1]).read()
i = t.rfind(" succeeded\n")
r = json.loads(t[i + len(" succeeded\n"):])
first, re_s = float(sys.argv[2]), float(sys.argv[3])
ratio = re_s / first if first > 0 else 0
print("%s\t%s\t%.2f\t%.2f\t%.2f\t%s\t%s\t%.1f\t%s" % (
    sys.argv[4], sys.argv[5], first, re_s, ratio,
    r.get("requests", {}).get("GetObject", "?"), r.get("copiedFiles", "?"),
    r.get("bytesIn", 0) / 1048576.0, "yes" if ratio <= 0.5 else "NO"))
PY
) || row="?"
    printf '%s\t%s\n' "$name" "$row" >>"$tmp/rearchive.txt"
}

# run_ops NAME DIR SID FILES BYTES: archive and unarchive, each by sila-archiver
# and the three alternatives, in the current profile (two rows of $RESULTS).
run_ops() {
    local name d=$2 sid=$3 files=$4 bytes=$5 wlog
    name="$1 $(profile_label "$PROFILE")"
    local t_aws t_rc t_low t_sila t_job rss key size n from
    local t_aws_cpu t_rc_cpu t_low_cpu t_sila_cpu t_aws_req t_rc_req t_low_req t_sila_req
    local t_ready=- job_ops=- arch_size=-
    s3u curl-get "$E" "$BUCKET" "active/$sid/" "$d/space" "$d/get.cfg" >/dev/null
    s3u curl-put "$E" "$BUCKET" "restore/curl/$sid/" "$d/space" "$d/put.cfg" >/dev/null

    # Archive: the alternatives first (they leave active/ as it is), then sila.
    say "[$name] archive: aws-cli pipeline"
    timed t_aws arch_aws "$sid" "$d" 2>"$d/aws-archive.log"
    tool_output "$d/aws-archive.log" "[$name] aws-cli archive"
    [ "$t_aws" = FAIL ] || expect "[$name] aws-cli download" \
        "$(find "$d/aws-dl" -type f | wc -l)" "$files" || t_aws=FAIL
    rm -rf "$d/aws-dl"
    say "[$name] archive: rclone pipeline"
    timed t_rc arch_rclone "$sid" "$d" 2>"$d/rclone-archive.log"
    tool_output "$d/rclone-archive.log" "[$name] rclone archive"
    [ "$t_rc" = FAIL ] || expect "[$name] rclone download" \
        "$(find "$d/rc-dl" -type f | wc -l)" "$files" || t_rc=FAIL
    rm -rf "$d/rc-dl" "$d/rclone.zip"
    s3u rm "$BUCKET" "bench-alt/rclone/"
    say "[$name] archive: curl lower bound"
    if [ -f "$d/aws.zip" ]; then
        timed t_low arch_lower "$sid" "$d" "$d/aws.zip" 2>"$d/lower-archive.log"
        tool_output "$d/lower-archive.log" "[$name] curl archive"
        [ "$t_low" = FAIL ] || { codes_ok "$d/get.codes" &&
            expect "[$name] curl GETs" "$(wc -l <"$d/get.codes")" "$files"; } || t_low=FAIL
    else
        t_low=FAIL t_low_cpu="?" t_low_req="?"
    fi
    s3u rm "$BUCKET" "bench-alt/curl/"

    say "[$name] archive: sila-archiver"
    wlog=$d/worker-$PROFILE.log
    : >"$wlog"
    start_worker "$wlog" || die "worker start failed"
    hwm_reset || true
    from=$(($(log_lines "$wlog") + 1))
    timed t_sila "$BIN" enqueue archive "$sid" --wait >"$d/enqueue-archive.out" 2>&1
    rss=$(hwm_mib)
    worker_warnings "$wlog" "$from" "[$name] archive"
    key=
    if [ "$t_sila" = FAIL ]; then
        say "[$name] the archive job failed:"
        tail -n 5 "$d/enqueue-archive.out" >&2
        echo "[$name] archive job failed: $(tail -n 1 "$d/enqueue-archive.out")" >>"$NOTES"
    else
        key=$(s3u archive "$BUCKET" "$sid") || key=
        size=${key#* }
        key=${key%% *}
        [ -n "$key" ] || die "no manifest after a successful archive job"
        n=$(count "active/$sid/")
        expect "[$name] active objects left after archive" "$n" 0 || true
        say "[$name] archive $key: $size bytes (aws-cli zip: $(stat -c %s "$d/aws.zip" 2>/dev/null || echo ?))"
    fi
    t_job=$(job_s "$wlog" "$from")
    [ "$t_sila" = FAIL ] || job_ops=$(job_bill "$d/enqueue-archive.out" "$wlog" "$d/space")
    result_row "${name% *}" "$files" "$bytes" archive
    local t_first=$t_sila ua_ok=0
    job_ops=-
    [ -z "$key" ] || arch_size=$size

    # Unarchive: sila first (restores active/), then the alternatives from the
    # same archive (sila's; the aws-cli pipeline's if sila failed).
    t_sila=FAIL
    t_sila_cpu='?'
    t_sila_req='?'
    t_job=-
    rss='?'
    if [ -n "$key" ]; then
        say "[$name] unarchive: sila-archiver"
        hwm_reset || true
        from=$(($(log_lines "$wlog") + 1))
        watch_start "$sid" "$d/space-events.jsonl" || true
        timed t_sila "$BIN" enqueue unarchive "$sid" --wait >"$d/enqueue-unarchive.out" 2>&1
        rss=$(hwm_mib)
        sleep 0.2
        svc_stop "$svc" watch
        t_ready=$(python3 "$bench/opens.py" ready-after "$d/space-events.jsonl" "$timed_t0")
        t_job=$(job_s "$wlog" "$from")
        worker_warnings "$wlog" "$from" "[$name] unarchive"
        if [ "$t_sila" = FAIL ]; then
            say "[$name] the unarchive job failed:"
            tail -n 5 "$d/enqueue-unarchive.out" >&2
            echo "[$name] unarchive job failed: $(tail -n 1 "$d/enqueue-unarchive.out")" >>"$NOTES"
        else
            expect "[$name] objects restored by sila-archiver" "$(count "active/$sid/")" "$files" ||
                t_sila=FAIL
            [ "$t_sila" = FAIL ] || ua_ok=1
            job_ops=$(job_bill "$d/enqueue-unarchive.out" "$wlog" "$d/space")
        fi
    else
        key=bench-alt/aws/$sid.zip
    fi
    svc_stop "$svc" worker
    rm -f "$d/aws.zip"
    # a sealed archive is no ZIP for the alternatives: they take aws-cli's
    [ "${BENCH_ENCRYPT:-0}" != 1 ] || key=bench-alt/aws/$sid.zip

    say "[$name] unarchive: aws-cli pipeline"
    timed t_aws unarch_aws "$sid" "$d" "$key" 2>"$d/aws-unarchive.log"
    tool_output "$d/aws-unarchive.log" "[$name] aws-cli unarchive"
    [ "$t_aws" = FAIL ] || expect "[$name] aws-cli restore" \
        "$(count "restore/aws/$sid/")" "$files" || t_aws=FAIL
    rm -rf "$d/u-aws" "$d/u-aws.zip"
    s3u rm "$BUCKET" "restore/aws/$sid/"
    say "[$name] unarchive: rclone pipeline"
    timed t_rc unarch_rclone "$sid" "$d" "$key" 2>"$d/rclone-unarchive.log"
    tool_output "$d/rclone-unarchive.log" "[$name] rclone unarchive"
    [ "$t_rc" = FAIL ] || expect "[$name] rclone restore" \
        "$(count "restore/rclone/$sid/")" "$files" || t_rc=FAIL
    rm -rf "$d/u-rc" "$d/u-rc.zip"
    s3u rm "$BUCKET" "restore/rclone/$sid/"
    say "[$name] unarchive: curl lower bound"
    timed t_low unarch_lower "$sid" "$d" "$key" 2>"$d/lower-unarchive.log"
    tool_output "$d/lower-unarchive.log" "[$name] curl unarchive"
    [ "$t_low" = FAIL ] || { codes_ok "$d/put.codes" &&
        expect "[$name] curl PUTs" "$(count "restore/curl/$sid/")" "$files"; } || t_low=FAIL
    s3u rm "$BUCKET" "restore/curl/$sid/"
    if [ "$t_ready" != - ]; then
        # The ready point's own lower bound: a parallel PUT of just the
        # files it waits for (how fast this server can take them at all).
        local t_rlow n_ready
        say "[$name] unarchive: curl lower bound of the ready point"
        n_ready=$(s3u curl-put-ready "$E" "$BUCKET" "restore/curl-ready/$sid/" "$d/space" "$d/ready.cfg")
        timed t_rlow curl_all "$d/ready.cfg" "$d/ready.codes" 2>"$d/lower-ready.log"
        [ "$t_rlow" = FAIL ] || codes_ok "$d/ready.codes" || t_rlow=FAIL
        echo "[$name] ready point: sila open->ready $t_ready s; curl lower bound (PUT of the $n_ready files it waits for, metadata and ops/, $PAR in parallel, nothing else): $t_rlow s" >>"$NOTES"
        s3u rm "$BUCKET" "restore/curl-ready/$sid/"
    fi
    result_row "${name% *}" "$files" "$bytes" unarchive
    if [ "$ua_ok" = 1 ] && [ "$t_first" != FAIL ] && [ "${BENCH_ENCRYPT:-0}" != 1 ]; then
        rearchive "$name" "$d" "$sid" "$files" "$t_first"
    fi
}

IFS=, read -r -a wl <<<"$WORKLOADS"
for w in "${wl[@]}"; do
    [ "$w" = opens ] || gen_args "$w" >/dev/null || die "unknown workload '$w' (quick, 1k, 10k, 2g, opens)"
done
for w in "${wl[@]}"; do
    if [ "$w" = opens ]; then run_opens; else run_workload "$w"; fi
done

# --- 6. the table ----------------------------------------------------------------

report_rc=0
strict=()
[ "${BENCH_STRICT:-0}" != 1 ] || strict=(--strict)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
{
    python3 "$bench/report.py" "$RESULTS" \
        --server "$server_desc" \
        --machine "$(nproc) CPUs${cpu:+ ($cpu)}, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)" \
        --binary "sila-archiver $bin_rev, $settings" \
        --rss-max "$RSS_MAX_MIB" --par "$PAR" "${strict[@]}" || report_rc=$?
    if [ -s "$tmp/rearchive.txt" ]; then
        echo
        echo "Re-archive after a restore and a short session (issue 18: copies of unchanged entries, ranged GETs of the previous archive; target re-archive <= 1/2 first archive):"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' workload files touched "first s" "re-archive s" ratio GetObject copied "MiB read" "<=1/2"
        cat "$tmp/rearchive.txt"
    fi
    if [ -s "$tmp/opens.txt" ]; then
        echo
        cat "$tmp/opens.txt"
    fi
    if [ -s "$NOTES" ]; then
        echo
        echo "Notes:"
        cat "$NOTES"
    fi
} >"$tmp/table.txt"
echo
cat "$tmp/table.txt"
if [ -n "${BENCH_OUT:-}" ]; then
    cp "$tmp/table.txt" "$BENCH_OUT"
    say "table written to $BENCH_OUT"
fi
[ "$failures" -eq 0 ] || die "$failures step(s) failed (see the notes above)"
[ "${opens_missed:-0}" = 0 ] || report_rc=3
[ "$report_rc" -eq 0 ] || { say "targets missed (BENCH_STRICT=1)"; exit "$report_rc"; }
