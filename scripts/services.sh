#!/usr/bin/env bash
# Throw-away Redis and S3 (moto) servers on free loopback ports, for the
# integration tests and the demo. Never touches a system Redis, never kills by
# name: every process started here is recorded in DIR/<name>.pid (plus
# DIR/<name>.start, its kernel start time, so a recycled PID is never killed).
#
# As a library (source it):
#   svc_free_port                 print a port the kernel says is free
#   svc_start_redis DIR           start redis-server; exports SVC_REDIS_PORT
#   svc_start_s3 DIR              start moto; exports SVC_S3_ENDPOINT (and test
#                                 AWS_* credentials when unset)
#   svc_make_bucket NAME          create bucket NAME at SVC_S3_ENDPOINT
#   svc_register_pid DIR NAME PID record another process for svc_stop_all
#   svc_spawn_group DIR NAME CMD... start CMD in its own process group, recorded
#                                 so svc_stop_all stops the group; sets
#                                 SVC_SPAWNED_PID
#   svc_stop DIR NAME             stop one recorded process (or group)
#   svc_stop_all DIR              TERM every recorded process, KILL after 5 s
# Callers do:  trap 'svc_stop_all "$dir"' EXIT
# Functions print errors to stderr and return non-zero; they never exit.
#
# As a command:
#   services.sh start DIR         start both; prints "export VAR=..." lines
#   services.sh stop DIR          stop everything recorded in DIR
#   services.sh bucket NAME       create a bucket (needs SVC_S3_ENDPOINT)
#   services.sh port              print a free port

SVC_WAIT_REDIS_S=${SVC_WAIT_REDIS_S:-10}
SVC_WAIT_S3_S=${SVC_WAIT_S3_S:-30}
SVC_STOP_GRACE_S=${SVC_STOP_GRACE_S:-5}

_svc_err() { printf 'services: %s\n' "$*" >&2; }

svc_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Kernel start time of PID (field 22 of /proc/PID/stat), empty if gone.
_svc_starttime() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    # After "comm)", field 3 is the state; start time is field 22 overall.
    # shellcheck disable=SC2086 # split the fields on purpose
    set -- $stat
    printf '%s' "${20}"
}

svc_register_pid() {
    local dir=$1 name=$2 pid=$3 group=${4:-}
    printf '%s\n' "$pid" >"$dir/$name.pid"
    _svc_starttime "$pid" >"$dir/$name.start"
    if [ "$group" = group ]; then
        : >"$dir/$name.group"
    else
        rm -f "$dir/$name.group"
    fi
}

# svc_spawn_group DIR NAME CMD...: run CMD in the background as the leader of
# a process group of its own, recorded so that svc_stop_all signals the whole
# group (CMD's children too). Sets SVC_SPAWNED_PID.
svc_spawn_group() {
    local dir=$1 name=$2 had_m=0
    shift 2
    case $- in *m*) had_m=1 ;; esac
    set -m
    "$@" &
    SVC_SPAWNED_PID=$!
    [ "$had_m" = 1 ] || set +m
    svc_register_pid "$dir" "$name" "$SVC_SPAWNED_PID" group
}

# _svc_wait KIND PID PORT TIMEOUT: wait until PID answers on 127.0.0.1:PORT
# (KIND redis: PING -> +PONG; KIND memcached: version -> VERSION; KIND
# http: any HTTP response) and owns the
# listening socket. Exit 0 ready, 2 PID died, 3 timeout, 4 port owned by
# another process.
_svc_wait() {
    python3 - "$@" <<'PY'
import os, socket, sys, time

kind, pid, port, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def answers():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            if kind == "redis":
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
            if kind == "memcached":
                s.sendall(b"version\r\n")
                return s.recv(16).startswith(b"VERSION")
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/")
    except OSError:
        return False

def listen_inodes():
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        found.add(cols[9])
        except OSError:
            pass
    return found

def owned():
    inodes = listen_inodes()
    if not inodes:
        return True  # no /proc/net: fall back to "alive and answering"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False

deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    if not alive():
        sys.exit(2)
    if answers():
        if owned() and alive():
            sys.exit(0)
        time.sleep(0.3)  # someone else's server, or ours still binding
        if not alive():
            sys.exit(2)
        if not owned():
            sys.exit(4)
        sys.exit(0)
    time.sleep(0.05)
sys.exit(3)
PY
}

# _svc_stop_one DIR NAME: stop the process recorded as DIR/NAME.pid.
_svc_stop_one() {
    local dir=$1 name=$2 pid start now i target
    pid=$(cat "$dir/$name.pid" 2>/dev/null) || return 0
    start=$(cat "$dir/$name.start" 2>/dev/null || true)
    target=$pid
    [ ! -e "$dir/$name.group" ] || target=-$pid
    rm -f "$dir/$name.pid" "$dir/$name.start" "$dir/$name.group"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    now=$(_svc_starttime "$pid")
    if [ -z "$now" ] || [ "$(_svc_state "$pid")" = Z ]; then
        # The leader is gone; what is left of its group gets no grace.
        [ "$target" = "$pid" ] || kill -KILL -- "$target" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    # The PID now belongs to some other process.
    [ -z "$start" ] || [ "$start" = "$now" ] || return 0
    kill -TERM -- "$target" 2>/dev/null || true
    for ((i = 0; i < SVC_STOP_GRACE_S * 10; i++)); do
        now=$(_svc_starttime "$pid")
        if [ -z "$now" ] || [ "$(_svc_state "$pid")" = Z ]; then
            break
        fi
        sleep 0.1
    done
    if [ -n "$(_svc_starttime "$pid")" ] && [ "$(_svc_state "$pid")" != Z ]; then
        _svc_err "$name (pid $pid) ignored TERM for ${SVC_STOP_GRACE_S}s; sending KILL"
        kill -KILL -- "$target" 2>/dev/null || true
    elif [ "$target" != "$pid" ]; then
        kill -KILL -- "$target" 2>/dev/null || true  # children that outlived it
    fi
    # Reaps it when it is our child; harmless otherwise.
    wait "$pid" 2>/dev/null || true
}

_svc_state() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    printf '%s' "${stat%% *}"
}

svc_stop() {
    _svc_stop_one "${1:?svc_stop DIR NAME}" "${2:?svc_stop DIR NAME}"
}

svc_stop_all() {
    local dir=${1:?svc_stop_all DIR} f name
    [ -d "$dir" ] || return 0
    # Workers and clients first, the servers they talk to last.
    for f in "$dir"/*.pid; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .pid)
        case $name in redis | s3) continue ;; esac
        _svc_stop_one "$dir" "$name"
    done
    _svc_stop_one "$dir" s3
    _svc_stop_one "$dir" redis
    return 0
}

# _svc_start NAME KIND DIR WAIT_S CMD...: start CMD (with @PORT@ replaced by a
# free port) in the background, up to 3 tries in case another process takes
# the port between our probe and the server's bind. Sets _svc_port.
_svc_start() {
    local name=$1 kind=$2 dir=$3 wait_s=$4 try port pid rc a
    shift 4
    local -a cmd
    for try in 1 2 3; do
        port=$(svc_free_port) || { _svc_err "cannot get a free port (python3?)"; return 1; }
        cmd=()
        for a in "$@"; do cmd+=("${a//@PORT@/$port}"); done
        "${cmd[@]}" </dev/null >>"$dir/$name.log" 2>&1 &
        pid=$!
        svc_register_pid "$dir" "$name" "$pid"
        rc=0
        _svc_wait "$kind" "$pid" "$port" "$wait_s" || rc=$?
        if [ "$rc" -eq 0 ]; then
            _svc_port=$port
            return 0
        fi
        _svc_stop_one "$dir" "$name"
        case $rc in
        2 | 4) _svc_err "$name did not come up on port $port (try $try), see $dir/$name.log" ;;
        3)
            _svc_err "$name did not answer on port $port within ${wait_s}s, see $dir/$name.log"
            break
            ;;
        *)
            _svc_err "$name: readiness check failed ($rc)"
            break
            ;;
        esac
    done
    if [ -s "$dir/$name.log" ]; then
        _svc_err "last lines of $dir/$name.log:"
        tail -n 15 "$dir/$name.log" >&2
    fi
    return 1
}

svc_start_redis() {
    local dir=${1:?svc_start_redis DIR}
    mkdir -p "$dir" || return 1
    command -v redis-server >/dev/null 2>&1 ||
        { _svc_err "redis-server not found (run scripts/install-deps.sh)"; return 1; }
    _svc_start redis redis "$dir" "$SVC_WAIT_REDIS_S" \
        redis-server --port @PORT@ --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$dir" --daemonize no || return 1
    export SVC_REDIS_PORT=$_svc_port
}

svc_start_s3() {
    local dir=${1:?svc_start_s3 DIR}
    local -a moto
    mkdir -p "$dir" || return 1
    if command -v moto_server >/dev/null 2>&1; then
        moto=(moto_server)
    elif python3 -c 'import moto.server' >/dev/null 2>&1; then
        moto=(python3 -m moto.server)
    else
        _svc_err "moto_server not found (run scripts/install-deps.sh)"
        return 1
    fi
    _svc_add_no_proxy
    _svc_start s3 http "$dir" "$SVC_WAIT_S3_S" "${moto[@]}" -H 127.0.0.1 -p @PORT@ || return 1
    export SVC_S3_ENDPOINT=http://127.0.0.1:$_svc_port
    export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
    export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
    export AWS_REGION=${AWS_REGION:-us-east-1}
    export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-$AWS_REGION}
}

# A proxy set in the environment must not see loopback traffic.
_svc_add_no_proxy() {
    local v
    for v in NO_PROXY no_proxy; do
        case ",${!v:-}," in
        *,127.0.0.1,*) ;;
        *) export "$v=${!v:+${!v},}127.0.0.1,localhost" ;;
        esac
    done
}

svc_make_bucket() {
    local name=${1:?svc_make_bucket NAME}
    [ -n "${SVC_S3_ENDPOINT:-}" ] || { _svc_err "SVC_S3_ENDPOINT is not set"; return 1; }
    python3 - "$SVC_S3_ENDPOINT" "$name" <<'PY'
import sys
import boto3

endpoint, name = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=__import__("os").environ.get("AWS_ACCESS_KEY_ID", "test"),
                  aws_secret_access_key=__import__("os").environ.get("AWS_SECRET_ACCESS_KEY", "test"))
try:
    s3.create_bucket(Bucket=name)
except Exception as e:  # noqa: BLE001 - report any failure plainly
    sys.exit(f"services: cannot create bucket {name!r} at {endpoint}: {e}")
PY
}

_svc_main() {
    set -euo pipefail
    local sub=${1:-}
    case $sub in
    start)
        local dir=${2:?usage: services.sh start DIR}
        svc_start_redis "$dir" || { svc_stop_all "$dir"; exit 1; }
        svc_start_s3 "$dir" || { svc_stop_all "$dir"; exit 1; }
        printf 'export SVC_REDIS_PORT=%s\n' "$SVC_REDIS_PORT"
        printf 'export SVC_S3_ENDPOINT=%s\n' "$SVC_S3_ENDPOINT"
        printf 'export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=%s AWS_DEFAULT_REGION=%s\n' \
            "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_REGION" "$AWS_DEFAULT_REGION"
        ;;
    stop) svc_stop_all "${2:?usage: services.sh stop DIR}" ;;
    bucket) svc_make_bucket "${2:?usage: services.sh bucket NAME}" ;;
    port) svc_free_port ;;
    *)
        echo "usage: services.sh start DIR | stop DIR | bucket NAME | port" >&2
        exit 2
        ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    _svc_main "$@"
fi
