#!/usr/bin/env python3
"""Cost curve of the embedded engine against Spark (issue #10): the same analysis on generated
stores of growing size, run by flowdrill's embedded engine and pushed down to Spark local[1]
and local[2]; prints a table, writes JSON, and names the crossover (the smallest size at which a
Spark master answers faster than the embedded engine), if any.

    cargo build --release
    python3 benches/spark_cost_curve.py --sizes 1M,10M            # 100M: --sizes 1M,10M,100M

Each size is a generated store (`flowdrill generate --kind store`, unsampled, one hour, 5-minute
bins), kept under --work and reused. The query is `top --by srcip -n 10 --exact --no-cache`
(the whole store, every record), as in the issue's measurement.

Embedded: the median wall time of --runs separate runs (a process per run: its start costs
milliseconds). Spark: one console process per master runs the query --runs + 1 times in one
session; the first run (JVM, session and file listing warm-up) is reported as `cold`, the
median of the others as `warm`. Each run's time is flowdrill's own trace of the pushed-down
query plus the local part (FLOWDRILL_TRACE). Sizes of the returned aggregates are reported too.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Level 0 keeps every record; the coarse levels get small budgets of their own (inheriting
# 10 GB/h and 1 GB/h from level 0's 100 GB/h, they would keep every record too, and hold a whole
# hour and a whole day of records in memory until those bins close: 100 M records ran out of
# memory).
LINKS = ('[defaults]\nbin = "5m"\nbudget = "100GB"\n'
         'levels = [{ bin = "1h", budget = "1MB" }, { bin = "1d", budget = "100kB" }]\n')
QUERY = ["top", "--by", "srcip", "-n", "10", "--exact", "--no-cache"]


def count(s):
    s = s.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}
    if s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def store_for(fd, work, n):
    d = os.path.join(work, "store-%d" % n)
    if os.path.exists(os.path.join(d, "_flowdrill-store.json")):
        return d
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    links = os.path.join(work, "links.toml")
    with open(links, "w") as f:
        f.write(LINKS)
    t = time.time()
    subprocess.run(
        [fd, "--quiet", "--store", d, "generate", "--kind", "store", "--flows", str(n),
         "--duration", "1h", "--links", links],
        check=True,
    )
    print("  generated %d flows in %.1f s" % (n, time.time() - t), file=sys.stderr)
    return d


def records_of(fd, store):
    out = subprocess.run([fd, "--store", store, "--format", "json"] + QUERY,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["meta"]["records"]


def embedded(fd, store, runs):
    times = []
    for _ in range(runs):
        t = time.time()
        subprocess.run([fd, "--store", store, "--format", "json"] + QUERY, check=True,
                       capture_output=True)
        times.append(time.time() - t)
    return statistics.median(times), times


def spark(fd, store, master, runs):
    script = "\n".join([" ".join(QUERY)] * (runs + 1)) + "\n"
    env = dict(os.environ, FLOWDRILL_TRACE="1")
    # The driver collects about one group per source and bin: 2 GB stalled at 10 M records.
    env.setdefault("FLOWDRILL_SPARK_MEMORY", "8g")
    t = time.time()
    p = subprocess.run(
        [fd, "--store", store, "--format", "json", "console", "-f", "-"],
        input=script, capture_output=True, text=True, env=env,
        cwd=ROOT,
    )
    wall = time.time() - t
    if p.returncode != 0:
        raise SystemExit("spark %s failed:\n%s" % (master, p.stderr[-2000:]))
    # Per query: the pushed-down part, then the local phases up to the next query ("load"
    # is the pushed-down part and reading its answer: left out). A fold's "read and group"
    # ran the pushed-down part inside it: then the phases alone are the query's time.
    spark_ms, local_ms, inside, returned = [], [], [], []
    for line in p.stderr.splitlines():
        m = re.match(r"trace: spark: (\d+) groups, (\d+) bytes returned, ([\d.]+) ms", line)
        if m:
            spark_ms.append(float(m.group(3)))
            local_ms.append(0.0)
            inside.append(False)
            returned.append(int(m.group(2)))
            continue
        m = re.match(r"trace: (.*): ([\d.]+) ms", line)
        if m and spark_ms and m.group(1) != "load":
            inside[-1] |= m.group(1) == "read and group"
            local_ms[-1] += float(m.group(2))
    total = [(lo if i else s + lo) / 1e3 for s, lo, i in zip(spark_ms, local_ms, inside)]
    if len(total) < 2:
        raise SystemExit("spark %s: no trace lines:\n%s" % (master, p.stderr[-2000:]))
    return {
        "cold": total[0],
        "warm": statistics.median(total[1:]),
        "runs": total,
        "process_wall": wall,
        "returned_bytes": returned[-1],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1M,10M", help="record counts, e.g. 1M,10M,100M")
    ap.add_argument("--masters", default="local[1],local[2]")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--flowdrill", default=os.path.join(ROOT, "target/release/flowdrill"))
    ap.add_argument("--work", default="/tmp/flowdrill-spark-bench")
    ap.add_argument("--json", default=None, help="write the results here")
    a = ap.parse_args()
    fd = os.path.abspath(a.flowdrill)
    masters = [m for m in a.masters.split(",") if m]
    results = []
    for n in [count(s) for s in a.sizes.split(",")]:
        print("== %d flows" % n, file=sys.stderr)
        store = store_for(fd, a.work, n)
        row = {"flows": n, "records": records_of(fd, store)}
        row["embedded"], _ = embedded(fd, store, a.runs)
        for m in masters:
            os.environ["FLOWDRILL_ENGINE"] = "spark"
            os.environ["FLOWDRILL_SPARK_MASTER"] = m
            try:
                row[m] = spark(fd, store, m, a.runs)
            finally:
                del os.environ["FLOWDRILL_ENGINE"]
                del os.environ["FLOWDRILL_SPARK_MASTER"]
        results.append(row)
        print(json.dumps(row), file=sys.stderr)

    head = "| records | embedded (s) | " + " | ".join(
        "%s warm (s) | %s cold (s)" % (m, m) for m in masters) + " | returned bytes |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        cells = ["%d" % r["records"], "%.2f" % r["embedded"]]
        for m in masters:
            cells += ["%.2f" % r[m]["warm"], "%.1f" % r[m]["cold"]]
        cells.append("%d" % r[masters[-1]]["returned_bytes"])
        print("| " + " | ".join(cells) + " |")
    for m in masters:
        cross = [r["records"] for r in results if r[m]["warm"] < r["embedded"]]
        if cross:
            print("crossover (%s warm faster than embedded): at %d records" % (m, cross[0]))
        else:
            ratio = [r[m]["warm"] / r["embedded"] for r in results]
            print("no crossover for %s up to %d records (Spark/embedded time: %s)" % (
                m, results[-1]["records"], ", ".join("%.1fx" % x for x in ratio)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
