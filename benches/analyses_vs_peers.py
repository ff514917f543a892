#!/usr/bin/env python3
"""The analyses side by side with nfdump and DuckDB, on the same flows, in one run.

1. `flowdrill generate --kind ipfix` writes an export capture of N flows (the project's data).
2. The same datagrams go to nfcapd on 127.0.0.1 (nfdump's files) and through `flowdrill import`
   into an unsampled store (its Parquet files are what DuckDB reads).
3. Each question is asked of each system R times (after one warm-up run, so every system reads
   from the page cache); medians with min and max. Answers are checked for equality where the
   systems answer the same question (top-N lists), so a fast wrong answer cannot pass.

   - flowdrill CLI: one process per question, `--exact --no-cache` (reads the Parquet bins).
   - flowdrill engine, warm: the same analyses in one long-lived engine, as the console and the
     daemon run them (`crates/query/examples/warm.rs`): columns already decoded in memory.
   - nfdump: `nfdump -R DIR -s ...` / `-A ...` with the same filter.
   - DuckDB: the equivalent GROUP BY over the store's Parquet files (`read_parquet`), and over a
     table loaded into memory first.

Usage: benches/analyses_vs_peers.py [--flows 5M] [--runs 5] [--flowdrill target/release/flowdrill]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from import_vs_nfcapd import pcap_udp_payloads, nfcapd_collect  # noqa: E402

LINKS = '[defaults]\nbin = "5m"\nbudget = "100GB"\n'


def timed(cmd, runs):
    """Wall times of `runs` runs after one warm-up; the last run's stdout."""
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, check=True, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        out = r.stdout
    return times, out


def nfdump_top(text):
    """(key, bytes, flows) of `nfdump -s ... -o csv` rows."""
    rows = []
    lines = [l for l in text.splitlines() if l and l[0].isdigit()]
    for l in lines:
        f = l.split(",")
        rows.append((f[4], int(f[9]), int(f[5])))
    return rows


def flowdrill_top(text):
    rows = []
    for l in text.split("\n\n")[0].splitlines()[1:]:
        f = l.split(",")
        rows.append((f[1], int(f[4]), int(f[2])))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", default="5M")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--flowdrill", default="target/release/flowdrill")
    ap.add_argument("--warm", default="target/release/examples/warm")
    a = ap.parse_args()
    for tool in ("nfcapd", "nfdump"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install nfdump)")
    try:
        import duckdb
    except ImportError:
        sys.exit("duckdb is not installed (pip install duckdb)")
    fd = a.flowdrill
    work = tempfile.mkdtemp(prefix="fd-bench-an-")
    try:
        cap = os.path.join(work, "ipfix.pcap")
        subprocess.run([fd, "--quiet", "generate", "--kind", "ipfix", "--flows", a.flows,
                        "--no-events", "--duration", "1h", "--out", cap], check=True)
        links = os.path.join(work, "links.toml")
        with open(links, "w") as f:
            f.write(LINKS)
        store = os.path.join(work, "store")
        subprocess.run([fd, "--quiet", "--store", store, "import", "--links", links, cap],
                       check=True)
        nfdir = os.path.join(work, "nfcapd")
        os.makedirs(nfdir)
        payloads = pcap_udp_payloads(cap)
        nfcapd_collect(payloads, nfdir, every=32)  # paced for a busy machine
        os.remove(cap)
        nf_bytes = sum(os.path.getsize(os.path.join(nfdir, x)) for x in os.listdir(nfdir))
        info = subprocess.run(["nfdump", "-R", nfdir, "-I"], check=True, capture_output=True,
                              text=True).stdout
        nf_flows = int(next(l.split(":")[1] for l in info.splitlines() if l.startswith("Flows:")))
        fd_flows = json.loads(subprocess.run(
            [fd, "--store", store, "--format", "json", "top", "--exact", "--no-cache", "-m", "flows",
             "-n", "1"], check=True, capture_output=True, text=True).stdout)["meta"]["total"]
        print(f"flows: nfcapd received {nf_flows}, flowdrill stored {fd_flows:.0f}"
              + ("" if nf_flows == round(fd_flows) else "  (nfcapd LOST datagrams: nfdump's answers will differ)"))
        st_bytes = sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in
                       os.walk(os.path.join(store, "link=default", "level=0")) for x in fs)

        results = []

        def row(name, system, times, note=""):
            results.append((name, system, statistics.median(times), min(times), max(times), note))

        def fdq(args):
            return [fd, "--store", store, "--format", "csv"] + args + ["--exact", "--no-cache"]

        parquet = os.path.join(store, "link=default", "level=0", "**", "*.parquet")
        con = duckdb.connect()
        con.execute(f"CREATE TABLE flows AS SELECT * FROM read_parquet('{parquet}')")
        n_rows = con.execute("SELECT count(*) FROM flows").fetchone()[0]

        def duck(name, sql_file, sql_mem):
            for label, sql in (("DuckDB read_parquet", sql_file), ("DuckDB in-memory table", sql_mem)):
                con.execute(sql).fetchall()
                ts = []
                for _ in range(a.runs):
                    t0 = time.perf_counter()
                    res = con.execute(sql).fetchall()
                    ts.append(time.perf_counter() - t0)
                row(name, label, ts)
            return res

        src = f"read_parquet('{parquet}')"
        questions = [
            ("top 20 srcip by bytes", ["top", "--by", "srcip", "-n", "20"],
             ["-s", "srcip/bytes", "-n", "20"], "", "src_addr_v4, src_addr_v6"),
            ("top 20 dstport by bytes", ["top", "--by", "dstport", "-n", "20"],
             ["-s", "dstport/bytes", "-n", "20"], "", "dst_port"),
            ("filter tcp/443, top 20 dstip", ["top", "--by", "dstip", "-n", "20", "-f",
                                              "proto tcp and dst port 443"],
             ["-s", "dstip/bytes", "-n", "20", "proto tcp and dst port 443"],
             "WHERE proto = 6 AND dst_port = 443", "dst_addr_v4, dst_addr_v6"),
        ]
        for name, fq, nq, where, group in questions:
            t_fd, out_fd = timed(fdq(fq), a.runs)
            t_nf, out_nf = timed(["nfdump", "-R", nfdir, "-o", "csv", "-q"] + nq, a.runs)
            same = flowdrill_top(out_fd) == nfdump_top(out_nf)
            row(name, "flowdrill CLI", t_fd, "same answer as nfdump" if same else "ANSWER DIFFERS")
            row(name, "nfdump", t_nf)
            res = duck(name,
                       f"SELECT {group}, sum(bytes) b FROM {src} {where} GROUP BY ALL ORDER BY b DESC LIMIT 20",
                       f"SELECT {group}, sum(bytes) b FROM flows {where} GROUP BY ALL ORDER BY b DESC LIMIT 20")
            fd_bytes = [b for _, b, _ in flowdrill_top(out_fd)]
            if [int(r[-1]) for r in res] != fd_bytes:
                results.append((name, "DuckDB", 0, 0, 0, "ANSWER DIFFERS"))
        # Prefix aggregation: nfdump -A prints every aggregate; flowdrill and DuckDB the top 20.
        t_fd, _ = timed(fdq(["top", "--by", "srcip/24", "-n", "20"]), a.runs)
        row("srcip/24 aggregation", "flowdrill CLI", t_fd, "top 20")
        t_nf, _ = timed(["nfdump", "-R", nfdir, "-q", "-A", "srcip4/24", "-O", "bytes"], a.runs)
        row("srcip/24 aggregation", "nfdump", t_nf, "-A srcip4/24 -O bytes (every aggregate)")
        t_fd, _ = timed(fdq(["hhh", "-d", "src", "-T", "5"]), a.runs)
        row("HHH sources 5% (no peer has it)", "flowdrill CLI", t_fd)

        warm = {}
        if os.path.exists(a.warm):
            r = subprocess.run([a.warm, store, str(a.runs + 1)], check=True, capture_output=True,
                               text=True)
            for l in r.stdout.splitlines():
                j = json.loads(l)
                warm[j["analysis"]] = j
        for name, key in (("top 20 srcip by bytes", "top srcip bytes"),
                          ("filter tcp/443, top 20 dstip", "filter tcp/443 + top dstip"),
                          ("srcip/24 aggregation", "top srcip/24 bytes"),
                          ("HHH sources 5% (no peer has it)", "hhh src 5%"),
                          ("HHH sources 5%, 100k-record sample", "hhh src 5%, 100k-record sample")):
            if key in warm:
                j = warm[key]
                results.append((name, "flowdrill engine, warm", j["warm_median_s"], j["warm_min_s"],
                                j["warm_max_s"], f"first run {j['first_s']:.3f} s"))

        print(f"{n_rows} flow records (one hour); nfcapd files {nf_bytes/1e6:.1f} MB "
              f"({nf_bytes/n_rows:.1f} B/record), flowdrill level-0 Parquet {st_bytes/1e6:.1f} MB "
              f"({st_bytes/n_rows:.1f} B/record)")
        print(f"median of {a.runs} runs after a warm-up; seconds\n")
        print("| question | system | median | min | max | ratio to nfdump | note |")
        print("|---|---|---:|---:|---:|---:|---|")
        nf = {q: m for q, s, m, *_ in results if s == "nfdump"}
        for q, s, m, lo, hi, note in results:
            ratio = f"{nf[q]/m:.1f}x" if q in nf and m > 0 and s != "nfdump" else ""
            print(f"| {q} | {s} | {m:.3f} | {lo:.3f} | {hi:.3f} | {ratio} | {note} |")
        return 1 if any("DIFFERS" in r[5] for r in results) else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
