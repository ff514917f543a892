#!/usr/bin/env python3
"""Store density on the mix (issue #3's "bytes per stored record on the mix").

For every export capture of ../shared/data/generated/exports (softflowd and pmacct reading the
real-traffic mix) and for the mix capture itself (flows metered by flowdrill / by nfpcapd), this
imports the flows into a fresh flowdrill store at the default settings and counts the bytes of
the level-0 Parquet files (footers included) per stored record, read back with pyarrow. The peer
is nfdump 1.7 on the same flows: nfcapd's files for that exporter, rewritten by
`nfdump -j` (bzip2, the densest compression Debian's nfdump 1.7.1 has: it was built without
zstd) and `nfdump -y` (LZ4, its fast one), bytes per flow as `nfdump -I` counts them.

    python3 benches/store_density.py [--flowdrill target/release/flowdrill] [--data DIR]

Prints a Markdown table (the one in BENCHMARKS.md).
"""

import argparse
import glob
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def level0(store):
    import pyarrow.parquet as pq

    rows = size = 0
    for f in glob.glob(os.path.join(store, "**", "level=0", "**", "*.parquet"), recursive=True):
        rows += pq.ParquetFile(f).metadata.num_rows
        size += os.path.getsize(f)
    return rows, size


def tree_size(d):
    return sum(
        os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs
    )


def flowdrill(fd, tmp, name, capture):
    store = os.path.join(tmp, "st-" + name)
    subprocess.run([fd, "--quiet", "--store", store, "import", capture], check=True,
                   stdout=subprocess.DEVNULL)
    rows, size = level0(store)
    return rows, size, tree_size(store)


def nfdump_rewrite(tmp, name, files, flag):
    """Rewrites nfcapd files compressed with `flag` (-j bzip2, -y LZ4); (flows, bytes)."""
    flows = size = 0
    for i, f in enumerate(sorted(files)):
        src = os.path.join(tmp, f"{name}-{i}.nfcapd")
        if f.endswith(".gz"):
            with gzip.open(f) as a, open(src, "wb") as b:
                shutil.copyfileobj(a, b)
        else:
            shutil.copy(f, src)
        out = src + flag
        subprocess.run(["nfdump", "-r", src, flag, "-w", out], check=True,
                       stdout=subprocess.DEVNULL)
        info = subprocess.run(["nfdump", "-r", out, "-I"], check=True,
                              capture_output=True, text=True).stdout
        m = re.search(r"^Flows:\s+(\d+)", info, re.M)
        flows += int(m.group(1)) if m else 0
        size += os.path.getsize(out)
    return flows, size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flowdrill", default=os.path.join(ROOT, "target", "release", "flowdrill"))
    ap.add_argument("--data", default=os.environ.get("FLOWDRILL_SHARED_DATA",
                                                     os.path.join(ROOT, "..", "shared", "data")))
    a = ap.parse_args()
    data = os.path.abspath(a.data)
    if not os.path.isdir(os.path.join(data, "generated")):
        sys.exit(f"store_density: no shared data at {data} (set --data or FLOWDRILL_SHARED_DATA)")
    if not shutil.which("nfdump"):
        sys.exit("store_density: nfdump is missing (scripts/setup-deps installs it)")

    print("| input | flowdrill records | flowdrill B/record (level 0) | whole store (3 levels) | "
          "nfdump flows | nfdump -j (bzip2) B/flow | nfdump -y (LZ4) B/flow |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for cap in sorted(glob.glob(os.path.join(data, "generated", "exports", "*_devmix.pcap.gz"))):
            name = os.path.basename(cap)[: -len(".pcap.gz")]
            plain = os.path.join(tmp, name + ".pcap")
            with gzip.open(cap) as x, open(plain, "wb") as y:
                shutil.copyfileobj(x, y)
            nf = glob.glob(os.path.join(data, "generated", "nfcapd", name, "nfcapd.*"))
            cases.append((name, plain, nf))
        mix = os.path.join(data, "mix", "dev_mix.pcap")
        if os.path.exists(mix):
            nf = glob.glob(os.path.join(data, "generated", "nfcapd", "nfpcapd_devmix", "nfcapd.*"))
            cases.append(("mix metered (peer: nfpcapd)", mix, nf))
        for name, capture, nf in cases:
            rows, size, whole = flowdrill(a.flowdrill, tmp, re.sub(r"\W", "_", name), capture)
            tag = re.sub(r"\W", "_", name)
            flows, bz = nfdump_rewrite(tmp, tag, nf, "-j") if nf else (0, 0)
            _, lz = nfdump_rewrite(tmp, tag, nf, "-y") if nf else (0, 0)
            fd_b = size / max(rows, 1)
            per = (lambda n: f"{n / flows:.1f}") if flows else (lambda n: "-")
            print(f"| {name} | {rows} | {fd_b:.1f} | {whole / 1e6:.2f} MB | {flows} | "
                  f"{per(bz)} | {per(lz)} |", flush=True)


if __name__ == "__main__":
    main()
