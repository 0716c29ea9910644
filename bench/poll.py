#!/usr/bin/python3
"""Sample a server's /metrics during and after one wrk run (bench/run starts one per run).

Every --interval seconds (0.1) it GETs URL/metrics on one keep-alive connection and writes
a line to --out: the wall time (Unix seconds) and, when the server exposes them,
seckill_journal_lag_seconds, seckill_journal_backlog and the seckill_grabs_total counters
(granted, sold_out, already_held); an absent value is written as "-" (nginx has none, and
a binary older than the SQLite copy behind the grant logs has no lag gauge).

bench/run writes wrk's start and end time (Unix seconds) into --end-file when wrk exits: from then on
the poller samples every --after-interval (0.02) s, so that the time until the SQLite copy
caught up is resolved finely. It stops once --stop-file exists and the backlog was seen at
0 after the end (or --timeout seconds after the end; at once when the stop file says "now":
a run followed by the next one at once), and prints one line for the report:

  POLL samples=N lag_metric=0|1 max_lag_s=X max_lag_after_s=X max_backlog=N
       backlog_after_end=N drain_ms=M start=T end=T

max_lag_s and max_backlog are over the samples up to the end; drain_ms is the time from
the end to the first sample after it with the backlog at 0 (and the lag at 0, when there is
a lag gauge), -1 if that never came; "-" where the server has no such metric.
"""
import argparse
import http.client
import os
import re
import sys
import time
from urllib.parse import urlsplit

WANTED = {
    "seckill_journal_lag_seconds": "lag",
    "seckill_journal_backlog": "backlog",
    'seckill_grabs_total{outcome="granted"}': "granted",
    'seckill_grabs_total{outcome="sold_out"}': "sold_out",
    'seckill_grabs_total{outcome="already_held"}': "already_held",
}
COLUMNS = ["lag", "backlog", "granted", "sold_out", "already_held"]
LINE = re.compile(r"^(\S+)\s+(\S+)$")


class Poller:
    def __init__(self, url):
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.path = (u.path.rstrip("/") or "") + "/metrics"
        self.conn = None

    def get(self):
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                self.conn.request("GET", self.path)
                r = self.conn.getresponse()
                return r.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
        return ""


def parse(text):
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = LINE.match(line)
        if m and m.group(1) in WANTED:
            try:
                out[WANTED[m.group(1)]] = float(m.group(2))
            except ValueError:
                pass
    return out


def read_end(path):
    """(start, end) of the wrk run, once bench/run wrote them."""
    try:
        with open(path) as f:
            fields = f.read().split()
        return (float(fields[0]), float(fields[1])) if len(fields) == 2 else None
    except (OSError, ValueError):
        return None


def read_stop(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--end-file", required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--after-interval", type=float, default=0.02)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    poller = Poller(args.url)
    samples = []
    end = start = None
    drained_at = None
    parent = os.getppid()
    with open(args.out, "w") as out:
        out.write("t\t" + "\t".join(COLUMNS) + "\n")
        while True:
            t = time.time()
            values = parse(poller.get())
            samples.append((t, values))
            out.write(f"{t:.3f}\t" + "\t".join(
                f"{values[c]:g}" if c in values else "-" for c in COLUMNS) + "\n")
            out.flush()  # bench/run waits for the first sample before it starts wrk
            if end is None:
                start, end = read_end(args.end_file) or (None, None)
            if end is not None and t >= end and drained_at is None and "backlog" in values:
                if values["backlog"] == 0 and values.get("lag", 0) == 0:
                    drained_at = t
            if end is not None and os.path.exists(args.stop_file):
                if (drained_at is not None or "backlog" not in values or t - end > args.timeout
                        or read_stop(args.stop_file) == "now"):
                    break
            if os.getppid() != parent:
                break  # bench/run is gone
            interval = args.after_interval if end is not None else args.interval
            time.sleep(max(0.0, interval - (time.time() - t)))
    during = [v for t, v in samples if end is None or t <= end]
    after = [v for t, v in samples if end is not None and t > end]
    has_lag = any("lag" in v for _, v in samples)
    has_backlog = any("backlog" in v for _, v in samples)

    def peak(rows, key):
        vals = [v[key] for v in rows if key in v]
        return max(vals) if vals else 0.0

    first_after = next((v for v in after if "backlog" in v), {})
    fields = [
        f"samples={len(samples)}",
        f"lag_metric={int(has_lag)}",
        f"max_lag_s={peak(during, 'lag'):.3f}" if has_lag else "max_lag_s=-",
        f"max_lag_after_s={peak(after, 'lag'):.3f}" if has_lag else "max_lag_after_s=-",
        f"max_backlog={peak(during, 'backlog'):.0f}" if has_backlog else "max_backlog=-",
        f"backlog_after_end={first_after.get('backlog', 0):.0f}" if has_backlog
        else "backlog_after_end=-",
        (f"drain_ms={1000 * (drained_at - end):.0f}" if drained_at is not None else "drain_ms=-1")
        if has_backlog else "drain_ms=-",
        f"start={start if start is not None else 0:.3f}",
        f"end={end if end is not None else 0:.3f}",
    ]
    print("POLL " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
