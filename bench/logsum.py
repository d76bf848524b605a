#!/usr/bin/env python3
"""Summarise the worker's log lines above info for bench/run.sh.

    logsum.py LOG FROM_LINE WHAT
    logsum.py --job-seconds LOG FROM_LINE

The first form reads LOG (one JSON object per line) from line FROM_LINE (1-based) on, keeps
the lines whose level is warn or error (and any line that isn't JSON), groups
them by event, method, HTTP status and S3 code, and prints one paragraph per
group: the count and the first line of it verbatim. Prints nothing when every
line is info or debug.

The second prints the duration_ms of the first job.succeeded (or job.failed)
from FROM_LINE on, in seconds: the job's own time in the worker, without the
enqueue and the --wait around it ("-" if there is none).
"""

import json
import sys


def job_seconds(path, start):
    with open(path, errors="replace") as f:
        for n, line in enumerate(f, 1):
            if n < start:
                continue
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("event") in ("job.succeeded", "job.failed") and "duration_ms" in o:
                return "%.3f" % (o["duration_ms"] / 1000)
    return "-"


def main(argv):
    if len(argv) == 4 and argv[1] == "--job-seconds":
        print(job_seconds(argv[2], int(argv[3])))
        return 0
    if len(argv) != 4:
        sys.exit(__doc__)
    path, start, what = argv[1], int(argv[2]), argv[3]
    groups = {}
    order = []
    total = 0
    with open(path, errors="replace") as f:
        for n, line in enumerate(f, 1):
            if n < start or not line.strip():
                continue
            try:
                o = json.loads(line)
            except ValueError:
                o = {"level": "?", "event": "not-json"}
            if o.get("level") in ("info", "debug"):
                continue
            total += 1
            k = (o.get("level"), o.get("event"), o.get("method"), o.get("http_status"),
                 o.get("s3_code"))
            if k not in groups:
                groups[k] = [0, line.rstrip("\n")]
                order.append(k)
            groups[k][0] += 1
    if not total:
        return 0
    print("worker log during %s: %d line(s) above info" % (what, total))
    for k in order:
        count, first = groups[k]
        level, event, method, status, code = k
        desc = " ".join(str(x) for x in (method, status, code) if x not in (None, ""))
        print("  %dx %s %s%s; first:" % (count, level, event, " (%s)" % desc if desc else ""))
        print("    " + first)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
