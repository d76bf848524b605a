#!/bin/sh
# Sentinel failover while jobs run (issue 17): master + replica + 3 sentinels
# on loopback (free ports), a worker that finds the master through the
# sentinels, 4 archive jobs of 4 spaces in a file:// store, each job slowed
# at its start (failpoint job.started=sleep:3000), kill -9 of the master while the
# first job runs. Every job must still end succeeded, every space must be
# archived (manifest written, nothing left under active/), none lost.
# Every process is started and stopped here by PID. Exit 0 = pass.
set -eu
BIN=${BIN:-build/sila-archiver}
T=$(mktemp -d)
PIDS=""
WP=""
cleanup() {
  [ -n "$WP" ] && kill "$WP" 2>/dev/null || true
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  [ "${KEEP:-0}" = 1 ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- worker log (tail)"; tail -n 30 "$T/worker.log" 2>/dev/null || true; exit 1; }
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
M=$(port); R=$(port)
redis-server --port "$M" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --dbfilename m.rdb --daemonize no >"$T/m.log" 2>&1 &
MP=$!; PIDS="$PIDS $MP"
redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --dbfilename r.rdb --replicaof 127.0.0.1 "$M" --daemonize no >"$T/r.log" 2>&1 &
PIDS="$PIDS $!"
SL=""; SP=""
for i in 1 2 3; do
  P=$(port)
  printf 'port %s\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 %s 2\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n' "$P" "$M" >"$T/s$i.conf"
  redis-server "$T/s$i.conf" --sentinel >"$T/s$i.log" 2>&1 &
  PIDS="$PIDS $!"
  SL="${SL:+$SL,}127.0.0.1:$P"; SP="$SP $P"
done
S1=${SP# }; S1=${S1%% *}

# four small spaces in the store's active/ (the layout of SILA-FORMAT.md)
SPACES="fo-space-1 fo-space-2 fo-space-3 fo-space-4"
for s in $SPACES; do
  d="$T/store/active/$s"
  mkdir -p "$d/space-v1/ops/ab/cdef/2026/12/07"
  printf '# %s\n' "$s" >"$d/sila.md"
  printf '{"id":"%s","name":"failover test"}\n' "$s" >"$d/space-v1/space.json"
  printf '{"op":"set","k":"title","v":"%s"}\n' "$s" >"$d/space-v1/ops/ab/cdef/2026/12/07/peer1-m.jsonl"
done

# the sentinels must know the replica and each other before a failover works
field() { redis-cli -p "$1" SENTINEL master mymaster | sed -n "/^$2\$/{n;p;}"; }
ok=0
for i in $(seq 150); do
  ok=1
  for p in $SP; do
    [ "$(field "$p" num-slaves)" = 1 ] && [ "$(field "$p" num-other-sentinels)" = 2 ] || ok=0
  done
  [ $ok = 1 ] && break; sleep 0.2
done
[ $ok = 1 ] || fail "the sentinels never saw the replica and each other"

export SILA_STORE="file://$T/store" SILA_REDIS_SENTINELS="$SL" SILA_REDIS_MASTER=mymaster
SILA_FAILPOINTS="job.started=sleep:3000@1+" SILA_URGENT_SLOTS=0 \
  "$BIN" worker </dev/null >"$T/worker.log" 2>&1 &
WP=$!
JOBS=""
for s in $SPACES; do JOBS="$JOBS $("$BIN" enqueue archive "$s")"; done
# replicated before the kill (Redis replicates asynchronously: what the
# master acknowledged but never sent is lost by any failover, not ours)
for i in $(seq 100); do [ "$(redis-cli -p "$R" XLEN sila:jobs)" = 4 ] && break; sleep 0.1; done
[ "$(redis-cli -p "$R" XLEN sila:jobs)" = 4 ] || fail "the replica never held the 4 jobs"
# wait until the worker runs one of the jobs (each takes 3 s or more: the
# failpoint), then kill the master while it runs
running=""
for i in $(seq 300); do
  for j in $JOBS; do
    if "$BIN" status "$j" 2>/dev/null | grep -q '"state": *"running"'; then running=$j; break; fi
  done
  [ -n "$running" ] && break; sleep 0.1
done
[ -n "$running" ] || fail "no job ran within 30 s"
kill -9 "$MP"
A=""
for i in $(seq 150); do
  A=$(redis-cli -p "$S1" SENTINEL get-master-addr-by-name mymaster | sed -n 2p)
  [ "$A" = "$R" ] && break; sleep 0.2
done
[ "$A" = "$R" ] || fail "no promotion ($A)"
# every job ends succeeded (the worker follows the failover)
for j in $JOBS; do
  st=""
  for i in $(seq 600); do
    st=$("$BIN" status "$j" 2>/dev/null | sed -n 's/.*"state": *"\([a-z_]*\)".*/\1/p' | head -1)
    case $st in succeeded|failed|dead) break ;; esac
    sleep 0.2
  done
  [ "$st" = succeeded ] || fail "job $j ended '$st', want succeeded: $("$BIN" status "$j" 2>&1 | head -c 600)"
done
for s in $SPACES; do
  [ -f "$T/store/metadata/$s.json" ] || fail "no manifest for $s"
  grep -q '"state": *"archived"' "$T/store/metadata/$s.json" || fail "$s not archived: $(cat "$T/store/metadata/$s.json")"
  left=$(find "$T/store/active/$s" -type f 2>/dev/null | wc -l)
  [ "$left" = 0 ] || fail "$s: $left objects left under active/"
done
grep -q '"event":"redis.sentinel".*"port":'"$R" "$T/worker.log" || fail "the worker never found the new master"
echo "PASS sentinel failover with jobs running: 4 of 4 jobs succeeded, 4 spaces archived, master $M -> $R"
