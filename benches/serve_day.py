#!/usr/bin/env python3
"""Server time of every view of the web UI over a day of data, at the default budget.

Generates a day of traffic with `flowdrill generate` (an IPFIX export capture), imports it into
a fresh store with the default links file (5-minute bins, the default disk budget), starts
`flowdrill serve` on 127.0.0.1, and times each endpoint as the UI calls it: the first answer
(cold result cache, columns read from disk) and the median of --repeat answers with
`no-cache=true` (no result cache; the engine's column cache warm). The target is 300 ms.

    cargo build --release
    python3 benches/serve_day.py [--flows 2M] [--repeat 5] [--flowdrill target/release/flowdrill]
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

VIEWS = [
    ("series (Internet2 categories)", "series", {"categories": "internet2"}),
    ("series, last hour", "series", {"categories": "internet2", "time": "-1h"}),
    ("hhh src", "hhh", {"dim": "src", "threshold": "5"}),
    ("hhh dst", "hhh", {"dim": "dst", "threshold": "5"}),
    ("hhh app", "hhh", {"dim": "app", "threshold": "5"}),
    ("hhh2 src x dst (heatmap)", "hhh2", {"rows": "src", "cols": "dst", "threshold": "5"}),
    ("top 20 srcip", "top", {"by": "srcip", "top": "20"}),
    ("top 20 dstport", "top", {"by": "dstport", "top": "20"}),
    ("dist", "dist", {"ignore": "2"}),
    ("compare last hour", "compare", {"time": "-1h", "by": "srcip", "top": "20"}),
    ("scans", "scans", {"top": "10"}),
    ("hhh src, filtered", "hhh", {"dim": "src", "filter": "proto tcp and dst port 443"}),
    ("links", "links", {}),
    ("info", "info", {}),
    ("filter check", "filter", {"filter": "proto tcp and dst port 443"}),
]


def run(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def get(addr, path, params):
    host, port = addr.rsplit(":", 1)
    q = urllib.parse.urlencode(params)
    c = http.client.HTTPConnection(host, int(port), timeout=600)
    t = time.perf_counter()
    c.request("GET", f"/api/v1/{path}" + (f"?{q}" if q else ""))
    r = c.getresponse()
    body = r.read()
    dt = time.perf_counter() - t
    if r.status != 200:
        sys.exit(f"{path} {params}: HTTP {r.status}: {body[:300]!r}")
    return dt, json.loads(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flowdrill", default="target/release/flowdrill")
    ap.add_argument("--flows", default="2M", help="background flows over the day")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    a = ap.parse_args()
    fd = os.path.abspath(a.flowdrill)
    work = a.keep or tempfile.mkdtemp(prefix="flowdrill-serve-day-")
    os.makedirs(work, exist_ok=True)
    store = os.path.join(work, "store")
    pcap = os.path.join(work, "day.pcap")
    try:
        if not os.path.exists(os.path.join(store, "store.toml")):
            g = run([fd, "--quiet", "generate", "--kind", "ipfix", "--duration", "24h",
                     "--flows", a.flows, "--out", pcap])
            i = run([fd, "--quiet", "--store", store, "import", pcap])
            os.remove(pcap)
            print(f"generated a day ({a.flows} background flows) in {g:.1f} s, imported in {i:.1f} s")
        addr_file = os.path.join(work, "address")
        if os.path.exists(addr_file):
            os.remove(addr_file)
        srv = subprocess.Popen([fd, "--quiet", "--store", store, "serve", "--listen", "127.0.0.1:0",
                                "--address-file", addr_file], stdout=subprocess.DEVNULL)
        try:
            for _ in range(600):
                if os.path.exists(addr_file) and open(addr_file).read().endswith("\n"):
                    break
                time.sleep(0.05)
            addr = open(addr_file).read().strip().removeprefix("http://")
            rows = []
            for name, path, params in VIEWS:
                first, rep = get(addr, path, params)
                times = []
                for _ in range(a.repeat):
                    p = dict(params)
                    if path not in ("links", "info", "filter"):
                        p["no-cache"] = "true"
                    dt, rep = get(addr, path, p)
                    times.append(dt)
                meta = rep.get("meta", {})
                rows.append((name, first, statistics.median(times), max(times), meta.get("records"),
                             meta.get("exact")))
        finally:
            srv.terminate()
            srv.wait()
        print(f"\n| view | first (ms) | median (ms) | max (ms) | records | exact |")
        print("|---|---:|---:|---:|---:|---|")
        worst = 0.0
        for name, first, med, mx, recs, exact in rows:
            worst = max(worst, med)
            print(f"| {name} | {first*1000:.0f} | {med*1000:.0f} | {mx*1000:.0f} | {recs if recs is not None else ''} | {'' if exact is None else ('yes' if exact else 'no')} |")
        print(f"\nslowest median: {worst*1000:.0f} ms (target: 300 ms)")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
