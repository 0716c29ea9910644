#!/usr/bin/python3
"""Draw the charts of one bench/run from the JSON that bench/report.py wrote.

Usage: charts.py RESULTS_JSON    (bench/run calls it after report.py)

Reads RESULTS.json (or RESULTS-distributed.json) and writes PNGs into charts/ next to it,
named after it (charts.chart_files gives the names; RESULTS.md links them):

  STEM-throughput.png  req/s of seckill as a ratio to nginx, per case, store and connection
                       count, with the targets as dashed lines;
  STEM-latency.png     p50 / p90 / p99 of nginx and seckill (wrk's percentiles), per case
                       and connection count;
  STEM-cpu.png         server CPU µs per request, nginx against seckill, seckill's split into
                       during the run and after it (until the server was idle);
  STEM-timeline.png    one all-201 run per store: granted grabs per second over the run
                       (from /metrics sampled every 0.1 s, 0.02 s after the run) and the
                       SQLite copy's backlog and lag, through the time it took to catch up;
  STEM-sustained.png   (with SUSTAINED_SECONDS) req/s, CPU per grant and the copy's worst
                       lag of each back-to-back run against the grants the store held.

matplotlib's Agg backend: no display needed. Only the JSON is read, so the charts show
the numbers RESULTS.md shows.
"""
import json
import os
import sys
from collections import OrderedDict

CHARTS = ("throughput", "latency", "cpu", "timeline", "sustained")
# Target lines of the throughput chart: issue 13's (embedded), the distributed issue's.
TARGETS = {"embedded": {"a": 0.85, "b": 0.95}, "distributed": {"a": 0.4}}


def chart_files(results_md):
    """{chart: path} of the PNGs that belong to RESULTS_MD (or its .json), in charts/."""
    base = os.path.dirname(os.path.abspath(results_md))
    stem = os.path.splitext(os.path.basename(results_md))[0]
    return OrderedDict((name, os.path.join(base, "charts", f"{stem}-{name}.png"))
                       for name in CHARTS)


def series_label(cell, data):
    parts = ["(a) all 201" if cell["case"] == "a" else "(b) sold out 204"]
    if data["show_store"]:
        parts.append(cell["store"])
    if data["show_wait"]:
        parts.append(f"N={cell['wait']}")
    return ", ".join(parts)


def series_keys(data):
    keys = []
    for c in data["cells"]:
        k = (c["case"], c["store"], c["wait"])
        if k not in keys:
            keys.append(k)
    return sorted(keys, key=lambda k: (k[0], int(k[2]), k[1] != "empty"))


def by_key(data):
    out = {}
    for c in data["cells"]:
        out[(c["case"], c["store"], c["wait"], c["conns"])] = c
    return out


def draw_throughput(plt, data, path):
    keys = series_keys(data)
    conns = sorted({c["conns"] for c in data["cells"]})
    cells = by_key(data)
    fig, ax = plt.subplots(figsize=(max(8, 3 + 0.6 * len(keys) * len(conns)), 4.5),
                           layout="constrained")
    width = 0.8 / max(1, len(keys))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, k in enumerate(keys):
        xs, ys = [], []
        for j, c in enumerate(conns):
            cell = cells.get(k + (c,))
            if cell and cell["ratio"] is not None:
                xs.append(j + (i - (len(keys) - 1) / 2) * width)
                ys.append(cell["ratio"])
        label = series_label({"case": k[0], "store": k[1], "wait": k[2]}, data)
        bars = ax.bar(xs, ys, width, label=label, color=colors[i % len(colors)])
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.axhline(1.0, color="black", linewidth=0.8)
    for case, t in TARGETS.get(data["deployment"], {}).items():
        if any(k[0] == case for k in keys):
            ax.axhline(t, color="grey", linestyle="--", linewidth=0.8)
            ax.text(-0.5, t, f" target ({case}) {t}x", fontsize=7, ha="left", va="bottom",
                    color="grey")
    ax.set_xticks(range(len(conns)), [f"{c} connections" for c in conns])
    ax.set_ylabel("seckill req/s ÷ nginx req/s")
    ax.set_xlim(-0.5, len(conns) - 0.5)
    ax.set_title(f"seckill req/s ÷ nginx req/s ({data['deployment']}, mean of the counted runs)",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_latency(plt, data, path):
    keys = series_keys(data)
    conns = sorted({c["conns"] for c in data["cells"]})
    cells = by_key(data)
    fig, axes = plt.subplots(len(keys), len(conns),
                             figsize=(max(7, 3.4 * len(conns)), 0.6 + 2.4 * len(keys)),
                             squeeze=False, layout="constrained")
    pcts = ("p50_ms", "p90_ms", "p99_ms")
    for i, k in enumerate(keys):
        for j, c in enumerate(conns):
            ax = axes[i][j]
            cell = cells.get(k + (c,))
            if not cell:
                ax.set_visible(False)
                continue
            for n, (server, color) in enumerate((("nginx", "#999999"), ("seckill", "#1f77b4"))):
                vals = [cell[server][p] or 0 for p in pcts]
                ax.bar([x + (n - 0.5) * 0.38 for x in range(3)], vals, 0.38, label=server,
                       color=color)
            ax.set_xticks(range(3), ["p50", "p90", "p99"])
            ax.set_yscale("log")
            ax.set_title(f"{series_label(cell, data)}, c={c}", fontsize=8)
            if j == 0:
                ax.set_ylabel("ms (log)")
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Latency percentiles from wrk ({data['deployment']}, mean of the counted "
                 "runs)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_cpu(plt, data, path):
    keys = series_keys(data)
    conns = sorted({c["conns"] for c in data["cells"]})
    cells = by_key(data)
    fig, axes = plt.subplots(1, len(keys), figsize=(max(3.2 * len(keys), 7), 4.2),
                             squeeze=False, sharey=True, layout="constrained")
    for i, k in enumerate(keys):
        ax = axes[0][i]
        for j, c in enumerate(conns):
            cell = cells.get(k + (c,))
            if not cell:
                continue
            n, s = cell["nginx"], cell["seckill"]
            ax.bar(j - 0.2, n["cpu_us"] or 0, 0.38, color="#999999",
                   label="nginx" if j == 0 else None)
            during = s["cpu_during_us"] or 0
            after = s["cpu_after_us"] or 0
            ax.bar(j + 0.2, during, 0.38, color="#1f77b4",
                   label="seckill, during the run" if j == 0 else None)
            if s.get("after_counted"):
                ax.bar(j + 0.2, after, 0.38, bottom=during, color="#ff7f0e",
                       label="seckill, after the run" if j == 0 else None)
            ax.text(j + 0.2, during + after, f"{during + after:.1f}", ha="center",
                    va="bottom", fontsize=7)
        ax.set_xticks(range(len(conns)), [str(c) for c in conns])
        ax.set_xlabel("connections")
        ax.set_title(series_label({"case": k[0], "store": k[1], "wait": k[2]}, data), fontsize=9)
        if i == 0:
            ax.set_ylabel("server CPU µs per request")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Server CPU per answered request ({data['deployment']})", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rates(samples, step=0.25):
    """[(t, granted/s)] over windows of `step` s, from the counter's samples."""
    pts = [(t, g) for t, g, _, _ in samples if g is not None]
    out = []
    if len(pts) < 2:
        return out
    j = 0
    for i in range(1, len(pts)):
        while j < i - 1 and pts[i][0] - pts[j + 1][0] >= step:
            j += 1
        dt = pts[i][0] - pts[j][0]
        if dt >= step * 0.8:
            out.append((pts[i][0] - dt / 2, (pts[i][1] - pts[j][1]) / dt))
            j = i
    return out


def draw_timeline(plt, data, path):
    tls = data["timelines"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True,
                                      layout="constrained")
    if not tls:
        top.text(0.5, 0.5, "no all-201 run with /metrics samples", ha="center",
                 transform=top.transAxes)
    lag_axis = None
    for i, tl in enumerate(tls):
        label = ", ".join(x for x in (tl["store"] if data["show_store"] else "",
                                      f"N={tl['wait']}" if data["show_wait"] else "") if x)
        label = label or "seckill"
        color = plt.rcParams["axes.prop_cycle"].by_key()["color"][i % 10]
        pts = rates(tl["samples"])
        top.plot([t for t, _ in pts], [r for _, r in pts], color=color, label=label)
        top.axvline(tl["end_rel"], color=color, linestyle=":", linewidth=0.8)
        backlog = [(t, b) for t, _, _, b in tl["samples"] if b is not None]
        if backlog:
            bottom.plot([t for t, _ in backlog], [b for _, b in backlog], color=color,
                        label=f"{label}: backlog (changes not yet in SQL)")
        lag = [(t, v) for t, _, v, _ in tl["samples"] if v is not None]
        if lag:
            if lag_axis is None:
                lag_axis = bottom.twinx()
                lag_axis.set_ylabel("lag s (dashed)")
            lag_axis.plot([t for t, _ in lag], [v for _, v in lag], color=color,
                          linestyle="--", label=f"{label}: lag")
        bottom.axvline(tl["end_rel"], color=color, linestyle=":", linewidth=0.8)
    c = tls[0]["conns"] if tls else ""
    top.set_ylabel("granted grabs / s")
    top.set_title(f"One all-201 run at {c} connections: grab rate over 0.25 s windows "
                  "(dotted: wrk's end)", fontsize=9)
    top.legend(fontsize=7)
    bottom.set_ylabel("backlog")
    bottom.set_xlabel("seconds since wrk's start")
    bottom.set_title("The SQL copy behind the answers (/metrics: seckill_journal_backlog, "
                     "seckill_journal_lag_seconds)", fontsize=9)
    handles, labels = bottom.get_legend_handles_labels()
    if lag_axis is not None:
        h2, l2 = lag_axis.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        bottom.legend(handles, labels, fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_sustained(plt, data, path):
    rows = data.get("sustained") or []
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True,
                                      layout="constrained")
    xs = [r["grants_after"] / 1e6 for r in rows]
    top.plot(xs, [r["rps"] for r in rows], marker="o", label="seckill req/s (all 201)")
    top.set_ylabel("req/s")
    top.set_ylim(bottom=0)
    top.set_title("Back-to-back all-201 runs on one seckill as its grants pile up", fontsize=9)
    top.legend(fontsize=7)
    bottom.plot(xs, [r["cpu_us"] for r in rows], marker="o", color="#ff7f0e",
                label="server CPU µs / grant")
    bottom.set_ylabel("µs per grant")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("grants in the store after the run (millions)")
    lag = [(x, r["max_lag_s"]) for x, r in zip(xs, rows) if r["max_lag_s"] is not None]
    handles, labels = bottom.get_legend_handles_labels()
    if lag:
        right = bottom.twinx()
        right.plot([x for x, _ in lag], [v for _, v in lag], marker="s", linestyle="--",
                   color="#2ca02c", label="copy lag max s")
        right.set_ylabel("lag s")
        right.set_ylim(bottom=0)
        h2, l2 = right.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    bottom.legend(handles, labels, fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    json_path = sys.argv[1]
    data = json.load(open(json_path))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    files = chart_files(json_path)
    os.makedirs(os.path.dirname(files["throughput"]), exist_ok=True)
    draw_throughput(plt, data, files["throughput"])
    draw_latency(plt, data, files["latency"])
    draw_cpu(plt, data, files["cpu"])
    draw_timeline(plt, data, files["timeline"])
    if data.get("sustained"):
        draw_sustained(plt, data, files["sustained"])
    else:
        del files["sustained"]
    for path in files.values():
        print(f"charts: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
