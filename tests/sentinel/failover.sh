#!/bin/sh
# Sentinel failover smoke (issue 17, part rsent): master + replica + 3
# sentinels on loopback (free ports), `enqueue` through the sentinels, kill -9
# the master, wait for the promotion, `enqueue` again: the second job must
# land on the new master, which also holds the first (nothing lost).
# Every process is started and stopped here by PID. Exit 0 = pass.
set -eu
BIN=${BIN:-build/sila-archiver}
T=$(mktemp -d)
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$T"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
M=$(port); R=$(port)
redis-server --port "$M" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --dbfilename m.rdb --daemonize no >"$T/m.log" 2>&1 &
MP=$!; PIDS="$PIDS $MP"
redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --dbfilename r.rdb --replicaof 127.0.0.1 "$M" --daemonize no >"$T/r.log" 2>&1 &
PIDS="$PIDS $!"
SL=""
for i in 1 2 3; do
  P=$(port)
  printf 'port %s\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 %s 2\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n' "$P" "$M" >"$T/s$i.conf"
  redis-server "$T/s$i.conf" --sentinel >"$T/s$i.log" 2>&1 &
  PIDS="$PIDS $!"
  SL="${SL:+$SL,}127.0.0.1:$P"
  SP="${SP:-} $P"
  S1=${S1:-$P}
done
sleep 2
export SILA_STORE="file://$T/store" SILA_REDIS_SENTINELS="$SL" SILA_REDIS_MASTER=mymaster
mkdir -p "$T/store"
J1=$("$BIN" enqueue archive space-one)
[ "$(redis-cli -p "$M" XLEN sila:jobs)" = 1 ] || { echo "FAIL: first job not on master $M"; exit 1; }
# let the replica catch up, then kill the master
for i in $(seq 50); do [ "$(redis-cli -p "$R" XLEN sila:jobs)" = 1 ] && break; sleep 0.1; done
# a failover needs every sentinel to know the replica and the two others
# (hello messages every 2 s, the master's INFO every 10 s): wait for that
field() { redis-cli -p "$1" SENTINEL master mymaster | sed -n "/^$2\$/{n;p;}"; }
for i in $(seq 150); do
  ok=1
  for p in $SP; do
    [ "$(field "$p" num-slaves)" = 1 ] && [ "$(field "$p" num-other-sentinels)" = 2 ] || ok=0
  done
  [ $ok = 1 ] && break; sleep 0.2
done
[ $ok = 1 ] || { echo "FAIL: the sentinels never saw the replica and each other"; exit 1; }
kill -9 "$MP"
for i in $(seq 150); do
  A=$(redis-cli -p "$S1" SENTINEL get-master-addr-by-name mymaster | sed -n 2p)
  [ "$A" = "$R" ] && break; sleep 0.2
done
[ "$A" = "$R" ] || { echo "FAIL: no promotion ($A)"; exit 1; }
for i in $(seq 50); do
  [ "$(redis-cli -p "$R" ROLE | head -1)" = master ] && break; sleep 0.2
done
J2=$("$BIN" enqueue archive space-two)
N=$(redis-cli -p "$R" XLEN sila:jobs)
[ "$N" = 2 ] || { echo "FAIL: new master holds $N jobs, want 2"; exit 1; }
"$BIN" status "$J1" >/dev/null && "$BIN" status "$J2" >/dev/null || { echo "FAIL: status"; exit 1; }
echo "PASS sentinel failover: $J1 and $J2 on the promoted master 127.0.0.1:$R"
