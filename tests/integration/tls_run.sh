#!/bin/sh
# tls_run.sh: the worker over rediss:// against a TLS-only redis-server on a
# free loopback port (certs from tls_certs.sh): archive + unarchive succeed;
# a wrong CA is refused with a clear error; a required client cert works.
# Usage: tests/integration/tls_run.sh [path/to/sila-archiver]
set -eu
bin=${1:-build/rel/sila-archiver}
tmp=$(mktemp -d)
pid=
wpid=
cleanup() {
    [ -n "$wpid" ] && kill "$wpid" 2>/dev/null || true
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "tls_run.sh: FAIL: $*" >&2; exit 1; }
"$(dirname "$0")/tls_certs.sh" "$tmp/c"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
c=$tmp/c
redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 \
    --tls-cert-file "$c/server.crt" --tls-key-file "$c/server.key" \
    --tls-ca-cert-file "$c/ca.crt" --tls-auth-clients yes --save '' \
    --appendonly no --logfile "$tmp/redis.log" &
pid=$!
for i in $(seq 50); do
    redis-cli --tls --cacert "$c/ca.crt" --cert "$c/client.crt" \
        --key "$c/client.key" -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
export REDIS_URL="rediss://127.0.0.1:$port" SILA_STORE="file://$tmp/store"
export SILA_REDIS_CA_FILE="$c/ca.crt"
export SILA_REDIS_CERT_FILE="$c/client.crt" SILA_REDIS_KEY_FILE="$c/client.key"
id=0123456789abcdef0123456789abcdef
mkdir -p "$tmp/store/active/$id/d"
echo hello > "$tmp/store/active/$id/a.txt"
head -c 100000 /dev/urandom > "$tmp/store/active/$id/d/b.bin"
sum=$(sha256sum "$tmp/store/active/$id/d/b.bin" | cut -c1-64)

# wrong CA: refused, and says why
if SILA_REDIS_CA_FILE="$c/wrongca.crt" "$bin" stats >"$tmp/wrong.out" 2>&1; then
    fail "wrong CA accepted"
fi
grep -q "certificate verify failed" "$tmp/wrong.out" || fail "wrong CA: $(cat "$tmp/wrong.out")"
# no client cert while the server requires one: refused
if env -u SILA_REDIS_CERT_FILE -u SILA_REDIS_KEY_FILE "$bin" stats >"$tmp/nocert.out" 2>&1; then
    fail "no client cert accepted"
fi

"$bin" worker >"$tmp/worker.log" 2>&1 &
wpid=$!
timeout 60 "$bin" enqueue archive "$id" --wait >"$tmp/a.out" 2>&1 || fail "archive: $(cat "$tmp/a.out"; tail -5 "$tmp/worker.log")"
[ ! -e "$tmp/store/active/$id/a.txt" ] || fail "archive left active/"
ls "$tmp/store/archived/$id/" | grep -q . || fail "no archive"
timeout 60 "$bin" enqueue unarchive "$id" --urgent --wait >"$tmp/u.out" 2>&1 || fail "unarchive: $(cat "$tmp/u.out"; tail -5 "$tmp/worker.log")"
[ "$(cat "$tmp/store/active/$id/a.txt")" = hello ] || fail "unarchive: a.txt"
[ "$(sha256sum "$tmp/store/active/$id/d/b.bin" | cut -c1-64)" = "$sum" ] || fail "unarchive: b.bin"
kill "$wpid"; wait "$wpid" || fail "worker exit $?"
wpid=
echo "tls_run.sh: ok (archive + unarchive over rediss://, wrong CA and missing client cert refused)"
