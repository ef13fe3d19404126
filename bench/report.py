#!/usr/bin/env python3
"""report.py -- turn the raw result lines of bench/run into a table (PREFIX.md),
every run as CSV (PREFIX.csv) and a plot (PREFIX.png, if matplotlib is there).

Usage: report.py RAW_FILE PREFIX
"""
import csv
import math
import statistics
import sys

PEERS = ["sockkit", "epoll", "libev", "libuv", "libevent"]
MODELS = ["sockkit", "sockkit-pool", "sockkit-thread", "sockkit-process"]
UDP = ["sockkit", "epoll", "libuv"]
COLUMNS = ["suite", "server", "run", "mode", "conns", "size", "depth", "secs", "requests",
           "rps", "p50_us", "p99_us", "p999_us", "errors", "lost", "late", "server_cpu_s",
           "server_us_per_req", "client_cpu_s", "rss_before_kb", "rss_after_kb",
           "bytes_per_conn", "other_cpu_s", "steal_s", "disturbed", "failed"]
COLOR = {"sockkit": "tab:blue", "epoll": "tab:orange", "libev": "tab:green", "libuv": "tab:red",
         "libevent": "tab:purple", "sockkit-pool": "tab:cyan", "sockkit-thread": "tab:olive",
         "sockkit-process": "tab:brown"}
LABEL = {"sockkit": "libsockkit", "epoll": "epoll loop", "libev": "libev", "libuv": "libuv",
         "libevent": "libevent", "sockkit-pool": "pool", "sockkit-thread": "thread/conn",
         "sockkit-process": "fork/conn"}


def load(path):
    meta, rows = {}, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("#"):
                key, _, value = line[1:].strip().partition("=")
                meta[key] = value
            elif line:
                rows.append(dict(kv.split("=", 1) for kv in line.split()))
    return meta, rows


def num(row, key):
    try:
        return float(row[key])
    except (KeyError, ValueError):
        return None


class Point:
    """The runs of one server at one point: medians, best run and spread."""

    def __init__(self, rows):
        ok = [r for r in rows if "failed" not in r]
        # Runs that other load disturbed even after a retry count only where
        # fewer than three clean runs exist; such cells are marked "*".
        clean = [r for r in ok if r.get("disturbed") != "1"]
        self.rows = clean if len(clean) >= 3 or len(clean) == len(ok) else ok
        self.failed = len(rows) - len(ok)
        self.disturbed = len(ok) - len(self.rows) if self.rows is clean else 0
        self.mixed = self.rows is ok and len(clean) < len(ok)
        self.errors = sum(int(num(r, "errors") or 0) for r in self.rows)
        self.lost = sum(int(num(r, "lost") or 0) for r in self.rows)

    def values(self, key):
        return [v for v in (num(r, key) for r in self.rows) if v is not None and v > 0]

    def median(self, key):
        v = self.values(key)
        return statistics.median(v) if v else None

    def best(self, key):
        v = self.values(key)
        if not v:
            return None
        return min(v) if key == "server_us_per_req" else max(v)

    def spread(self, key):
        """(max - min) / median, in percent."""
        v = self.values(key)
        return 100 * (max(v) - min(v)) / statistics.median(v) if len(v) > 1 else 0.0

    def rel_se(self, key):
        """Relative standard error of the median (1.2533 sigma / sqrt(n))."""
        v = self.values(key)
        if len(v) < 3:
            return None
        return 1.2533 * statistics.stdev(v) / statistics.median(v) / math.sqrt(len(v))


def group(rows, suite):
    out = {}
    for r in rows:
        if r.get("suite") != suite:
            continue
        key = (int(num(r, "conns") or 0), int(num(r, "depth") or 1), r["server"])
        out.setdefault(key, []).append(r)
    return {k: Point(v) for k, v in out.items()}


def fmt(v, digits=1):
    if v is None:
        return "–"
    if v >= 100000:
        return f"{v / 1000:.0f}k"
    if v >= 10000:
        return f"{v / 1000:.1f}k"
    return f"{v:.{digits}f}"


def cell(p, key, digits=2):
    if p is None or p.median(key) is None:
        return "–"
    return f"{fmt(p.median(key), digits)} ({p.spread(key):.0f}%){'*' if p.mixed else ''}"


def ratio(a, b, key):
    """Median ratio and best-run ratio of a to b, or None."""
    if not a or not b or not a.median(key) or not b.median(key):
        return None
    return a.median(key) / b.median(key), a.best(key) / b.best(key)


def resolution(a, b, key):
    """Two standard errors of the ratio of medians, in percent."""
    sa, sb = a.rel_se(key), b.rel_se(key)
    if sa is None or sb is None:
        return None
    return 200 * math.sqrt(sa * sa + sb * sb)


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def points_of(groups):
    return sorted({(c, d) for c, d, _ in groups})


def metric_tables(groups, servers, key, title, digits):
    present = [s for s in servers if any(k[2] == s for k in groups)]
    head = ["conns", "depth"] + [LABEL[s] for s in present]
    rows = []
    for c, d in points_of(groups):
        if not any((c, d, s) in groups for s in present[1:]):
            continue
        rows.append([str(c), str(d)] + [cell(groups.get((c, d, s)), key, digits) for s in present])
    return f"{title}\n\n" + table(head, rows)


def ratio_table(groups, servers, key, title, point_filter=None):
    others = [s for s in servers[1:] if any(k[2] == s for k in groups)]
    head = ["conns", "depth"] + [f"vs {LABEL[s]}" for s in others] + ["resolution"]
    rows = []
    for c, d in points_of(groups):
        if point_filter and not point_filter(c, d):
            continue
        sk = groups.get((c, d, servers[0]))
        cells, res = [], []
        for s in others:
            p = groups.get((c, d, s))
            r = ratio(sk, p, key)
            cells.append(f"{r[0]:.2f} [{r[1]:.2f}]" if r else "–")
            if r and resolution(sk, p, key) is not None:
                res.append(resolution(sk, p, key))
        if all(x == "–" for x in cells):
            continue
        rows.append([str(c), str(d)] + cells + [f"±{max(res):.0f}%" if res else "–"])
    return f"{title}\n\n" + table(head, rows)


def verdict(r, res, bar):
    """Where the ratio r stands against the bar, given the resolution res
    (in percent): resolved either way, or not."""
    if r is None:
        return "not measured"
    if res is None:
        return "met" if r <= bar else "over the bar, unresolved (too few runs)"
    if r + res / 100 <= bar:
        return "met"
    if r - res / 100 > bar:
        return "MISSED"
    side = "meets" if r <= bar else "is over"
    return f"median {side} the bar; unresolved"


def targets(tcp, udp, idle):
    out = []
    key = "server_us_per_req"
    for c, d in points_of(tcp):
        if c < 64:
            continue
        sk, ep = tcp.get((c, d, "sockkit")), tcp.get((c, d, "epoll"))
        r = ratio(sk, ep, key)
        res = resolution(sk, ep, key) if r else None
        worse = []
        for s in ("libev", "libuv", "libevent"):
            p = tcp.get((c, d, s))
            rp = ratio(sk, p, key)
            if rp and verdict(rp[0], resolution(sk, p, key), 1.0) == "MISSED":
                worse.append(f"{LABEL[s]} ({rp[0]:.2f})")
        res_text = f", resolution ±{res:.0f}%" if res is not None else ""
        out.append(f"- TCP {c} conns, depth {d}: CPU/request {r[0]:.2f} x epoll loop "
                   f"(best runs {r[1]:.2f}{res_text}) -> "
                   f"{verdict(r[0], res, 1.05)} (bar 1.05); "
                   + ("above " + ", ".join(worse) + " beyond noise" if worse
                      else "not above libev, libuv or libevent beyond noise")
                   if r else f"- TCP {c} conns, depth {d}: not measured")
    for c, _, _ in sorted({k for k in udp if k[2] == "sockkit"}):
        if c < 64:
            continue
        sk, ep, uv = (udp.get((c, 1, s)) for s in ("sockkit", "epoll", "libuv"))
        r, ru = ratio(sk, ep, key), ratio(sk, uv, key)
        if not r:
            continue
        res = resolution(sk, ep, key)
        text = (f"- UDP {c} sockets: CPU/datagram {r[0]:.2f} x recvmmsg loop (best runs "
                f"{r[1]:.2f}" + (f", resolution ±{res:.0f}%" if res is not None else "")
                + f") -> {verdict(r[0], res, 1.05)} (bar 1.05)")
        if ru:
            text += (f"; {ru[0]:.2f} x libuv -> "
                     f"{verdict(ru[0], resolution(sk, uv, key), 1.0)} (bar: below)")
        out.append(text)
    sk = idle.get("sockkit")
    if sk:
        b = num(sk, "bytes_per_conn")
        out.append(f"- {sk['conns']} idle TCP connections: {b:.0f} bytes each -> "
                   + ("met" if b <= 64 else "MISSED") + " (bar 64)")
    return "\n".join(out) + "\n"


def resolution_text(tcp, udp):
    key = "server_us_per_req"
    spreads, res = [], []
    for groups, servers in ((tcp, PEERS), (udp, UDP)):
        for (c, d, s), p in groups.items():
            if c < 64 or s not in servers or len(p.values(key)) < 2:
                continue
            spreads.append(p.spread(key))
            sk = groups.get((c, d, "sockkit"))
            if s != "sockkit" and sk and resolution(sk, p, key) is not None:
                res.append(resolution(sk, p, key))
    if not spreads:
        return "One run per point: no spread, and no resolution to speak of.\n"
    text = (f"At 64 connections or sockets and more, the runs of one server at one point "
            f"spread (max - min) by a median of {statistics.median(spreads):.0f} % of their "
            f"median (largest {max(spreads):.0f} %).")
    if res:
        text += (f" Two standard errors of the ratio of two medians come to a median of "
                 f"±{statistics.median(res):.0f} % (largest ±{max(res):.0f} %): the table "
                 f"resolves differences in CPU per request of about "
                 f"{statistics.median(res):.0f} % and no finer; ratios within that of 1.00 "
                 "are ties.")
    return text + "\n"


def write_markdown(path, meta, tcp, udp, idle, rows):
    md = ["# libsockkit against peer event libraries\n",
          f"{meta.get('date', '?')}, commit {meta.get('commit', '?')}; "
          f"{meta.get('cpu', '?')}, {meta.get('cpus', '?')} CPUs, "
          f"{meta.get('memory_gib', '?')} GiB, kernel {meta.get('kernel', '?')}; "
          f"{meta.get('pinning', '')}.\n",
          f"Each point: {meta.get('runs')} runs of {meta.get('duration')} s "
          f"(after {meta.get('warmup')} s of warm-up), servers interleaved; cells are "
          "medians with the spread (max - min) / median in parentheses. "
          f"Messages are {meta.get('size')} bytes, newline included. "
          "CPU is the server's user + system time over the measured window "
          "(/proc/PID/stat, children included) divided by the requests served.\n"]
    errors = sum(p.errors for g in (tcp, udp) for p in g.values())
    failed = sum(p.failed for g in (tcp, udp) for p in g.values())
    runs = sum(len(p.rows) + p.disturbed for g in (tcp, udp) for p in g.values())
    dropped = sum(p.disturbed for g in (tcp, udp) for p in g.values())
    dirty = sum(1 for g in (tcp, udp) for p in g.values() for r in p.rows
                if r.get("disturbed") == "1")
    md.append(f"Every reply was checked byte for byte: {errors} wrong or missing replies, "
              f"{failed} failed runs.\n")
    md.append("The machine may be shared. A run in which other processes or the hypervisor "
              "took more than a tenth of a CPU is *disturbed*; it is tried once more and the "
              f"less disturbed attempt kept. Of {runs} runs, {dropped + dirty} stayed "
              f"disturbed: {dropped} were left out of medians that had three clean runs "
              f"without them, and {dirty} count in cells marked * (fewer than three clean "
              "runs).\n")

    md.append("## TCP line echo\n")
    md.append(metric_tables(tcp, PEERS, "server_us_per_req",
                            "Server CPU per request (µs; lower is better):", 2))
    md.append(ratio_table(tcp, PEERS, "server_us_per_req",
                          "libsockkit's CPU per request over each peer's (below 1: libsockkit "
                          "spends less; medians, best runs in brackets; resolution: two "
                          "standard errors of the ratio):"))
    md.append(metric_tables(tcp, PEERS, "rps", "Requests per second (higher is better):", 0))
    md.append(ratio_table(tcp, PEERS, "rps",
                          "libsockkit's requests per second over each peer's:"))
    md.append(metric_tables(tcp, PEERS, "p99_us", "p99 latency (µs):", 0))

    md.append("## Concurrency models (libsockkit, TCP)\n")
    model_groups = {k: v for k, v in tcp.items()
                    if any((k[0], k[1], m) in tcp for m in MODELS[1:])}
    epoll_ref = {k: v for k, v in model_groups.items() if k[2] in MODELS + ["epoll"]}
    md.append(metric_tables(epoll_ref, MODELS + ["epoll"], "server_us_per_req",
                            "Server CPU per request (µs), all on one CPU:", 2))
    md.append(metric_tables(epoll_ref, MODELS + ["epoll"], "rps", "Requests per second:", 0))
    md.append(metric_tables(epoll_ref, MODELS + ["epoll"], "p99_us", "p99 latency (µs):", 0))

    md.append("## UDP echo (one datagram in flight per socket)\n")
    md.append(metric_tables(udp, UDP, "server_us_per_req",
                            "Server CPU per datagram (µs):", 2).replace("| conns |", "| sockets |"))
    md.append(ratio_table(udp, UDP, "server_us_per_req",
                          "libsockkit's CPU per datagram over each peer's:")
              .replace("| conns |", "| sockets |"))
    md.append(metric_tables(udp, UDP, "rps", "Datagrams per second:", 0)
              .replace("| conns |", "| sockets |"))
    lost = {s: sum(p.lost for k, p in udp.items() if k[2] == s) for s in UDP}
    md.append("Datagrams lost (no reply within 200 ms), all runs: "
              + ", ".join(f"{LABEL[s]} {n}" for s, n in lost.items()) + ".\n")

    if idle:
        n = next(iter(idle.values()))["conns"]
        md.append(f"## Memory: {n} idle TCP connections\n")
        md.append("Server VmRSS with one connection open, then with all of them (each has "
                  "echoed one request), and the difference per connection:\n")
        md.append(table(["server", "RSS before (KiB)", "RSS after (KiB)", "bytes/connection"],
                        [[LABEL[s], idle[s]["rss_before_kb"], idle[s]["rss_after_kb"],
                          f"{float(idle[s]['bytes_per_conn']):.0f}"]
                         for s in PEERS if s in idle]))
    md.append("## Resolution\n")
    md.append(resolution_text(tcp, udp))
    md.append("## Targets\n")
    md.append(targets(tcp, udp, idle))
    with open(path, "w") as f:
        f.write("\n".join(md))


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def write_plot(path, meta, tcp, udp, idle):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib not found; no plot", file=sys.stderr)
        return

    def bars(ax, groups, servers, key, title, xlabel="conns/depth", log=False):
        pts = [p for p in points_of(groups) if any((p[0], p[1], s) in groups for s in servers[1:])]
        present = [s for s in servers if any(k[2] == s for k in groups)]
        width = 0.8 / max(len(present), 1)
        for i, s in enumerate(present):
            xs, ys, lo, hi = [], [], [], []
            for j, (c, d) in enumerate(pts):
                p = groups.get((c, d, s))
                if not p or p.median(key) is None:
                    continue
                v = p.values(key)
                xs.append(j + (i - (len(present) - 1) / 2) * width)
                ys.append(p.median(key))
                lo.append(p.median(key) - min(v))
                hi.append(max(v) - p.median(key))
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=LABEL[s], color=COLOR[s])
        if log:
            ax.set_yscale("log")
        ax.set_xticks(range(len(pts)))
        ax.set_xticklabels([f"{c}" if xlabel == "sockets" else f"{c}/{d}" for c, d in pts])
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        if pts and present:
            ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)

    model_groups = {k: v for k, v in tcp.items()
                    if any((k[0], k[1], m) in tcp for m in MODELS[1:])}
    fig, axes = plt.subplots(4, 2, figsize=(13, 16))
    bars(axes[0][0], tcp, PEERS, "server_us_per_req",
         "TCP: server CPU per request (µs, log scale)", log=True)
    bars(axes[0][1], tcp, PEERS, "rps", "TCP: requests per second")
    bars(axes[1][0], model_groups, MODELS + ["epoll"], "server_us_per_req",
         "Models: server CPU per request (µs, log scale)", log=True)
    bars(axes[1][1], model_groups, MODELS + ["epoll"], "rps", "Models: requests per second")
    bars(axes[2][0], udp, UDP, "server_us_per_req", "UDP: server CPU per datagram (µs)",
         "sockets")
    bars(axes[2][1], udp, UDP, "rps", "UDP: datagrams per second", "sockets")
    ax = axes[3][0]
    names = [s for s in PEERS if s in idle]
    values = [float(idle[s]["bytes_per_conn"]) for s in names]
    ax.bar([LABEL[s] for s in names], values, color=[COLOR[s] for s in names])
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(bottom=10)
    ax.set_title("Server memory per idle TCP connection (bytes, log scale)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    axes[3][1].axis("off")
    axes[3][1].text(0, 0.9, f"{meta.get('date', '')}  commit {meta.get('commit', '')}\n"
                    f"{meta.get('cpu', '')}, {meta.get('cpus', '')} CPUs\n"
                    f"{meta.get('pinning', '')}\n"
                    f"{meta.get('runs')} runs x {meta.get('duration')} s per point;\n"
                    "bars: medians, whiskers: min-max", va="top", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    meta, rows = load(sys.argv[1])
    tcp, udp = group(rows, "tcp"), group(rows, "udp")
    idle = {r["server"]: r for r in rows if r.get("suite") == "idle" and "failed" not in r}
    prefix = sys.argv[2]
    write_csv(prefix + ".csv", rows)
    write_markdown(prefix + ".md", meta, tcp, udp, idle, rows)
    write_plot(prefix + ".png", meta, tcp, udp, idle)


if __name__ == "__main__":
    main()
