#!/usr/bin/env bash
# A throw-away OpenStack Swift with the S3 API (s3api + tempauth) on free
# loopback ports, for tests: memcached, account, container and object
# servers (one device in the test's temp dir, rings built with
# Swift's RingBuilder) and the proxy. Debian's packages (swift-proxy,
# swift-account, swift-container, swift-object, python3-swift, memcached;
# scripts/install-deps.sh installs them); nothing under /etc/swift is read
# or written (tests/swift/swiftd.py, which also builds the rings). Every
# process is recorded with svc_register_pid (scripts/services.sh) and
# stopped by PID.
#
# As a library (source scripts/services.sh first, then this):
#   swift_start DIR SECRET   start everything under DIR/swift; exports
#                            SWIFT_S3_ENDPOINT (http://127.0.0.1:<port>)
#                            and SWIFT_ACCESS_KEY (sila:tester); SECRET is
#                            the S3 secret key (tempauth password)
#   swift_stop DIR           stop what swift_start started (svc_stop_all
#                            does it too)
# Functions print errors to stderr and return non-zero; they never exit.

SWIFT_WAIT_S=${SWIFT_WAIT_S:-60}
SWIFT_PY=${SWIFT_PY:-/usr/bin/python3}
SWIFT_LOG_LEVEL=${SWIFT_LOG_LEVEL:-WARNING}
SWIFT_NAMES=(swift-proxy swift-object swift-container swift-account memcached)

_swift_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_swift_err() { printf 'swift: %s\n' "$*" >&2; }

# _swift_launch DIR NAME CMD...: start CMD in the background, log in
# DIR/NAME.log, recorded as NAME; sets _swift_pid.
_swift_launch() {
    local dir=$1 name=$2
    shift 2
    "$@" </dev/null >>"$dir/$name.log" 2>&1 &
    _swift_pid=$!
    svc_register_pid "$dir" "$name" "$_swift_pid"
}

_swift_check_installed() {
    local c
    for c in memcached; do
        command -v "$c" >/dev/null 2>&1 ||
            { _swift_err "$c not found (run scripts/install-deps.sh)"; return 1; }
    done
    "$SWIFT_PY" -c 'import swift.common.middleware.s3api' 2>/dev/null ||
        { _swift_err "$SWIFT_PY cannot import swift's s3api (python3-swift; run scripts/install-deps.sh)"; return 1; }
}

# Distinct free ports: PORT_PROXY, PORT_ACCOUNT, ... in _swift_ports.
_swift_pick_ports() {
    local name p used=" "
    declare -gA _swift_ports=()
    for name in PROXY ACCOUNT CONTAINER OBJECT MEMCACHED; do
        for _ in 1 2 3 4 5; do
            p=$(svc_free_port) || return 1
            case $used in *" $p "*) continue ;; esac
            break
        done
        used="$used$p "
        _swift_ports[$name]=$p
    done
}

# _swift_render IN OUT: the template with @VAR@ replaced.
_swift_render() {
    local k
    local -a args=(-e "s|@DIR@|$_swift_dir|g" -e "s|@USER@|$(id -un)|g"
        -e "s|@SECRET@|$_swift_secret|g" -e "s|@SEED@|$_swift_seed|g"
        -e "s|@LOG_LEVEL@|$SWIFT_LOG_LEVEL|g")
    for k in "${!_swift_ports[@]}"; do
        args+=(-e "s|@PORT_$k@|${_swift_ports[$k]}|g")
    done
    sed "${args[@]}" "$1" >"$2" || return 1
    ! grep -q '@[A-Z_]*@' "$2" || { _swift_err "unrendered variable in $2"; return 1; }
}

_swift_rings() {
    local kind
    "$SWIFT_PY" "$_swift_here/swiftd.py" "$_swift_dir" rings \
        "${_swift_ports[ACCOUNT]}" "${_swift_ports[CONTAINER]}" \
        "${_swift_ports[OBJECT]}" || { _swift_err "building the rings failed"; return 1; }
    for kind in account container object; do
        [ -s "$_swift_dir/$kind.ring.gz" ] || { _swift_err "no $kind.ring.gz"; return 1; }
    done
}

# One attempt on fresh ports; the caller stops what is left on failure.
_swift_try() {
    local dir=$1 kind rc name
    local -A pids=()
    _swift_pick_ports || { _swift_err "cannot get free ports"; return 1; }
    rm -rf "$_swift_dir" && mkdir -p "$_swift_dir/srv/d1" || return 1
    _swift_render "$_swift_here/swift.conf.in" "$_swift_dir/swift.conf" || return 1
    for kind in proxy account container object; do
        _swift_render "$_swift_here/$kind-server.conf.in" \
            "$_swift_dir/$kind-server.conf" || return 1
    done
    _swift_rings || return 1

    local -a mc=(memcached -l 127.0.0.1 -p "${_swift_ports[MEMCACHED]}" -U 0 -m 64 -t 1)
    [ "$(id -u)" -ne 0 ] || mc+=(-u "$(id -un)")
    _swift_launch "$dir" memcached "${mc[@]}"
    pids[memcached]=$_swift_pid
    # the storage servers start side by side (each takes a few seconds)
    for kind in account container object; do
        _swift_launch "$dir" "swift-$kind" "$SWIFT_PY" "$_swift_here/swiftd.py" \
            "$_swift_dir" "$kind-server" "$_swift_dir/$kind-server.conf"
        pids[swift-$kind]=$_swift_pid
    done
    rc=0
    _svc_wait memcached "${pids[memcached]}" "${_swift_ports[MEMCACHED]}" 10 || rc=$?
    [ "$rc" -eq 0 ] || { _swift_err "memcached did not come up (rc $rc), see $dir/memcached.log"; return 1; }
    for kind in account container object; do
        rc=0
        _svc_wait http "${pids[swift-$kind]}" "${_swift_ports[${kind^^}]}" "$SWIFT_WAIT_S" || rc=$?
        if [ "$rc" -ne 0 ]; then
            _swift_err "swift $kind server did not come up (rc $rc), last lines of $dir/swift-$kind.log:"
            tail -n 15 "$dir/swift-$kind.log" >&2
            return 1
        fi
    done
    _swift_launch "$dir" swift-proxy "$SWIFT_PY" "$_swift_here/swiftd.py" \
        "$_swift_dir" proxy-server "$_swift_dir/proxy-server.conf"
    rc=0
    _svc_wait http "$_swift_pid" "${_swift_ports[PROXY]}" "$SWIFT_WAIT_S" || rc=$?
    if [ "$rc" -ne 0 ]; then
        _swift_err "swift proxy did not come up (rc $rc), last lines of $dir/swift-proxy.log:"
        tail -n 15 "$dir/swift-proxy.log" >&2
        return 1
    fi
}

swift_stop() {
    local dir=${1:?swift_stop DIR} name
    for name in "${SWIFT_NAMES[@]}"; do
        svc_stop "$dir" "$name"
    done
}

swift_start() {
    local dir=${1:?swift_start DIR SECRET} try
    _swift_secret=${2:?swift_start DIR SECRET}
    case $_swift_secret in *[!A-Za-z0-9_.-]*)
        _swift_err "the secret may hold only letters, digits, _ . -"; return 1 ;;
    esac
    _swift_check_installed || return 1
    _swift_dir="$dir/swift"
    _swift_seed=$$-$RANDOM
    _svc_add_no_proxy
    for try in 1 2; do
        if _swift_try "$dir"; then
            export SWIFT_S3_ENDPOINT="http://127.0.0.1:${_swift_ports[PROXY]}"
            export SWIFT_ACCESS_KEY="sila:tester"
            return 0
        fi
        swift_stop "$dir"
        _swift_err "start failed (try $try)"
    done
    return 1
}
