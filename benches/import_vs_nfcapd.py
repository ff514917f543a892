#!/usr/bin/env python3
"""Import speed, side by side with nfdump's tools, on the same export datagrams, in one run.

1. `flowdrill generate --kind ipfix` writes an export capture of N flows (the project's own data).
2. flowdrill: `flowdrill import` of that capture into a fresh store (decode + Parquet store with
   sampling and tiers), wall and CPU time, median of R runs.
3. nfdump: nfcapd receives the same UDP payloads on 127.0.0.1 (replayed from the capture, paced so
   that nothing is lost) and writes its files; its CPU time is read from /proc. Then
   `nfdump -R DIR -o csv` reads them back (wall time, median of R runs).
4. The record counts of both must be equal (no loss), then the ratios are printed.

Usage: benches/import_vs_nfcapd.py [--flows 1M] [--runs 3] [--flowdrill target/release/flowdrill]
"""
import argparse, os, shutil, socket, statistics, struct, subprocess, sys, tempfile, time, resource


def pcap_udp_payloads(path):
    """UDP payloads of a classic little-endian Ethernet/IPv4 pcap (what `generate` writes)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        sys.exit("expected a little-endian classic pcap")
    off = 24
    out = []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack_from("<IIII", data, off)
        off += 16
        frame = data[off:off + incl]
        off += incl
        if len(frame) < 42 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        if frame[14 + 9] != 17:
            continue
        udp = 14 + ihl
        ulen = struct.unpack_from(">H", frame, udp + 4)[0]
        out.append(frame[udp + 8: udp + ulen])
    return out


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def nfcapd_collect(payloads, d, every=64):
    """nfcapd receives `payloads` on 127.0.0.1 and writes its files into `d`; its CPU seconds.
    Sends are paced (a pause every `every` datagrams) so that a collector on loopback loses
    nothing; callers check the record count."""
    port = free_port()
    p = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", d, "-t", "3600",
                          "-B", str(8 << 20)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    c0 = cpu_of(p.pid)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for k, pl in enumerate(payloads):
        s.sendto(pl, ("127.0.0.1", port))
        if k % every == every - 1:
            time.sleep(0.0005)
    time.sleep(1.0)
    c1 = cpu_of(p.pid)
    p.terminate()
    p.wait()
    return c1 - c0


def timed(cmd, **kw):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, check=True, **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", default="1M")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--flowdrill", default="target/release/flowdrill")
    a = ap.parse_args()
    for tool in ("nfcapd", "nfdump"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install nfdump)")
    work = tempfile.mkdtemp(prefix="fd-bench-import-")
    try:
        cap = os.path.join(work, "ipfix.pcap")
        subprocess.run([a.flowdrill, "--quiet", "generate", "--kind", "ipfix", "--flows", a.flows,
                        "--no-events", "--duration", "1h", "--out", cap], check=True)
        size = os.path.getsize(cap)

        fd_wall, fd_cpu, fd_records = [], [], None
        for i in range(a.runs):
            store = os.path.join(work, f"store{i}")
            wall, cpu, r = timed([a.flowdrill, "--quiet", "--store", store, "--format", "json",
                                  "import", cap], capture_output=True, text=True)
            import json
            rows = json.loads(r.stdout)
            fd_records = rows[-1]["records"]
            fd_wall.append(wall)
            fd_cpu.append(cpu)
            shutil.rmtree(store)

        payloads = pcap_udp_payloads(cap)
        nf_cpu, nf_read, nf_stat, nf_records = [], [], [], None
        for i in range(a.runs):
            d = os.path.join(work, f"nfcapd{i}")
            os.makedirs(d)
            nf_cpu.append(nfcapd_collect(payloads, d))
            wall, _, r = timed(["nfdump", "-R", d, "-o", "csv", "-q"], stdout=subprocess.PIPE)
            nf_read.append(wall)
            nf_records = sum(1 for line in r.stdout.splitlines() if line and line[:1].isdigit())
            wall, _, _ = timed(["nfdump", "-R", d, "-s", "proto/bytes", "-q"], stdout=subprocess.DEVNULL)
            nf_stat.append(wall)
            shutil.rmtree(d)

        med = statistics.median
        print(f"export capture: {size/1e6:.1f} MB, {len(payloads)} IPFIX datagrams, {fd_records} flow records")
        print(f"records: flowdrill {fd_records}, nfdump {nf_records}" +
              ("" if fd_records == nf_records else "  (MISMATCH: nfcapd lost datagrams)"))
        print(f"{'':34}{'median':>10}{'min':>10}{'max':>10}")
        def row(name, xs):
            print(f"{name:34}{med(xs):10.3f}{min(xs):10.3f}{max(xs):10.3f}")
        row("flowdrill import, wall s", fd_wall)
        row("flowdrill import, CPU s", fd_cpu)
        row("nfcapd receive+write, CPU s", nf_cpu)
        row("nfdump -o csv read, wall s", nf_read)
        row("nfdump -s proto/bytes read, wall s", nf_stat)
        print(f"flowdrill import: {fd_records/med(fd_wall)/1e6:.2f} M records/s wall, "
              f"{fd_records/med(fd_cpu)/1e6:.2f} M records per CPU-second")
        print(f"ratio nfcapd CPU / flowdrill import CPU: {med(nf_cpu)/med(fd_cpu):.2f}x "
              "(below 1: nfcapd is faster)")
        print(f"ratio (nfcapd CPU + nfdump -s read) / flowdrill import wall: "
              f"{(med(nf_cpu)+med(nf_stat))/med(fd_wall):.2f}x")
        print(f"ratio (nfcapd CPU + nfdump -o csv read) / flowdrill import wall: "
              f"{(med(nf_cpu)+med(nf_read))/med(fd_wall):.2f}x")
        return 0 if fd_records == nf_records else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
