#!/usr/bin/env python3
"""Print bench/run.sh's results as tables, with the ratios and the issues'
targets (issue 6: against the operator's tools; issue 16: the latency profile).

    report.py RESULTS.tsv --server DESC --machine DESC --binary DESC
              [--rss-max MIB] [--par N] [--strict]

RESULTS.tsv has one row per workload and operation:
    workload files bytes op sila_s job_s aws_s rclone_s lower_s rss_mib
    [sila_cpu aws_cpu rclone_cpu lower_cpu [profile sila_req aws_req rclone_req lower_req
    [ready_s [sila_bill archive_bytes]]]]
(a time is "FAIL" when that step failed, a peak RSS "?" when unknown; job_s
is the job's own duration in the worker's log, for information: the ratios
use sila_s, the wall clock of "enqueue --wait"). The optional *_cpu columns
are the S3 server's CPU seconds during each step ("?" when unknown); with
them a second table shows the server's work per step and how many of its
cores it kept busy (CPU seconds / wall seconds). profile is "plain" (straight
to the S3 server) or "<N>ms" (bench/latency_proxy.js delays every request by N
ms); *_req are "<requests>/<most in flight at once>" in a latency profile;
ready_s (unarchive) the seconds from the enqueue to the `ready` event on the
space's channel ("-" when none came); sila_bill the job's requests from its
result ({"requests": {op: n}, "requestRetries": n, "costUsd": x}, compact
JSON, "-" when unknown) and archive_bytes (unarchive) the size of the archive
it read. With them a table shows each job's requests by S3 operation against
the compass of issue 18:
  archive   requests <= files (GET) + ceil(files/1000) (LIST) + ceil(files/1000)
            (DELETE) + parts (UploadPart) + ARCHIVE_CONST
  restore   requests <= files (PUT) + archive ranges (ceil(archive bytes /
            RESTORE_READ_BYTES) ranged GETs) + RESTORE_CONST
(the same constants as tests/integration/check_it_requests.c), plus what
the bill itself names: its retries, the ranged GETs and multipart PUTs of
objects above SILA_GET_CHUNK (bigGetExtra, bigPutExtra) and, on a server
without conditional PUT (its "features" lack cond-put), the HEADs that
stand in for If-None-Match and the two GETs of each fenced manifest write
(MANIFEST_WRITES).

Targets, each a ratio sila / alternative from the same run and profile:
  plain (issue 6)
    archive     aws-cli <= 1/5, rclone <= 1/3 (1k and 10k only), lower <= 2
    unarchive   aws-cli <= 1/4, rclone <= 1/2 (1k and 10k only), lower <= 2
  latency (issue 16; the pipelines are shown, without a target)
    archive     lower <= 1.8 (1k and 10k only)
    unarchive   lower <= 1.3 (1k and 10k only)
  every row     worker peak RSS <= --rss-max MiB (default 64)
  2g, plain     unarchive: open->ready (ready_s) <= 2 s (issue 16)

Exit status 0, or 3 with --strict when a row misses a target.
"""

import argparse
import json
import math
import sys

TARGETS = {  # op -> (aws-cli, rclone, lower bound) maximum ratio
    "archive": (1 / 5, 1 / 3, 2.0),
    "unarchive": (1 / 4, 1 / 2, 2.0),
}
PIPELINE_TARGET_WORKLOADS = {"1k", "10k"}  # the issue sets those for these two
LATENCY_TARGETS = {"archive": 1.8, "unarchive": 1.3}  # sila / lower, issue 16
READY_TARGET_S = {"2g": 2.0}  # open->ready of the workload, plain profile, issue 16
# The compass of issue 18 (tests/integration/check_it_requests.c has the same):
# requests of a job that are neither per file, nor per 1,000-key page, nor per
# part or archive range (manifest reads and writes, the pending-delete record,
# upload checks, HEADs, the read-back of the archive's end).
ARCHIVE_CONST = 16
RESTORE_CONST = 16
# manifest writes a job makes at most (archive: archiving, archived, and the
# writes of its recovery paths; restore: restoring, ready, active)
MANIFEST_WRITES = {"archive": 4, "unarchive": 3}
RESTORE_READ_BYTES = 2 << 20  # SILA_RESTORE_READ_SIZE's default
SHORT_OPS = {"GetObject": "GET", "HeadObject": "HEAD", "PutObject": "PUT",
             "ListObjectsV2": "LIST", "DeleteObjects": "DEL", "UploadPart": "PART",
             "CreateMultipartUpload": "CMU", "CompleteMultipartUpload": "CPL",
             "ListMultipartUploads": "LMU", "AbortMultipartUpload": "ABORT",
             "UploadPartCopy": "PCOPY", "DeleteObject": "DEL1", "ListParts": "LPARTS"}


def compass(op, files, bill, archive_bytes):
    """(total, bound, how the bound is made, holds) of one job's requests."""
    reqs = bill.get("requests", {})
    total = sum(reqs.values())
    pages = math.ceil(files / 1000)
    retries = int(bill.get("requestRetries", 0))
    # terms the bill names beyond the issue's: retries (the server's doing),
    # objects above the GET cap (read, and restored, in pieces by design),
    # HEADs in place of conditional PUTs
    extra, notes = retries, ["%d retries" % retries] if retries else []
    nocond = "cond-put" not in bill.get("features", "cond-put")
    heads = reqs.get("HeadObject", 0) if nocond else 0
    if heads:
        extra += heads
        notes.append("%d HEAD (no cond-put)" % heads)
    # without conditional PUT each manifest write is fenced through Redis:
    # the manifest is read before the PUT and read back after it
    fenced = 2 * MANIFEST_WRITES[op] if nocond else 0
    if fenced:
        extra += fenced
        notes.append("%d GET (fenced manifest writes)" % fenced)
    if op == "archive":
        big = int(bill.get("bigGetExtra", 0))
        parts = reqs.get("UploadPart", 0)
        bound = files + big + 2 * pages + parts + ARCHIVE_CONST + extra
        how = "%d+%d+2*%d+%d+%d" % (files, big, pages, parts, ARCHIVE_CONST)
        ok = (total <= bound and
              reqs.get("GetObject", 0) <= files + big + 2 + fenced + retries and
              reqs.get("ListObjectsV2", 0) <= pages + 2 + retries and
              reqs.get("DeleteObjects", 0) <= pages + 1 + retries)
    else:
        big = int(bill.get("bigPutExtra", 0))
        ab = num(archive_bytes)
        ranges = math.ceil(ab / RESTORE_READ_BYTES) if ab is not None else reqs.get(
            "GetObject", 0)
        bound = files + big + ranges + RESTORE_CONST + extra
        how = "%d+%d+%d+%d" % (files, big, ranges, RESTORE_CONST)
        ok = total <= bound and reqs.get("PutObject", 0) <= files + 4 + retries
    if notes:
        how += " +" + ", ".join(notes)
    return total, bound, how, ok


def fmt_ops(reqs):
    return " ".join("%s %d" % (SHORT_OPS.get(k, k), v)
                    for k, v in sorted(reqs.items(), key=lambda kv: -kv[1]))


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def fmt_s(s):
    v = num(s)
    return "%.2f" % v if v is not None else s


def ratio(a, b):
    a, b = num(a), num(b)
    if a is None or b is None or b <= 0:
        return None
    return a / b


def fmt_r(r):
    return "%.3f" % r if r is not None else "-"


def frac(x):
    return {1 / 5: "1/5", 1 / 3: "1/3", 1 / 4: "1/4", 1 / 2: "1/2"}.get(x, "%g" % x)


def checks_of(w, op, profile, r_aws, r_rc, r_low, low, aws, rc):
    """[(what, ratio, target, floor)] for one row."""
    if profile != "plain":
        if w in PIPELINE_TARGET_WORKLOADS:
            return [("lower", r_low, LATENCY_TARGETS[op], None)]
        return []
    t_aws, t_rc, t_low = TARGETS[op]
    checks = []
    if w in PIPELINE_TARGET_WORKLOADS:
        # (the floor: where the lower bound itself stands against it)
        checks += [("aws", r_aws, t_aws, ratio(low, aws)),
                   ("rclone", r_rc, t_rc, ratio(low, rc))]
    checks.append(("lower", r_low, t_low, None))
    return checks


def print_table(head, rows, right):
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]

    def line(cols):
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(cols)).rstrip()

    print(line(head))
    print(line(["-" * x for x in widths]))
    for r in rows:
        print(line(r))


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--server", required=True)
    p.add_argument("--machine", required=True)
    p.add_argument("--binary", required=True)
    p.add_argument("--rss-max", type=float, default=64)
    p.add_argument("--par", type=int, default=32)
    p.add_argument("--strict", action="store_true")
    a = p.parse_args(argv)

    rows = []
    with open(a.results) as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) == 10:
                cols += ["?"] * 4
            if len(cols) == 14:
                cols += ["plain"] + ["-"] * 4
            if len(cols) == 19:
                cols += ["-"]
            if len(cols) == 20:
                cols += ["-", "-"]
            if len(cols) == 22:
                rows.append(cols)

    head = ["workload", "profile", "op", "sila s", "(job s)", "ready s", "aws-cli s", "rclone s",
            "lower s", "sila/aws", "sila/rclone", "sila/lower", "peak RSS MiB", "targets"]
    table = []
    met = missed = 0
    cpu_table = []
    req_table = []
    cpu_known = False
    by_key = {}
    bill_table = []
    compass_missed = 0
    for w, files, nbytes, op, sila, job, aws, rc, low, rss, *rest in rows:
        cpus, profile, reqs, ready = rest[:4], rest[4], rest[5:9], rest[9]
        bill_text, archive_bytes = rest[10], rest[11]
        r_aws, r_rc, r_low = ratio(sila, aws), ratio(sila, rc), ratio(sila, low)
        bad = []
        for what, r, t, floor in checks_of(w, op, profile, r_aws, r_rc, r_low, low, aws, rc):
            if r is None:
                bad.append("%s ?" % what)
            elif r > t:
                note = ""
                if floor is not None:
                    note = " (lower bound %.2f%s)" % (
                        floor, ", out of reach" if floor > t else "")
                bad.append("%s %.2f>%s%s" % (what, r, frac(t), note))
        if op == "unarchive" and profile == "plain" and w in READY_TARGET_S:
            rd = num(ready)
            if rd is None:
                bad.append("ready ?")
            elif rd > READY_TARGET_S[w]:
                bad.append("ready %.2fs>%gs" % (rd, READY_TARGET_S[w]))
        m = num(rss)
        if m is None:
            bad.append("rss ?")
        elif m > a.rss_max:
            bad.append("rss %.0f>%g" % (m, a.rss_max))
        if sila == "FAIL":
            bad.insert(0, "sila FAILED")
        if bill_text not in ("-", ""):
            try:
                bill = json.loads(bill_text)
            except ValueError:
                bill = None
            if bill is not None:
                total, bound, how, ok = compass(op, int(files), bill, archive_bytes)
                if not ok:
                    compass_missed += 1
                bill_table.append(["%s: %s files" % (w, files), profile, op,
                                   fmt_ops(bill.get("requests", {})), str(total),
                                   "%d (%s)" % (bound, how),
                                   str(bill.get("requestRetries", "?")),
                                   "%.6f" % float(bill.get("costUsd", 0)),
                                   "holds" if ok else "MISSED"])
        if bad:
            missed += 1
        else:
            met += 1
        label = "%s: %s files, %.0f MiB" % (w, files, int(nbytes) / (1 << 20))
        by_key[(label, op, profile)] = (sila, low)
        cells = []
        cpu_known = cpu_known or any(num(c) is not None for c in cpus)
        for c, t in zip(cpus, (sila, aws, rc, low)):
            busy = ratio(c, t)
            cells.append("%s (%.2f)" % (fmt_s(c), busy) if busy is not None else fmt_s(c))
        cpu_table.append([label, profile, op] + cells)
        if profile != "plain":
            req_table.append([label, profile, op] + reqs)
        table.append([label, profile, op, fmt_s(sila), fmt_s(job), fmt_s(ready), fmt_s(aws), fmt_s(rc),
                      fmt_s(low), fmt_r(r_aws), fmt_r(r_rc), fmt_r(r_low), rss,
                      "met" if not bad else "MISSED: " + ", ".join(bad)])

    print("sila-archiver benchmark (issues 6 and 16): wall-clock seconds, one run, one server")
    print("server:  %s, on 127.0.0.1" % a.server)
    print("machine: %s" % a.machine)
    print("binary:  %s" % a.binary)
    print()
    print_table(head, table, set(range(3, 13)))
    # What the latency costs each way of doing the job: time in the latency
    # profile / time in the plain one, when both ran.
    lat = []
    for (label, op, profile), (sila, low) in by_key.items():
        if profile == "plain" or (label, op, "plain") not in by_key:
            continue
        psila, plow = by_key[(label, op, "plain")]
        lat.append([label, op, profile, fmt_r(ratio(sila, psila)), fmt_r(ratio(low, plow)),
                    fmt_r(ratio(psila, plow)), fmt_r(ratio(sila, low))])
    if lat:
        print()
        print("The latency profile against plain: each time there / its time in plain, and "
              "sila / lower in both")
        print_table(["workload", "op", "profile", "sila x", "lower x", "sila/lower plain",
                     "sila/lower latency"], lat, set(range(3, 7)))
    if req_table:
        print()
        print("Requests each step made / most in flight at once (counted by the latency proxy; "
              "in brackets the proxy's CPU seconds)")
        print_table(["workload", "profile", "op", "sila", "aws-cli", "rclone", "lower"],
                    req_table, set(range(3, 7)))
    if bill_table:
        print()
        print("S3 requests of each sila-archiver job, from its result (\"requests\" by "
              "operation, issue 18), against the compass")
        print_table(["workload", "profile", "op", "requests by operation", "total",
                     "compass bound", "retries", "cost USD", "compass"],
                    bill_table, {4, 6, 7})
        print("compass: archive <= files (GET) + big-object ranges + 2 x ceil(files/1000) "
              "(LIST, DELETE) + parts + %d, GET <= files + ranges + 2;" % ARCHIVE_CONST)
        print("         restore <= files (PUT) + big-object multipart requests + "
              "ceil(archive bytes / 2 MiB) (ranged GETs) + %d, PUT <= files + 4;"
              % RESTORE_CONST)
        print("         both + retries and, on a server without conditional PUT, its HEADs; "
              "objects above SILA_GET_CHUNK (8 MiB) are")
        print("         read in ranges and restored by multipart (not the issue's 1 GET / "
              "1 PUT each); cost at the worker's SILA_PRICE_PER_1K_*")
    if cpu_known:
        print()
        print("S3 server CPU seconds during each step (and cores it kept busy: "
              "CPU s / wall s)")
        print_table(["workload", "profile", "op", "sila", "aws-cli", "rclone", "lower"],
                    cpu_table, set(range(3, 7)))
    print()
    print("rows with every target met: %d of %d" % (met, met + missed))
    print("targets, plain: archive sila/aws <= 1/5, sila/rclone <= 1/3 (1k, 10k); "
          "unarchive sila/aws <= 1/4, sila/rclone <= 1/2 (1k, 10k);")
    print("         sila/lower <= 2 for every workload")
    print("targets, latency: archive sila/lower <= 1.8, unarchive sila/lower <= 1.3 "
          "(1k, 10k)")
    print("every row: worker peak RSS (VmHWM, per operation) <= %g MiB; 2g plain unarchive: "
          "ready s <= 2" % a.rss_max)
    print("aws-cli: s3 cp --recursive + zip -r + s3 cp (unarchive: s3 cp + unzip + "
          "s3 cp --recursive), default settings")
    print("rclone:  copy --fast-list --transfers 16 + zip -r + copyto (unarchive: "
          "copyto + unzip + copy)")
    print("lower:   curl --parallel --parallel-max %d --aws-sigv4: GET every object + "
          "one PUT of an archive-sized object" % a.par)
    print("         (unarchive: GET the archive + PUT every object)")
    print("MISSED:  a ratio above its target; \"lower bound x\" is lower s / that "
          "alternative's s in the same row:")
    print("         when it is above the target too, the target is out of reach "
          "on this server (the lower")
    print("         bound does less than the job: no listing, no delete, no "
          "multipart)")
    print("sila:    enqueue archive|unarchive <id> --wait (follows the job's channel, "
          "reads its status hash) against a fresh worker;")
    print("         (job s): the job's duration_ms in the worker's log, without "
          "enqueue and waiting;")
    print("         ready s: from the enqueue to the `ready` event on sila:space:<id> "
          "(a worker before issue 16 publishes it at the end)")
    print("profile: plain = straight to the S3 server; <N>ms = every request (of every "
          "tool) through bench/latency_proxy.js,")
    print("         which hands it on after N ms")
    return 3 if a.strict and (missed or compass_missed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
