#!/usr/bin/env python3
"""The benchmark suite (issue #9): flowdrill against its peers, at several sizes, in one run.

For each size (records of the generator's one-hour mix):
  1. `flowdrill generate --kind ipfix` writes the export capture (the project's own data).
  2. Import: `flowdrill import` into an unsampled store (wall, CPU, peak memory) and nfcapd
     receiving the same datagrams on 127.0.0.1 (CPU); record counts must agree (no loss).
  3. Size: bytes per record of flowdrill's level-0 Parquet and of nfdump's files.
  4. The same questions of every system, each a median of R runs after a warm-up (flowdrill's
     and nfdump's runs alternate, so that both meet the same machine), with the
     spread and the peak memory of a run: top-N by source, destination and port against
     `nfdump -s`; a filter + aggregate against DuckDB's GROUP BY over the same Parquet files;
     prefix aggregation against `nfdump -A`; HHH (no peer) against its target. Every answer a
     peer gives to the same question is compared with flowdrill's: a difference fails the run.
  5. The physical ceiling: this machine's memory bandwidth (numpy sum over 1 GiB) divided by
     the bytes per record a question reads.
Then scaling: time and memory against the number of records (super-linear growth is flagged),
and with `--month` against the time range (an hour to 30 days of a store sampled to its
budget, with the coarse levels). `--chart FILE.png` draws the scaling curve (matplotlib).

  benches/suite.py --sizes 1M,10M --runs 5 --month --chart BENCHMARKS-scaling.png
  benches/suite.py --sizes 100M --runs 3          # the separate, long run
  benches/suite.py --ci                           # seconds: answers only (scripts/test)
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from import_vs_nfcapd import pcap_udp_payloads, nfcapd_collect  # noqa: E402
from analyses_vs_peers import nfdump_top, flowdrill_top  # noqa: E402

# Level 0 keeps every record (answers must equal the peers'); the coarse levels keep the default
# budgets (with level 0's 100 GB/h they would inherit 10 GB/h and 1 GB/h and hold every record
# of the capture in memory until its end).
LINKS = ('[defaults]\nbin = "5m"\nbudget = "100GB"\n'
         'levels = [{ bin = "1h", budget = "1MB" }, { bin = "1d", budget = "100kB" }]\n')


def count(s):
    s = s.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    return int(float(s[:-1]) * mult[s[-1]]) if s[-1] in mult else int(s)


def run_rss(cmd):
    """(wall, peak RSS MiB, stdout) of one run. The RSS comes from GNU time (a fork of this
    Python process would count Python's own pages in the child's high-water mark); 0 without it."""
    gnu_time = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
    with tempfile.NamedTemporaryFile("w+") as out, tempfile.NamedTemporaryFile("w+") as rss:
        full = ([gnu_time, "-f", "%M", "-o", rss.name] if gnu_time else []) + cmd
        t0 = time.perf_counter()
        r = subprocess.run(full, stdout=out, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode})")
        out.seek(0)
        rss.seek(0)
        kib = rss.read().strip().splitlines()
        return wall, (int(kib[-1]) / 1024 if kib else 0.0), out.read()


def timed(cmd, runs):
    """Medians over `runs` runs after a warm-up: (times, peak RSS MiB, last stdout)."""
    run_rss(cmd)
    times, rss, out = [], 0.0, ""
    for _ in range(runs):
        w, m, out = run_rss(cmd)
        times.append(w)
        rss = max(rss, m)
    return times, rss, out


def timed_pair(a, b, runs):
    """`timed` for two commands whose times are compared, their runs alternating (a, b, a, b,
    ...) so that both meet the same machine: on a shared VM whose speed drifts for minutes at a
    time, consecutive runs of one and then the other can put each in a different phase."""
    run_rss(a)
    run_rss(b)
    ta, tb, ra, rb, oa, ob = [], [], 0.0, 0.0, "", ""
    for _ in range(runs):
        w, m, oa = run_rss(a)
        ta.append(w)
        ra = max(ra, m)
        w, m, ob = run_rss(b)
        tb.append(w)
        rb = max(rb, m)
    return (ta, ra, oa), (tb, rb, ob)


def bandwidth_gbs():
    """Memory read bandwidth of one core, GB/s (numpy sum over 1 GiB, best of 3)."""
    try:
        import numpy as np
    except ImportError:
        return None
    a = np.ones(1 << 27, dtype=np.int64)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        a.sum()
        best = max(best, a.nbytes / (time.perf_counter() - t0))
    return best / 1e9


# Bytes per record a question reads from decoded columns: the key columns, bytes, packets,
# `continued` and the threshold (8 + 8 + 1 + 8 = 25) besides the key.
TOUCHED = {"srcip": 25 + 20, "dstip": 25 + 20, "dstport": 25 + 2, "proto": 25 + 1}


class Suite:
    def __init__(self, a):
        self.a = a
        self.fd = a.flowdrill
        self.rows = []      # (size, question, system, median, min, max, rss, note)
        self.failures = []
        self.bw = None if a.ci else bandwidth_gbs()

    def row(self, n, q, system, times, rss, note=""):
        self.rows.append((n, q, system, statistics.median(times), min(times), max(times), rss,
                          note))

    def check(self, what, ok):
        if not ok:
            self.failures.append(what)
            print(f"ANSWER DIFFERS: {what}", file=sys.stderr)
        return ok

    def size(self, n, work):
        a, fd = self.a, self.fd
        cap = os.path.join(work, "ipfix.pcap")
        subprocess.run([fd, "--quiet", "generate", "--kind", "ipfix", "--flows", str(n),
                        "--no-events", "--duration", "1h", "--out", cap], check=True)
        links = os.path.join(work, "links.toml")
        with open(links, "w") as f:
            f.write(LINKS)
        store = os.path.join(work, "store")
        # Import, timed: one fresh store per run.
        t_imp, rss_imp = [], 0.0
        for i in range(1 if a.ci else a.import_runs or max(1, min(a.runs, 3))):
            shutil.rmtree(store, ignore_errors=True)
            w, m, _ = run_rss([fd, "--quiet", "--store", store, "import", "--links", links, cap])
            t_imp.append(w)
            rss_imp = max(rss_imp, m)
        self.row(n, "import the capture", "flowdrill import", t_imp, rss_imp)
        nfdir = os.path.join(work, "nfcapd")
        os.makedirs(nfdir)
        nf_cpu = nfcapd_collect(pcap_udp_payloads(cap), nfdir, every=32)
        self.rows.append((n, "import the capture", "nfcapd (CPU s, from UDP)", nf_cpu, nf_cpu,
                          nf_cpu, 0.0, "receives the same datagrams on 127.0.0.1"))
        os.remove(cap)
        info = subprocess.run(["nfdump", "-R", nfdir, "-I"], check=True, capture_output=True,
                              text=True).stdout
        nf_flows = int(next(l.split(":")[1] for l in info.splitlines() if l.startswith("Flows:")))
        fd_flows = json.loads(subprocess.run(
            [fd, "--store", store, "--format", "json", "top", "--exact", "--no-cache", "-m",
             "flows", "-n", "1"], check=True, capture_output=True, text=True).stdout)["meta"]["total"]
        same_count = self.check(f"{n}: record counts nfcapd {nf_flows} vs flowdrill {fd_flows:.0f}",
                                nf_flows == round(fd_flows))
        nf_bytes = sum(os.path.getsize(os.path.join(nfdir, x)) for x in os.listdir(nfdir))
        lvl0 = os.path.join(store, "link=default", "level=0")
        st_bytes = sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in os.walk(lvl0)
                       for x in fs)
        self.rows.append((n, "bytes per record", "flowdrill level 0", st_bytes / n, 0, 0, 0, ""))
        self.rows.append((n, "bytes per record", "nfcapd files", nf_bytes / n, 0, 0, 0, ""))

        import duckdb
        con = duckdb.connect()
        parquet = os.path.join(lvl0, "**", "*.parquet")
        src = f"read_parquet('{parquet}')"
        runs = 1 if a.ci else a.runs
        # chDB (ClickHouse's engine, from PyPI: `pip install chdb`), the other peer issue #5
        # names; optional, and left out of the CI run (a large download for a timing).
        chs = None
        if not a.ci:
            try:
                import chdb.session
                chs = chdb.session.Session()
            except ImportError:
                print("chDB not installed (pip install chdb): its rows are left out",
                      file=sys.stderr)
        ch_src = f"file('{os.path.join(lvl0, '*', '*.parquet')}', Parquet)"

        def fdq(args):
            return [fd, "--store", store, "--format", "csv"] + args + ["--exact", "--no-cache"]

        questions = [
            ("top 20 srcip by bytes", "srcip", ["top", "--by", "srcip", "-n", "20"],
             ["-s", "srcip/bytes", "-n", "20"], "", "src_addr_v4, src_addr_v6"),
            ("top 20 dstip by bytes", "dstip", ["top", "--by", "dstip", "-n", "20"],
             ["-s", "dstip/bytes", "-n", "20"], "", "dst_addr_v4, dst_addr_v6"),
            ("top 20 dstport by bytes", "dstport", ["top", "--by", "dstport", "-n", "20"],
             ["-s", "dstport/bytes", "-n", "20"], "", "dst_port"),
            ("filter tcp/443, top 20 dstip", "dstip",
             ["top", "--by", "dstip", "-n", "20", "-f", "proto tcp and dst port 443"],
             ["-s", "dstip/bytes", "-n", "20", "proto tcp and dst port 443"],
             "WHERE proto = 6 AND dst_port = 443", "dst_addr_v4, dst_addr_v6"),
        ]
        for q, touched, fq, nq, where, group in questions:
            (t_fd, rss_fd, out_fd), (t_nf, rss_nf, out_nf) = timed_pair(
                fdq(fq), ["nfdump", "-R", nfdir, "-o", "csv", "-q"] + nq, runs)
            ours = flowdrill_top(out_fd)
            note = ""
            if self.bw:
                ceiling = self.bw * 1e9 / TOUCHED[touched]
                note = f"{n / statistics.median(t_fd) / 1e6:.1f} M rec/s; ceiling {ceiling / 1e6:.0f} M"
            self.row(n, q, "flowdrill CLI", t_fd, rss_fd, note)
            self.row(n, q, "nfdump", t_nf, rss_nf)
            if same_count:
                self.check(f"{n}: {q}: nfdump", ours == nfdump_top(out_nf))
            sql = (f"SELECT {group}, sum(bytes) b FROM {src} {where} GROUP BY ALL "
                   f"ORDER BY b DESC LIMIT 20")
            con.execute(sql).fetchall()
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                res = con.execute(sql).fetchall()
                ts.append(time.perf_counter() - t0)
            self.row(n, q, "DuckDB read_parquet", ts, 0.0, "in-process")
            self.check(f"{n}: {q}: DuckDB", [int(r[-1]) for r in res] == [b for _, b, _ in ours])
            if chs is not None:
                # (The keys are grouped on, not printed: 16-byte addresses are not text.)
                sql = (f"SELECT sum(bytes) b FROM {ch_src} {where} GROUP BY {group} "
                       f"ORDER BY b DESC LIMIT 20")
                chs.query(sql, "CSV")
                ts = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    res = str(chs.query(sql, "CSV"))
                    ts.append(time.perf_counter() - t0)
                self.row(n, q, "chDB file(Parquet)", ts, 0.0, "in-process")
                got = [int(line.rsplit(",", 1)[-1]) for line in res.splitlines() if line]
                self.check(f"{n}: {q}: chDB", got == [b for _, b, _ in ours])
        (t_fd, rss_fd, out_fd), (t_nf, rss_nf, _) = timed_pair(
            fdq(["top", "--by", "srcip/24", "-n", "20", "-f", "inet"]),
            ["nfdump", "-R", nfdir, "-q", "-A", "srcip4/24", "-O", "bytes", "inet"], runs)
        self.row(n, "srcip/24 aggregation", "flowdrill CLI", t_fd, rss_fd, "top 20")
        self.row(n, "srcip/24 aggregation", "nfdump", t_nf, rss_nf,
                 "-A srcip4/24 -O bytes (prints every aggregate)")
        res = con.execute(
            f"SELECT src_addr_v4 >> 8, sum(bytes) b FROM {src} WHERE src_addr_v4 IS NOT NULL "
            f"GROUP BY ALL ORDER BY b DESC, 1 LIMIT 20").fetchall()
        self.check(f"{n}: srcip/24: DuckDB",
                   [int(r[1]) for r in res] == [b for _, b, _ in flowdrill_top(out_fd)])
        t_fd, rss_fd, _ = timed(fdq(["hhh", "-d", "src", "-T", "5"]), runs)
        self.row(n, "HHH sources 5% (no peer)", "flowdrill CLI", t_fd, rss_fd,
                 "target: 0.5 s for 10 M records")
        # The other analyses that fold the bins (none of the peers answers these directly).
        for q, args in [("HHH applications 5% (no peer)", ["hhh", "-d", "app", "-T", "5"]),
                        ("series by Brownlee class (no peer)", ["series", "-c", "brownlee"]),
                        ("flow-size distribution (no peer)", ["dist"])]:
            t_fd, rss_fd, _ = timed(fdq(args), runs)
            self.row(n, q, "flowdrill CLI", t_fd, rss_fd, "")

    def month(self, work):
        """Time range scaling over a month stored at the default budget (coarse levels)."""
        fd = self.fd
        store = os.path.join(work, "month")
        subprocess.run([fd, "--quiet", "--store", store, "generate", "--kind", "store",
                        "--flows", self.a.month_flows, "--duration", "30d", "--no-events"],
                       check=True)
        for t in ["-1h", "-6h", "-1d", "-7d", "-30d"]:
            cmd = [fd, "--store", store, "--format", "json", "hhh", "-d", "src", "-T", "5",
                   "-t", t, "--no-cache"]
            times, rss, out = timed(cmd, self.a.runs)
            meta = json.loads(out)["meta"]
            self.rows.append(("month", f"hhh src 5%, time {t}", "flowdrill CLI",
                              statistics.median(times), min(times), max(times), rss,
                              f"level {meta['level']}, {meta['records']} records"))

    def report(self):
        print(f"\nmachine: {os.cpu_count()} cores; memory bandwidth "
              + (f"{self.bw:.1f} GB/s (one core)" if self.bw else "not measured"))
        print(f"median of {1 if self.a.ci else self.a.runs} runs after a warm-up (flowdrill and "
              "nfdump alternating); "
              "seconds (bytes for sizes); peak RSS of one run\n")
        print("| records | question | system | median | min | max | peak MiB | time ÷ flowdrill's | note |")
        print("|---:|---|---|---:|---:|---:|---:|---:|---|")
        ours = {(r[0], r[1]): r[3] for r in self.rows if r[2].startswith("flowdrill")}
        for n, q, s, m, lo, hi, rss, note in self.rows:
            base = ours.get((n, q))
            ratio = ""
            if base and not s.startswith("flowdrill") and q != "bytes per record" and base > 0:
                ratio = f"{m / base:.2f}x"
            size = f"{n:,}" if isinstance(n, int) else n
            print(f"| {size} | {q} | {s} | {m:.3f} | {lo:.3f} | {hi:.3f} | {rss:.0f} | {ratio} | {note} |")
        sizes = sorted({r[0] for r in self.rows if isinstance(r[0], int)})
        if len(sizes) > 1:
            print("\nscaling (flowdrill CLI), time ratio per record-count ratio:")
            for q in sorted({r[1] for r in self.rows if r[2] == "flowdrill CLI"}):
                pts = [(n, ours[(n, q)]) for n in sizes if (n, q) in ours]
                for (n0, t0), (n1, t1) in zip(pts, pts[1:]):
                    k = (t1 / t0) / (n1 / n0)
                    flag = "  SUPER-LINEAR" if k > 1.5 else ""
                    print(f"  {q}: {n0:,} -> {n1:,}: x{t1 / t0:.1f} time for x{n1 / n0:.0f} "
                          f"records ({k:.2f}){flag}")

    def chart(self, path):
        try:
            import matplotlib
        except ImportError:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"],
                           check=True)
            import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 5))
        sizes = sorted({r[0] for r in self.rows if isinstance(r[0], int)})
        for system in ("flowdrill CLI", "nfdump", "DuckDB read_parquet"):
            for q in ("top 20 srcip by bytes", "HHH sources 5% (no peer)"):
                pts = [(r[0], r[3]) for r in self.rows
                       if r[1] == q and r[2] == system and isinstance(r[0], int)]
                if len(pts) > 1:
                    ax.plot(*zip(*pts), marker="o", label=f"{system}: {q}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records")
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"flowdrill benchmark: {', '.join(f'{s:,}' for s in sizes)} records")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        print(f"chart: {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1M,10M", help="records per store, e.g. 1M,10M")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--flowdrill", default="target/release/flowdrill")
    ap.add_argument("--import-runs", type=int,
                    help="imports per size (default: --runs, at most 3; 1 keeps a 100M run short)")
    ap.add_argument("--month", action="store_true", help="also the time-range scaling")
    ap.add_argument("--month-flows", default="2M")
    ap.add_argument("--chart", help="write the scaling chart (PNG)")
    ap.add_argument("--keep", metavar="DIR",
                    help="work in DIR/SIZE and keep it (the store, nfcapd files, Parquet) "
                         "for further runs by hand")
    ap.add_argument("--ci", action="store_true",
                    help="a few seconds: 20k records, one run, answers checked, timings ignored")
    a = ap.parse_args()
    if a.ci:
        a.sizes, a.runs = "20k", 1
    for tool in ("nfcapd", "nfdump"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (scripts/setup-deps)")
    try:
        import duckdb  # noqa: F401
    except ImportError:
        sys.exit("duckdb is not installed (scripts/setup-deps)")
    if not os.path.exists(a.flowdrill):
        sys.exit(f"{a.flowdrill} not found: cargo build --release (or --flowdrill PATH)")
    s = Suite(a)
    for n in [count(x) for x in a.sizes.split(",")]:
        if a.keep:
            work = os.path.join(a.keep, str(n))
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
        else:
            work = tempfile.mkdtemp(prefix="fd-suite-")
        try:
            print(f"== {n:,} records", file=sys.stderr)
            s.size(n, work)
        finally:
            if not a.keep:
                shutil.rmtree(work, ignore_errors=True)
    if a.month:
        work = tempfile.mkdtemp(prefix="fd-suite-month-")
        try:
            s.month(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    s.report()
    if a.chart:
        s.chart(a.chart)
    if s.failures:
        print(f"\n{len(s.failures)} answer(s) differ:\n  " + "\n  ".join(s.failures))
        return 1
    print("\nevery peer gave flowdrill's answers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
