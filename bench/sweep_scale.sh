#!/usr/bin/env bash
# The sweep at scale (issue 18): LIST requests and seconds per sweep run on a
# generated file:// store of SWEEP_SPACES spaces (default 100,000; 1 to 3 empty
# files each), with and without the activity index (SWEEP_INDEXED_PCT percent
# of the spaces written a minute ago, default 90), whole passes and runs cut
# by a budget (--max-spaces SWEEP_RUN_SPACES, default 10,000), and the
# extrapolation to 1,000,000 spaces. Starts its own redis-server on a free
# loopback port (scripts/services.sh) and removes everything it made.
#
#   bash bench/sweep_scale.sh [path/to/sila-archiver]    (default build/rel)
#   SWEEP_SPACES=20000 bash bench/sweep_scale.sh         a quicker run
#   SWEEP_LIST_MS=30 ...   the latency of one S3 LIST for the S3 column
#
# Prints a Markdown table (README, "The sweep at a million spaces").
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/services.sh
source "$root/scripts/services.sh"

BIN=${1:-$root/build/rel/sila-archiver}
N=${SWEEP_SPACES:-100000}
PCT=${SWEEP_INDEXED_PCT:-90}
RUN_SPACES=${SWEEP_RUN_SPACES:-10000}
LIST_MS=${SWEEP_LIST_MS:-30}
[ -x "$BIN" ] || { echo "sweep_scale: $BIN not found (make)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sila-sweep-scale.XXXXXX")
svc="$tmp/services"
cleanup() {
    svc_stop_all "$svc"
    rm -rf "$tmp"
}
trap cleanup EXIT
svc_start_redis "$svc" >/dev/null
store="$tmp/store"
results="$tmp/results.jsonl"
: >"$results"

# The spaces: active/spNNNNNNN/ with sila.md and up to two ops files, empty,
# written now (so the policy keeps them all: a run enqueues nothing and its
# output is the summary line; the work is the listing).
t0=$(date +%s.%N)
python3 - "$store" "$N" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
act = os.path.join(root, "active")
os.makedirs(act)
for i in range(n):
    d = os.path.join(act, "sp%07d" % i)
    os.mkdir(d)
    for name in ("sila.md", "ops-1.jsonl", "ops-2.jsonl")[: 1 + i % 3]:
        open(os.path.join(d, name), "wb").close()
EOF
t1=$(date +%s.%N)
echo "sweep_scale: $N spaces generated in $(python3 -c "print(round($t1-$t0,1))") s" >&2

# One sweep; its summary line goes to $results with the scenario's label.
sweep() { # label prefix args...
    local label=$1 prefix=$2
    shift 2
    local out="$tmp/out" t_start t_end
    t_start=$(date +%s.%N)
    env SILA_STORE="file://$store" \
        REDIS_URL="redis://127.0.0.1:$SVC_REDIS_PORT/0" \
        SILA_KEY_PREFIX="$prefix" \
        "$BIN" sweep "$@" >"$out" 2>"$tmp/log"
    t_end=$(date +%s.%N)
    python3 - "$label" "$t_start" "$t_end" "$out" >>"$results" <<'EOF'
import json, sys
label, t0, t1, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = [json.loads(l) for l in open(out) if '"summary":true' in l][-1]
s["label"] = label
s["wall"] = t1 - t0
print(json.dumps(s))
EOF
}

# PCT % of the spaces in the activity index, written a minute ago.
index() { # prefix
    redis-cli -p "$SVC_REDIS_PORT" EVAL "
        local t = tonumber(ARGV[1]) - 60
        for i = 0, tonumber(ARGV[2]) - 1 do
          if i % 100 < tonumber(ARGV[3]) then
            redis.call('ZADD', KEYS[1], t, string.format('sp%07d', i))
          end
        end
        return redis.call('ZCARD', KEYS[1])" 1 "${1}activity" \
        "$(date +%s)" "$N" "$PCT" >/dev/null
}

# Whole passes (no budget), without and with the index.
sweep "pass, no index" "bench:a:" --time-budget 0
index "bench:b:"
sweep "pass, index ${PCT}%" "bench:b:" --time-budget 0
# Runs cut by a budget: the first three of a pass, each from the cursor.
for r in 1 2 3; do
    sweep "run $r of $RUN_SPACES, no index" "bench:c:" --max-spaces "$RUN_SPACES"
done
index "bench:d:"
for r in 1 2 3; do
    sweep "run $r of $RUN_SPACES, index ${PCT}%" "bench:d:" --max-spaces "$RUN_SPACES"
done
# A time budget: how far 5 s go.
sweep "5 s budget, no index" "bench:e:" --time-budget 5s
index "bench:f:"
sweep "5 s budget, index ${PCT}%" "bench:f:" --time-budget 5s

python3 - "$results" "$N" "$LIST_MS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n, list_ms = int(sys.argv[2]), float(sys.argv[3])
print("| run | spaces examined | listed | LIST requests | s (file://) | "
      "cursor before → after | pass completed |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print("| %s | %s | %s | %s | %.2f | %s → %s | %s |" % (
        r["label"], format(r["scanned"], ","), format(r["listed"], ","),
        format(r["listRequests"], ","), r["durationMs"] / 1000.0,
        r["cursorBefore"] or "(start)", r["cursorAfter"] or "(start)",
        "yes" if r["passCompleted"] else "no"))
print()
print("Extrapolated to 1,000,000 spaces (linear in the spaces; S3 time = "
      "LIST requests x %g ms, one at a time):" % list_ms)
print()
print("| pass | LIST requests | s (file://) | h on S3 at %g ms | "
      "40-min runs per pass on S3 |" % list_ms)
print("|---|---|---|---|---|")
for r in rows[:2]:
    k = 1e6 / n
    lists = r["listRequests"] * k
    s3_s = lists * list_ms / 1000.0
    print("| %s | %s | %.0f | %.1f | %d |" % (
        r["label"], format(int(round(lists)), ","), r["durationMs"] / 1000.0 * k,
        s3_s / 3600.0, -(-s3_s // 2400)))
EOF
