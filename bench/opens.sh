#!/usr/bin/env bash
# The "opens" workload of bench/run.sh (issue 16): opens of small archived
# spaces with idle workers, then while every worker archives a large space,
# timed by bench/opens.py from the enqueue to the `ready` / `complete` event
# on the space channel; and the workers' peak RSS during the busy pass (an
# urgent restore and a background archive at once). Library: source it from
# run.sh after its helpers (say, die, expect, count, s3u, use_profile, BIN,
# svc, tmp, E_DIRECT); run_opens writes $tmp/opens.txt for the report.
#
# Knobs (environment):
#   BENCH_OPENS_N=20            opens per pass (quick: 8)
#   BENCH_OPENS_FILES=150       files of each small space (10 MiB)
#   BENCH_OPENS_BIG=10000:2048  the large space of each worker, files:MiB
#                               (quick: 2000:200)
#   BENCH_OPENS_LARGE=400:512   one more open during the busy pass, after the
#                               small ones, of a space with big blobs
#                               (files:MiB, 4 blobs of a tenth each; quick
#                               200:64; 0 = none): the worker's peak RSS with
#                               a restore that streams big entries while the
#                               background archive runs
#   BENCH_OPENS_WORKERS=1       worker processes (each archives a large space
#                               during the busy pass)
#   BENCH_OPENS_PROFILE=plain   plain or latency (see BENCH_PROFILE)
#   BENCH_OPENS_BUDGET_S=900    the busy pass stops opening after that long

# (root, tmp, svc, worker_pid, BIN, REDIS_URL ... are run.sh's)
# shellcheck disable=SC2154,SC2034

opens_field() {  # JOBID FIELD
    python3 "$bench/opens.py" field --redis "$REDIS_URL" "$1" "$2"
}

# opens_wait_state JOBID TIMEOUT_S STATE...: wait until the job is in one of
# the states; return 1 on timeout.
opens_wait_state() {
    local job=$1 timeout=$2 st i
    shift 2
    for ((i = 0; i < timeout * 10; i++)); do
        st=$(opens_field "$job" state)
        for want in "$@"; do [ "$st" != "$want" ] || return 0; done
        sleep 0.1
    done
    say "job $job still '$st' after ${timeout}s"
    return 1
}

opens_hwm() {  # peak RSS (MiB) over the opens workers, "?" if unknown
    local i m max=
    for ((i = 1; i <= nworkers; i++)); do
        m=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/${opens_pids[i]}/status" 2>/dev/null) ||
            { echo "?"; return; }
        max=$(awk -v a="${max:-0}" -v b="$m" 'BEGIN { print (b > a ? b : a) }')
    done
    echo "${max:-?}"
}
opens_hwm_reset() {
    local i
    for ((i = 1; i <= nworkers; i++)); do echo 5 >"/proc/${opens_pids[i]}/clear_refs" 2>/dev/null || true; done
}

# opens_archive_all LABEL SID...: archive each space (idle workers), checked.
opens_archive_all() {
    local label=$1 sid
    shift
    for sid in "$@"; do
        "$BIN" enqueue archive "$sid" --wait >>"$od/enqueue.out" 2>&1 ||
            die "opens: archive of $sid ($label) failed: $(tail -n 1 "$od/enqueue.out")"
    done
    for sid in "$@"; do
        expect "opens: $label: objects left under active/$sid/" "$(count "active/$sid/")" 0 ||
            die "opens: setup failed"
    done
}

run_opens() {
    local n=${BENCH_OPENS_N:-20} files=${BENCH_OPENS_FILES:-150} big=${BENCH_OPENS_BIG:-10000:2048}
    local budget=${BENCH_OPENS_BUDGET_S:-900} profile=${BENCH_OPENS_PROFILE:-plain}
    local large=${BENCH_OPENS_LARGE:-400:512}
    local i sid summary big_files big_mib bsize t0 t1 rss_idle rss_busy rss_large="?" large_sid="" desc
    local -a small=() bigs=() bg=() bg_s=()
    nworkers=${BENCH_OPENS_WORKERS:-1}
    opens_pids=()
    if [ "${BENCH_QUICK:-0}" = 1 ]; then
        n=${BENCH_OPENS_N:-8}
        big=${BENCH_OPENS_BIG:-2000:200}
        large=${BENCH_OPENS_LARGE:-200:64}
    fi
    big_files=${big%%:*}
    big_mib=${big#*:}
    # 4 big blobs of a tenth of the space each (as the 2g workload: 200 MiB of 2 GiB)
    bsize=$((big_mib * 1048576 / 10))
    od=$tmp/opens
    mkdir -p "$od"
    : >"$od/idle.jsonl"
    : >"$od/busy.jsonl"

    say "[opens] $n small spaces of $files files / 10 MiB, $nworkers large space(s) of $big_files files / $big_mib MiB"
    for ((i = 1; i <= n; i++)); do
        summary=$(python3 "$root/tests/gen_space.py" --out "$od/small/space" --seed $((1600 + i)) \
            --end-date 2026-06-30 --files "$files" --total-mib 10)
        sid=$(json_field "$summary" space_id)
        upload_space opens "$od/small" "$sid" "$(json_field "$summary" files)"
        rm -rf "$od/small"
        small+=("$sid")
    done
    if [ "$large" != 0 ]; then
        say "[opens] generating the large open's space: ${large%%:*} files, ${large#*:} MiB"
        summary=$(python3 "$root/tests/gen_space.py" --out "$od/large/space" --seed 1800 \
            --end-date 2026-06-30 --files "${large%%:*}" --total-mib "${large#*:}" \
            --big-blobs 4 --big-size $((${large#*:} * 1048576 / 10)))
        large_sid=$(json_field "$summary" space_id)
        upload_space opens "$od/large" "$large_sid" "$(json_field "$summary" files)"
        rm -rf "$od/large"
    fi
    for ((i = 1; i <= nworkers; i++)); do
        say "[opens] generating large space $i: $big_files files, $big_mib MiB"
        summary=$(python3 "$root/tests/gen_space.py" --out "$od/big/space" --seed $((1700 + i)) \
            --end-date 2026-06-30 --files "$big_files" --total-mib "$big_mib" \
            --big-blobs 4 --big-size "$bsize")
        sid=$(json_field "$summary" space_id)
        upload_space opens "$od/big" "$sid" "$(json_field "$summary" files)"
        rm -rf "$od/big"
        bigs+=("$sid")
    done

    use_profile "$profile"
    for ((i = 1; i <= nworkers; i++)); do
        : >"$od/worker-$i.log"
        start_worker "$od/worker-$i.log" || die "opens: worker start failed"
        svc_register_pid "$svc" "worker-o$i" "$worker_pid"
        rm -f "$svc/worker.pid" "$svc/worker.start"
        opens_pids[i]=$worker_pid
    done
    say "[opens] archiving the small spaces"
    opens_archive_all small "${small[@]}" ${large_sid:+"$large_sid"}

    say "[opens] idle pass: $n opens"
    opens_hwm_reset
    python3 "$bench/opens.py" run --redis "$REDIS_URL" --bin "$BIN" --label idle \
        --out "$od/idle.jsonl" "${small[@]}" || failures=$((failures + 1))
    rss_idle=$(opens_hwm)

    say "[opens] archiving the small spaces again"
    opens_archive_all small "${small[@]}"

    say "[opens] busy pass: every worker archives a large space, $n opens meanwhile"
    t0=$EPOCHREALTIME
    for sid in "${bigs[@]}"; do
        bg+=("$("$BIN" enqueue archive "$sid")") || die "opens: enqueue of the large archive failed"
    done
    for i in "${bg[@]}"; do opens_wait_state "$i" 60 running || die "opens: the large archive did not start"; done
    opens_hwm_reset
    python3 "$bench/opens.py" run --redis "$REDIS_URL" --bin "$BIN" --label busy \
        --bg "$(IFS=,; echo "${bg[*]}")" --budget-s "$budget" \
        --out "$od/busy.jsonl" "${small[@]}" || failures=$((failures + 1))
    rss_busy=$(opens_hwm)
    if [ -n "$large_sid" ]; then
        python3 "$bench/opens.py" run --redis "$REDIS_URL" --bin "$BIN" --label busy-large \
            --bg "$(IFS=,; echo "${bg[*]}")" --out "$od/busy.jsonl" "$large_sid" ||
            failures=$((failures + 1))
        rss_large=$(opens_hwm)
    fi
    for i in "${bg[@]}"; do
        opens_wait_state "$i" 1800 succeeded failed || failures=$((failures + 1))
        bg_s+=("$(opens_field "$i" state)")
    done
    t1=$EPOCHREALTIME

    local i_w
    for ((i_w = 1; i_w <= nworkers; i_w++)); do
        worker_warnings "$od/worker-$i_w.log" 1 "[opens] worker $i_w"
        svc_stop "$svc" "worker-o$i_w"
    done
    use_profile plain
    desc="$nworkers worker(s), default settings, profile $(profile_label "$profile"); idle/busy: $n spaces of $files files / 10 MiB
busy: while each worker archives $big_files files / $big_mib MiB (normal lane; background archive(s) ${bg_s[*]} \
after $(python3 -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1") s);\
 an open counts as busy when every background archive was running at its enqueue"
    [ -z "$large_sid" ] || desc="$desc
busy-large: one open of ${large%%:*} files / ${large#*:} MiB (4 blobs of a tenth each) after the busy ones"
    desc="$desc
peak RSS: the workers' VmHWM over the pass (busy: urgent restores and the background archive(s) at once;
busy-large: over the busy pass up to the end of the large open)"
    local rc=0 strict=()
    [ "${BENCH_STRICT:-0}" != 1 ] || strict=(--strict)
    python3 "$bench/opens.py" summary "$od/idle.jsonl" "$od/busy.jsonl" \
        --rss-idle "$rss_idle" --rss-busy "$rss_busy" --rss-busy-large "$rss_large" \
        --rss-max "$RSS_MAX_MIB" \
        --describe "$desc" "${strict[@]}" >"$tmp/opens.txt" || rc=$?
    case $rc in
    0) ;;
    3) opens_missed=1 ;; # (read by run.sh)
    *) failures=$((failures + 1)) ;;
    esac
    cat "$tmp/opens.txt" >&2

    for sid in "${small[@]}" "${bigs[@]}" $large_sid; do
        s3u rm "$BUCKET" "active/$sid/"
        s3u rm "$BUCKET" "archived/$sid/"
    done
}
