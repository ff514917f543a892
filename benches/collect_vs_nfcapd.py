#!/usr/bin/env python3
"""Live collection speed and memory, flowdrill collect side by side with nfcapd, in one run.

1. `flowdrill generate --kind ipfix` writes two export captures of 5 minutes of traffic (one
   bin, looped): a normal mix (--no-events) and the demo scenario with its events (a spoofed-source SYN flood, a scan, a burst of tiny UDP
   streams: distinct flows).
2. Rate ladder: `flowdrill replay` sends the normal capture (looped) for S seconds at R records/s
   to one collector at a time on 127.0.0.1: `flowdrill collect` (records counted by its metrics
   endpoint) and nfcapd (records counted by nfdump afterwards); loss = records sent - received.
   The best rate with zero loss is reported for each.
3. Same stream: one replay sends every datagram to both collectors at once, at the best rate
   both took alone (4 processes on 2 cores).
4. Flood: the events capture, looped for S seconds at a fixed rate, to both at once; resident
   memory (VmRSS) of each, sampled every 0.5 s: first, peak and last.

Everything is on 127.0.0.1, bounded in time, and stops by itself. Run as root, the bench raises
net.core.rmem_max to 32 MiB for its duration (and says so) so that both collectors get the 32 MiB
receive buffer they ask for; otherwise the kernel caps both at the current rmem_max. Each line
shows the load average: other work on the same cores shows up as losses and wall-time noise.

Usage: benches/collect_vs_nfcapd.py [--flows 1M] [--seconds 6] [--rates 250k,500k,1M,1.5M,2M]
       [--flood-rate 500k] [--flowdrill target/release/flowdrill]
"""
import argparse, os, shutil, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from import_vs_nfcapd import cpu_of, free_port  # noqa: E402  (shared helpers)


def count(s):
    s = s.strip()
    mult = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}.get(s[-1], 1)
    return int(float(s[:-1] if mult != 1 else s) * mult)


def rss_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    full = "flowdrill_collect_" + name
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        k, _, v = line.rpartition(" ")
        if k.split("{")[0] == full:
            total += float(v)
    return total


class Flowdrill:
    name = "flowdrill collect"

    def __init__(self, exe, work, tag, max_bin_records="1M"):
        self.store = os.path.join(work, f"store-{tag}")
        self.port, self.mport = free_port(), free_port()
        links = os.path.join(work, "links.toml")
        if not os.path.exists(links):
            with open(links, "w") as f:
                f.write('[defaults]\nbin = "5m"\nbudget = "10MB"\n')  # the default budget
        self.p = subprocess.Popen(
            [exe, "--store", self.store, "collect", "--listen", f"127.0.0.1:{self.port}",
             "--metrics", f"127.0.0.1:{self.mport}", "--links", links,
             "--max-bin-records", max_bin_records, "--recv-buffer", "32M", "--for", "300s",
             # The capture spans one 5-minute bin and is looped: no bin closes during a step
             # (a live collector closes one per 5 minutes; replaying hours of bins in a second
             # would measure a burst of Parquet writes instead of receiving).
             "--close-after", "1h"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in self.p.stderr:
            if "ready" in line:
                break
        self.c0 = cpu_of(self.p.pid)

    def received(self):
        return int(metric(self.mport, "records_decoded_total"))

    def settle(self, want):
        """Waits until the records stop coming (or all arrived); the count."""
        last, t = -1, time.time()
        while time.time() - t < 20:
            n = self.received()
            if n >= want or n == last:
                return n
            last = n
            time.sleep(0.5)
        return self.received()

    def stop(self):
        cpu = cpu_of(self.p.pid) - self.c0
        self.p.terminate()
        self.p.communicate(timeout=120)
        return cpu


class Nfcapd:
    name = "nfcapd"

    def __init__(self, work, tag):
        self.dir = os.path.join(work, f"nfcapd-{tag}")
        os.makedirs(self.dir)
        self.port = free_port()
        self.p = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(self.port), "-w", self.dir,
                                   "-t", "3600", "-B", str(32 << 20)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        self.c0 = cpu_of(self.p.pid)

    def settle(self, want):
        time.sleep(1.0)
        return None

    def stop(self):
        cpu = cpu_of(self.p.pid) - self.c0
        self.p.terminate()
        self.p.wait(timeout=120)
        return cpu

    def received(self):
        r = subprocess.run(["nfdump", "-R", self.dir, "-q", "-o", "fmt:%pkt"],
                           stdout=subprocess.PIPE, text=True, check=True)
        return sum(1 for line in r.stdout.splitlines() if line.strip())


RMEM = 32 << 20


def raise_rmem():
    """Raises net.core.rmem_max to RMEM when root; returns the old value to restore (or None)."""
    path = "/proc/sys/net/core/rmem_max"
    try:
        old = int(open(path).read())
        if old >= RMEM:
            return None
        with open(path, "w") as f:
            f.write(str(RMEM))
        return old
    except OSError:
        return None


def restore_rmem(old):
    if old is not None:
        with open("/proc/sys/net/core/rmem_max", "w") as f:
            f.write(str(old))


def load():
    return os.getloadavg()[0]


def replay(exe, cap, ports, rate, seconds):
    cmd = [exe, "replay", cap, "--rate", str(rate), "--loop", "0", "--duration", f"{seconds}s"]
    for p in ports:
        cmd += ["--to", f"127.0.0.1:{p}"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
    words = r.stdout.split()
    sent = int(words[words.index("datagrams,") + 1])
    secs = float(words[words.index("in") + 1])
    return sent, secs


def one(kind, a, work, cap, rate, tag):
    c = Flowdrill(a.flowdrill, work, tag) if kind == "flowdrill" else Nfcapd(work, tag)
    sent, secs = replay(a.flowdrill, cap, [c.port], rate, a.seconds)
    got = c.settle(sent)
    cpu = c.stop()
    if got is None:
        got = c.received()
    return sent, secs, got, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", default="1M")
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--rates", default="250k,500k,1M,1.5M,2M")
    ap.add_argument("--flood-rate", default="500k")
    ap.add_argument("--flowdrill", default="target/release/flowdrill")
    a = ap.parse_args()
    for tool in ("nfcapd", "nfdump"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install nfdump)")
    work = tempfile.mkdtemp(prefix="fd-bench-collect-")
    old_rmem = raise_rmem()
    try:
        normal = os.path.join(work, "normal.pcap")
        flood = os.path.join(work, "events.pcap")
        subprocess.run([a.flowdrill, "--quiet", "generate", "--kind", "ipfix", "--flows", a.flows,
                        "--no-events", "--duration", "5m", "--out", normal], check=True)
        subprocess.run([a.flowdrill, "--quiet", "generate", "--kind", "ipfix", "--flows", a.flows,
                        "--duration", "5m", "--out", flood], check=True)
        rmem = int(open("/proc/sys/net/core/rmem_max").read())
        print(f"machine: {os.cpu_count()} cores; {a.seconds:g} s per step; capture of {a.flows} flows, looped; "
              f"net.core.rmem_max {rmem} bytes" + (f" (raised from {old_rmem} for this run)" if old_rmem else ""))
        print(f"{'collector':20}{'rate asked':>12}{'sent/s':>12}{'received':>12}{'lost':>10}{'CPU s':>8}"
              f"{'CPU us/rec':>11}{'load':>6}")
        best = {}
        for kind in ("flowdrill", "nfcapd"):
            for i, r in enumerate(a.rates.split(",")):
                la = load()
                sent, secs, got, cpu = one(kind, a, work, normal, count(r), f"{kind}{i}")
                lost = sent - got
                print(f"{kind:20}{r:>12}{sent/secs:12.0f}{got:12d}{lost:10d}{cpu:8.2f}"
                      f"{1e6 * cpu / max(got, 1):11.3f}{la:6.1f}", flush=True)
                if lost <= 0:
                    best[kind] = max(best.get(kind, 0), sent / secs)
        for kind in ("flowdrill", "nfcapd"):
            print(f"best rate with zero loss, {kind}: {best.get(kind, 0):.0f} records/s")

        # Same stream to both at once.
        both = min(best.values()) if len(best) == 2 else count(a.rates.split(",")[0])
        f, n = Flowdrill(a.flowdrill, work, "both"), Nfcapd(work, "both")
        sent, secs = replay(a.flowdrill, normal, [f.port, n.port], int(both), a.seconds)
        fg = f.settle(sent)
        n.settle(sent)
        fc, nc = f.stop(), n.stop()
        ng = n.received()
        print(f"same stream to both at {sent/secs:.0f} records/s ({sent} records): flowdrill lost {sent-fg} "
              f"(CPU {fc:.2f} s), nfcapd lost {sent-ng} (CPU {nc:.2f} s); load {load():.1f}")

        # Flood: memory of both on the events capture.
        f, n = Flowdrill(a.flowdrill, work, "flood"), Nfcapd(work, "flood")
        rss = {"flowdrill": [], "nfcapd": []}
        rp = subprocess.Popen([a.flowdrill, "replay", flood, "--rate", a.flood_rate, "--loop", "0",
                               "--duration", f"{3 * a.seconds}s", "--to", f"127.0.0.1:{f.port}",
                               "--to", f"127.0.0.1:{n.port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while rp.poll() is None:
            rss["flowdrill"].append(rss_of(f.p.pid))
            rss["nfcapd"].append(rss_of(n.p.pid))
            time.sleep(0.5)
        out = rp.stdout.read().split()
        sent = int(out[out.index("datagrams,") + 1])
        fg = f.settle(sent)
        z = metric(f.mport, "z")
        f.stop()
        n.settle(sent)
        n.stop()
        ng = n.received()
        mb = lambda xs: f"first {xs[0]/1e6:.0f} MB, peak {max(xs)/1e6:.0f} MB, last {xs[-1]/1e6:.0f} MB"
        # RSS over time, for flatness: the samples at 10 %, 50 % and 90 % of the flood.
        at = lambda xs: ", ".join(f"{xs[int(q * (len(xs) - 1))]/1e6:.0f}" for q in (0.1, 0.5, 0.9))
        print(f"flood ({sent} records in {3 * a.seconds:g} s at {a.flood_rate}/s asked, to both):")
        print(f"  flowdrill RSS {mb(rss['flowdrill'])} (10/50/90 %: {at(rss['flowdrill'])} MB); received {fg}, current z {z:.0f}")
        print(f"  nfcapd    RSS {mb(rss['nfcapd'])} (10/50/90 %: {at(rss['nfcapd'])} MB); received {ng}")
    finally:
        restore_rmem(old_rmem)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
