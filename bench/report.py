#!/usr/bin/python3
"""Turn one bench/run's raw files into the results table, RESULTS.md and RESULTS.json.

bench/run writes WORK/manifest.tsv, one row per line, tab-separated:
  run     CONNS CASE REP SERVER WRK_OUTPUT [METRICS_BEFORE METRICS_AFTER [WAIT [STORE POLL_TSV]]]
  series  CONNS SETUP_JSON METRICS_FINAL DB_GRANTS DB_SOLD SECKILL_LOG EXIT_STATUS [WAIT [INFO]]
(WAIT: the series' --redis-wait-replicas, 0 when absent; STORE: empty or stored; INFO: the
series' key=value file: base_grants, setup_in_process, start_s, rss_*_kb, stop_s, fill,
restart_start_s, check, restart_exit) and WORK/machine.txt (key: value lines). A wrk output
holds wrk's RESULT line and bench/run's OTHERCPU, AFTER (CPU after the run until idle),
POLL (bench/poll.py's summary), RSS and, distributed, SQLLAG lines.

A run with Redis replicas or several WAIT values gets a column N in the tables and issue
15's target (N=0 with a replica >= 0.5x nginx at 256 connections). The embedded deployment
gets a column store and issue 13's targets.

Usage: report.py WORK RESULTS_MD
Writes RESULTS_MD, and next to it RESULTS_MD's stem + ".json" (what bench/charts.py draws;
the charts' names are charts.chart_files(RESULTS_MD), linked from RESULTS_MD).
Exit status 0 when every correctness check passed (targets are reported, not enforced).
"""
import json
import os
import re
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from charts import chart_files  # noqa: E402  (names only; matplotlib is not imported)

TARGET_CONNS = 256
STORE_ORDER = {"-": 0, "empty": 0, "stored": 1}
# Issue 13's targets for the embedded deployment, at TARGET_CONNS.
T_A_RATIO = 0.85           # all-201 req/s, empty and stored, x nginx
T_CPU_GROWTH = 0.15        # CPU per grant, stored over empty, at most +15 %
T_B_RATIO = 0.95           # sold-out req/s x nginx
T_B_P99 = 1.5              # sold-out p99 x nginx's
T_RESTART_S = 10.0         # SIGTERM until /healthz answers 200 again, with the stored grants
T_RSS_PER_GRANT = 64.0     # bytes of RSS per stored grant
T_LAG_S = 1.0              # the SQLite copy's lag during a run
T_CAUGHT_UP_S = 1.0        # backlog 0 this long after the run at most


def parse_kv(text):
    out = {}
    for kv in text.split():
        if "=" in kv:
            k, v = kv.split("=", 1)
            out[k] = v
    return out


def num(v):
    """A float, or None for bench/poll.py's '-' (metric absent)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def parse_result(path):
    text = open(path).read()
    m = re.search(r"^RESULT (.*)$", text, re.M)
    if not m:
        return None, text
    out = {k: float(v) for k, v in parse_kv(m.group(1)).items()}
    m = re.search(r"^SQLLAG ms=(\d+) rows=(\S*) granted=(\S*)$", text, re.M)
    if m:
        out["sql_lag_ms"] = float(m.group(1))
        out["sql_lag_converged"] = float(m.group(2) == m.group(3) and m.group(2) != "")
    for prefix, line in (("other_", "OTHERCPU"), ("after_", "AFTER"), ("poll_", "POLL"),
                         ("rss_", "RSS")):
        m = re.search(rf"^{line} (.*)$", text, re.M)
        if m:
            for k, v in parse_kv(m.group(1)).items():
                out[prefix + k] = num(v)
    return out, text


def parse_metrics(path):
    """{(name, frozenset(labels)): value} for the counters we read."""
    out = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r'^([a-zA-Z_:]+)(\{([^}]*)\})?\s+(\S+)$', line.strip())
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def grab_counts(metrics):
    """({status: n}, {outcome: n}) for the grab route."""
    statuses, outcomes = {}, {}
    for (name, labels), v in metrics.items():
        d = dict(labels)
        if name == "seckill_requests_total" and d.get("route") == "grab":
            statuses[d["status"]] = v
        elif name == "seckill_grabs_total":
            outcomes[d["outcome"]] = v
    return statuses, outcomes


def diff(after, before):
    keys = set(after) | set(before)
    return {k: int(after.get(k, 0) - before.get(k, 0)) for k in keys
            if after.get(k, 0) != before.get(k, 0)}


def fmt_counts(d):
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.items())) or "none"


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def cpu_per_request(results, part="all"):
    """Server CPU (all its processes and threads) per answered request, in µs: during the
    run ("during"), after it until the server was idle ("after"), or both ("all")."""
    secs = 0.0
    for r in results:
        during = r.get("other_server_s", float("nan"))
        after = r.get("after_server_s") or 0.0
        secs += {"during": during, "after": after}.get(part, during + after)
    reqs = sum(r["requests"] for r in results)
    return 1e6 * secs / reqs if reqs else float("nan")


def ms(us):
    return f"{us / 1000:.2f}"


def read_info(path):
    info = {}
    if path and os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                info[k] = v
    if "fill" in info:
        info["fill"] = json.loads(info["fill"])
    return info


def no_nan(value):
    """The same data with NaN (a mean of nothing) as null: JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [no_nan(v) for v in value]
    return value


def verdict(ok):
    return "PASS" if ok else "MISS"


def read_timeline(path):
    """[(t, granted, lag, backlog)] from a bench/poll.py TSV (None where absent)."""
    rows = []
    if not path or not os.path.exists(path):
        return rows
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            v = dict(zip(head, line.rstrip("\n").split("\t")))
            rows.append((float(v["t"]), num(v.get("granted")), num(v.get("lag")),
                         num(v.get("backlog"))))
    return rows


def main():
    work, results_md = sys.argv[1], sys.argv[2]
    machine = {}
    for line in open(f"{work}/machine.txt"):
        if ": " in line:
            k, v = line.rstrip("\n").split(": ", 1)
            machine[k] = v
    runs, series = [], []
    for line in open(f"{work}/manifest.tsv"):
        f = line.rstrip("\n").split("\t")
        if f[0] == "run":
            runs.append(f[1:])
        elif f[0] == "series":
            series.append(f[1:])

    distributed = "distributed" in machine.get("seckill", "")
    replicas = int(machine.get("redis replicas", "0").split(";")[0])
    waits = {r[7] if len(r) > 7 and r[7] else "0" for r in runs}
    show_wait = replicas > 0 or waits != {"0"}
    stores = {r[8] if len(r) > 8 and r[8] else "empty" for r in runs}
    show_store = not distributed

    def where(conns, wait, store):
        """How messages name a series: c=256, c=256 N=1, c=256 stored."""
        return (f"c={conns}" + (f" N={wait}" if show_wait else "") +
                (f" {store}" if show_store else ""))

    problems, warnings = [], []
    by_cell = defaultdict(lambda: defaultdict(list))  # (conns, wait, store, case) -> server -> [res]
    # (conns, wait, store, case, rep) -> attempt ("rep.attempt") -> server -> result
    attempts = defaultdict(lambda: defaultdict(dict))
    detail_rows = []
    polls = {}                      # (conns, wait, store, case, "rep.attempt") -> poll TSV
    a_grants = defaultdict(int)     # (conns, wait, store) -> 201s /metrics counted in case (a)
    a_seconds = defaultdict(float)  # (conns, wait, store) -> seconds of case (a) seckill runs
    sustained = []                  # the back-to-back runs (SUSTAINED_SECONDS), in order
    for r in runs:
        conns, case, rep, server, out = r[:5]
        wait = r[7] if len(r) > 7 and r[7] else "0"
        store = r[8] if len(r) > 8 and r[8] else "empty"
        at = where(conns, wait, store)
        res, text = parse_result(out)
        if res is None:
            problems.append(f"{server} {at} case {case} run {rep}: wrk printed no RESULT "
                            f"line: {text.strip()[-400:]!r}")
            continue
        key = (int(conns), wait, store)
        errs = {k[4:]: int(v) for k, v in res.items() if k.startswith("err_") and v}
        note = []
        if errs:
            note.append("wrk errors " + fmt_counts(errs))
            if server == "seckill" or errs.keys() - {"read"}:
                problems.append(f"{server} {at} case {case} run {rep}: wrk errors "
                                f"{fmt_counts(errs)}")
        if case == "a" and server == "seckill" and res.get("wrapped"):
            problems.append(f"{server} {at} case a run {rep}: {int(res['wrapped'])} requests "
                            "wrapped around the pair slice (repeated pairs)")
        if res.get("after_idle") == 0:
            warnings.append(f"{server} {at} case {case} run {rep}: still busy "
                            f"{res.get('after_wait_ms', 0) / 1000:.0f} s after the run; its "
                            "CPU after the run is counted up to then")
        if server == "seckill" and len(r) >= 7 and r[5] and r[6]:
            st, oc = (diff(a, b) for a, b in zip(grab_counts(parse_metrics(r[6])),
                                                 grab_counts(parse_metrics(r[5]))))
            note.append("grab statuses " + fmt_counts(st) + "; outcomes " + fmt_counts(oc))
            want_status, want_outcome = ("201", "granted") if case == "a" else ("204", "sold_out")
            if set(st) != {want_status} or set(oc) != {want_outcome}:
                problems.append(f"seckill {at} case {case} run {rep}: expected only "
                                f"{want_status} / {want_outcome}, got statuses {fmt_counts(st)}; "
                                f"outcomes {fmt_counts(oc)}")
            # The server may answer a few more requests than wrk counted (in flight at the end).
            if st.get(want_status, 0) < res["requests"]:
                problems.append(f"seckill {at} case {case} run {rep}: wrk counted "
                                f"{int(res['requests'])} answers, /metrics only "
                                f"{st.get(want_status, 0)} {want_status}s")
            if case == "a":
                a_grants[key] += st.get("201", 0)
                a_seconds[key] += res["duration_us"] / 1e6
            if store == "sustained":
                granted = grab_counts(parse_metrics(r[6]))[1].get("granted", 0)
                sustained.append({"run": int(rep.split(".")[0]), "conns": int(conns),
                                  "res": res, "grants_after": int(granted),
                                  "grants_run": st.get("201", 0)})
                continue
        attempts[key + (case, rep.split(".")[0])][rep][server] = res
        if server == "seckill" and len(r) > 9:
            polls[key + (case, rep)] = r[9]
        detail_rows.append((int(conns), wait, store, case, rep, server, res, "; ".join(note)))

    # Of the attempts of each A/B pair, the least disturbed complete one counts.
    counted = set()
    for cell_rep, tries in attempts.items():
        complete = {k: v for k, v in tries.items() if set(v) == {"nginx", "seckill"}}
        if not complete:
            continue
        best = min(complete, key=lambda k: (max(r.get("other_pct", 0) for r in complete[k].values()), k))
        counted.add(cell_rep[:4] + (best,))
        for server, res in complete[best].items():
            by_cell[cell_rep[:4]][server].append(res)

    series_rows = []
    for s in series:
        conns, setup_json, mfinal, db_grants, db_sold, log, exit_status = s[:7]
        wait = s[7] if len(s) > 7 and s[7] else "0"
        info = read_info(s[8] if len(s) > 8 else "")
        store = info.get("store", "empty")
        at = where(conns, wait, store)
        conns = int(conns)
        setup = json.load(open(setup_json))
        st, oc = grab_counts(parse_metrics(mfinal))
        granted_total = int(oc.get("granted", 0))
        db_grants = int(db_grants) if db_grants.isdigit() else db_grants
        db_sold = int(db_sold) if db_sold.isdigit() else db_sold
        # Rows in SQLite before the seckill that ran the cases started (the embedded store's
        # setup ran on a seckill of its own, the stored one's past grants were written in).
        base = int(info.get("base_grants", 0))
        in_process = int(info.get("setup_in_process", 1))
        expect_a = granted_total - (setup["setup_grants"] if in_process else 0)
        if db_grants != base + granted_total:
            problems.append(f"series {at}: grants table holds {db_grants} rows, {base} before "
                            f"the start + {granted_total} grants /metrics counted = "
                            f"{base + granted_total}")
        if db_sold != db_grants:
            problems.append(f"series {at}: sum(amount - remaining) over coupons is "
                            f"{db_sold}, grants table has {db_grants} rows")
        if expect_a != a_grants[(conns, wait, store)]:
            problems.append(f"series {at}: case (a) runs counted "
                            f"{a_grants[(conns, wait, store)]} 201s, the server counted "
                            f"{expect_a} grants")
        if exit_status != "0":
            problems.append(f"series {at}: seckill exit status on SIGTERM: {exit_status}")
        if "restart_exit" in info and info["restart_exit"] != "0":
            problems.append(f"series {at}: restarted seckill's exit status on SIGTERM: "
                            f"{info['restart_exit']}")
        if not distributed:
            check = info.get("check", "")
            if not check.startswith("CHECK ok=1"):
                problems.append(f"series {at}: after the restart, the API does not show every "
                                f"grant in SQLite (bench/check_store.py: {check or 'no result'})")
        log_lines = [l.rstrip() for l in open(log, errors="replace")] if log else []
        if replicas and wait == "0":
            # By design (issue 15): a master with replicas and N = 0 is warned about at start.
            log_lines = [l for l in log_lines if "replica" not in l.lower()]
        if log_lines:
            problems.append(f"series {at}: seckill logged {len(log_lines)} lines at warn+; "
                            f"first: {log_lines[:3]}")
        # Committed by the case (a) runs: the rows beyond those before the start and the
        # setup's own grant when the setup ran on this seckill.
        durable = (db_grants - base - (setup["setup_grants"] if in_process else 0)
                   if isinstance(db_grants, int) else 0)
        stop_s, restart_start = num(info.get("stop_s")), num(info.get("restart_start_s"))
        series_rows.append({
            "conns": conns, "wait": wait, "store": store, "setup": setup, "durable": durable,
            "seconds": a_seconds[(conns, wait, store)], "base_grants": base,
            "stored_grants": info.get("fill", {}).get("stored_grants", 0),
            "fill_s": info.get("fill", {}).get("seconds"),
            "db_grants": db_grants, "start_s": num(info.get("start_s")), "stop_s": stop_s,
            "restart_start_s": restart_start,
            "restart_s": stop_s + restart_start if stop_s is not None and restart_start is not None
            else None,
            "rss_start_kb": num(info.get("rss_start_kb")), "rss_end_kb": num(info.get("rss_end_kb")),
            "rss_restart_kb": num(info.get("rss_restart_kb")), "check": info.get("check", ""),
        })
    # Bytes of RSS per stored grant: the stored store's server against the empty store's,
    # both just started on the same setup (the one has the past grants, the other not).
    by_series = {(r["conns"], r["wait"], r["store"]): r for r in series_rows}
    for r in series_rows:
        empty = by_series.get((r["conns"], r["wait"], "empty"))
        r["bytes_per_stored_grant"] = None
        if (r["store"] == "stored" and empty and r["stored_grants"] and r["rss_start_kb"]
                and empty["rss_start_kb"]):
            r["bytes_per_stored_grant"] = (1024 * (r["rss_start_kb"] - empty["rss_start_kb"])
                                           / r["stored_grants"])
        elif r["store"] == "sustained" and r["durable"] and r["rss_start_kb"] and r["rss_end_kb"]:
            # Grown by its own runs, through the API: what a grant costs the live server.
            r["bytes_per_stored_grant"] = (1024 * (r["rss_end_kb"] - r["rss_start_kb"])
                                           / r["durable"])

    # ---- per cell ----
    cells = sorted(by_cell, key=lambda k: (k[0], int(k[1]), STORE_ORDER.get(k[2], 9), k[3]))
    cell_data = {}
    for key in cells:
        n, s = by_cell[key]["nginx"], by_cell[key]["seckill"]
        d = {}
        for name, rs in (("nginx", n), ("seckill", s)):
            d[name] = {
                "rps": mean([x["rps"] for x in rs]),
                "p50_ms": mean([x["p50_us"] for x in rs]) / 1000,
                "p90_ms": mean([x["p90_us"] for x in rs]) / 1000,
                "p99_ms": mean([x["p99_us"] for x in rs]) / 1000,
                "cpu_us": cpu_per_request(rs), "cpu_during_us": cpu_per_request(rs, "during"),
                "cpu_after_us": cpu_per_request(rs, "after"),
                "after_counted": all("after_server_s" in x for x in rs),
            }
        lags = [x["poll_max_lag_s"] for x in s if x.get("poll_max_lag_s") is not None]
        drains = [x["poll_drain_ms"] for x in s if x.get("poll_drain_ms") is not None]
        backlogs = [x["poll_max_backlog"] for x in s if x.get("poll_max_backlog") is not None]
        d["seckill"].update({
            "max_lag_s": max(lags) if lags else None,
            "lag_metric": any(x.get("poll_lag_metric") for x in s),
            # -1: the backlog never came down to 0 within bench/poll.py's timeout.
            "drain_ms": (-1.0 if any(v < 0 for v in drains) else max(drains)) if drains else None,
            "max_backlog": max(backlogs) if backlogs else None,
            "rss_before_kb": min((x["rss_before_kb"] for x in s if x.get("rss_before_kb")),
                                 default=None),
            "rss_after_kb": max((x["rss_after_kb"] for x in s if x.get("rss_after_kb")),
                                default=None),
        })
        nr, sr = d["nginx"]["rps"], d["seckill"]["rps"]
        n99, s99 = d["nginx"]["p99_ms"], d["seckill"]["p99_ms"]
        d["ratio"] = sr / nr if nr else float("nan")
        d["p99_ratio"] = s99 / n99 if n99 else float("nan")
        cell_data[key] = d

    def cell(conns, store, case, wait="0"):
        return cell_data.get((conns, wait, store if show_store else "empty", case))

    total_grants = sum(r["durable"] for r in series_rows)
    total_seconds = sum(r["seconds"] for r in series_rows)
    durable_rate = total_grants / total_seconds if total_seconds else 0.0

    # ---- targets ----
    verdicts = []      # lines for RESULTS.md
    targets = []       # the same, structured, for RESULTS.json
    marks = defaultdict(list)  # cell key -> short target marks for the table's last column

    def target(text, value, ok, key=None, mark=None):
        """ok: True / False / None (n/a)."""
        word = "n/a" if ok is None else verdict(ok)
        verdicts.append(f"- {text}: {value} -> {word}")
        targets.append({"target": text, "value": value, "verdict": word})
        if key is not None and mark is not None:
            marks[key].append(f"{mark} {word}")

    ra = cell(TARGET_CONNS, "empty", "a")
    lags = [r[6]["sql_lag_ms"] for r in detail_rows if "sql_lag_ms" in r[6]]
    if distributed:
        # The distributed issue's targets: (a) >= 0.4x nginx and >= 3x the original Go
        # service (which measured 0.16x nginx on this machine kind), SQL lag <= 1 s.
        if ra:
            target(f"(a) req/s >= 0.4x nginx at {TARGET_CONNS} connections",
                   f"{ra['ratio']:.2f}x", ra["ratio"] >= 0.4)
            target(f"(a) req/s >= 3x the original Go service, which measured 0.16x nginx on "
                   f"this machine kind (so >= 0.48x)",
                   f"{ra['ratio']:.2f}x = {ra['ratio'] / 0.16:.1f}x the original",
                   ra["ratio"] >= 0.48)
        if ra and replicas:
            # Issue 15: with a replica on this machine and no waiting for it.
            target(f"(a) N=0 with {replicas} replica(s) >= 0.5x nginx at {TARGET_CONNS} "
                   "connections", f"{ra['ratio']:.2f}x", ra["ratio"] >= 0.5)
        for wait in sorted(waits - {"0"}, key=int):
            rw = cell(TARGET_CONNS, "empty", "a", wait)
            if rw:
                versus = f", {rw['ratio'] / ra['ratio']:.2f}x N=0's" if ra else ""
                verdicts.append(f"- (info) (a) N={wait} at {TARGET_CONNS} connections: "
                                f"{rw['ratio']:.2f}x nginx{versus}; p99 {rw['p99_ratio']:.2f}x "
                                "nginx's")
        if lags:
            unconverged = [r for r in detail_rows if r[6].get("sql_lag_converged") == 0.0]
            target("SQL lag after the load stops <= 1 s",
                   f"worst {max(lags) / 1000:.2f} s over {len(lags)} runs, median "
                   f"{sorted(lags)[len(lags) // 2] / 1000:.2f} s",
                   max(lags) <= 1000 and not unconverged)
            for r in unconverged:
                problems.append(f"seckill {where(r[0], r[1], r[2])} case a run {r[4]}: MariaDB "
                                "never held every grant within 30 s")
    else:
        at = f"at {TARGET_CONNS} connections"
        have_stored = "stored" in stores
        for store in ("empty", "stored"):
            c = cell(TARGET_CONNS, store, "a")
            if c:
                target(f"(a) all-201 req/s >= {T_A_RATIO}x nginx, {store} store, {at}",
                       f"{c['ratio']:.2f}x", c["ratio"] >= T_A_RATIO,
                       (TARGET_CONNS, "0", store, "a"), f">= {T_A_RATIO}x:")
            elif store == "empty" or have_stored:
                target(f"(a) all-201 req/s >= {T_A_RATIO}x nginx, {store} store, {at}",
                       "not measured", None)
        ce, cs = cell(TARGET_CONNS, "empty", "a"), cell(TARGET_CONNS, "stored", "a")
        if ce and cs:
            growth = cs["seckill"]["cpu_us"] / ce["seckill"]["cpu_us"] - 1
            target(f"(a) server CPU per grant (after the run included) grows <= "
                   f"{T_CPU_GROWTH:.0%} from the empty to the stored store, {at}",
                   f"{ce['seckill']['cpu_us']:.1f} -> {cs['seckill']['cpu_us']:.1f} µs "
                   f"({growth:+.0%})", growth <= T_CPU_GROWTH,
                   (TARGET_CONNS, "0", "stored", "a"), f"CPU <= +{T_CPU_GROWTH:.0%}:")
        else:
            target(f"(a) server CPU per grant grows <= {T_CPU_GROWTH:.0%} from the empty to "
                   f"the stored store, {at}", "not measured (needs both stores)", None)
        for store in ("empty", "stored"):
            c = cell(TARGET_CONNS, store, "b")
            if not c:
                if store == "empty" or have_stored:
                    target(f"(b) sold-out req/s >= {T_B_RATIO}x and p99 <= {T_B_P99}x nginx's, "
                           f"{store} store, {at}", "not measured", None)
                continue
            target(f"(b) sold-out req/s >= {T_B_RATIO}x nginx, {store} store, {at}",
                   f"{c['ratio']:.2f}x", c["ratio"] >= T_B_RATIO,
                   (TARGET_CONNS, "0", store, "b"), f">= {T_B_RATIO}x:")
            target(f"(b) sold-out p99 <= {T_B_P99}x nginx's, {store} store, {at}",
                   f"{c['p99_ratio']:.2f}x", c["p99_ratio"] <= T_B_P99,
                   (TARGET_CONNS, "0", store, "b"), f"p99 <= {T_B_P99}x:")
        stored_series = [r for r in series_rows if r["store"] == "stored"]
        restarts = [r for r in series_rows if r["store"] in ("stored", "sustained")
                    and r["restart_s"] is not None]
        if restarts:
            worst = max(restarts, key=lambda r: r["restart_s"])
            target(f"restart with the stored grants (SIGTERM until /healthz answers 200 "
                   f"again) <= {T_RESTART_S:.0f} s",
                   f"worst {worst['restart_s']:.2f} s (stop {worst['stop_s']:.2f} s + start "
                   f"{worst['restart_start_s']:.2f} s, {worst['db_grants']:,} grants, "
                   f"{worst['store']} store, c={worst['conns']})", worst["restart_s"] <= T_RESTART_S)
        else:
            target(f"restart with the stored grants <= {T_RESTART_S:.0f} s",
                   "not measured (no stored store)", None)
        per_grant = [r["bytes_per_stored_grant"] for r in stored_series
                     if r["bytes_per_stored_grant"] is not None]
        if per_grant:
            target(f"RSS per stored grant <= {T_RSS_PER_GRANT:.0f} B",
                   f"worst {max(per_grant):.1f} B (the stored store's server against the "
                   "empty one's, both just started)", max(per_grant) <= T_RSS_PER_GRANT)
        else:
            target(f"RSS per stored grant <= {T_RSS_PER_GRANT:.0f} B",
                   "not measured (needs both stores)", None)
        at_target = [(k, d) for k, d in cell_data.items() if k[0] == TARGET_CONNS]
        with_lag = [(k, d) for k, d in at_target if d["seckill"]["max_lag_s"] is not None]
        if with_lag:
            k, d = max(with_lag, key=lambda kd: kd[1]["seckill"]["max_lag_s"])
            target(f"SQLite copy's lag during the runs <= {T_LAG_S:.0f} s, {at}",
                   f"worst {d['seckill']['max_lag_s']:.3f} s ({k[2]} store, case {k[3]})",
                   d["seckill"]["max_lag_s"] <= T_LAG_S)
        elif at_target:
            target(f"SQLite copy's lag during the runs <= {T_LAG_S:.0f} s, {at}",
                   "n/a (this binary has no seckill_journal_lag_seconds)", None)
        with_drain = [(k, d) for k, d in at_target if d["seckill"]["drain_ms"] is not None]
        if with_drain:
            never = [kd for kd in with_drain if kd[1]["seckill"]["drain_ms"] < 0]
            k, d = never[0] if never else max(with_drain,
                                              key=lambda kd: kd[1]["seckill"]["drain_ms"])
            gauge = "" if d["seckill"]["lag_metric"] else \
                " (the backlog only: no seckill_journal_lag_seconds in this binary)"
            value = ("never within 60 s" if never else
                     f"worst {d['seckill']['drain_ms'] / 1000:.2f} s") + \
                f" ({k[2]} store, case {k[3]}){gauge}"
            target(f"SQLite copy caught up (backlog 0) within {T_CAUGHT_UP_S:.0f} s after the "
                   f"run, {at}", value,
                   not never and d["seckill"]["drain_ms"] <= 1000 * T_CAUGHT_UP_S)
        elif at_target:
            target(f"SQLite copy caught up within {T_CAUGHT_UP_S:.0f} s after the run, {at}",
                   "n/a (no seckill_journal_backlog)", None)
        target("sustained durable grants >= 20,000/s",
               f"{durable_rate:,.0f}/s ({total_grants:,} grants committed in "
               f"{total_seconds:.1f} s of case (a) runs)", durable_rate >= 20000)
        if TARGET_CONNS not in {k[0] for k in cell_data}:
            verdicts.append(f"- (the targets are at {TARGET_CONNS} connections; this run had "
                            "none)")
    verdicts.append(f"- correctness (case (a) only 201 and every one durable, case (b) only "
                    f"204 sold-out, no wrk errors"
                    f"{'' if distributed else ', every grant loaded after the restart'}): "
                    f"{'PASS' if not problems else 'FAIL'}")
    targets.append({"target": "correctness", "value": f"{len(problems)} problems",
                    "verdict": "PASS" if not problems else "FAIL"})
    others = []
    for k, d in sorted(cell_data.items(), key=lambda kd: cells.index(kd[0])):
        if k[0] != TARGET_CONNS or distributed:
            others.append(f"- (info) {k[3]} at {k[0]} connections"
                          f"{f' N={k[1]}' if show_wait else ''}"
                          f"{f', {k[2]} store' if show_store else ''}: req/s "
                          f"{d['ratio']:.2f}x, p99 {d['p99_ratio']:.2f}x")
    used_rows = [r for r in detail_rows if (r[0], r[1], r[2], r[3], r[4]) in counted]
    disturbed = [r for r in used_rows if r[6].get("other_pct", 0) > 5]
    if disturbed:
        worst = max(r[6]["other_pct"] for r in disturbed)
        others.append(f"- WARNING: other processes used more than 5 % of the machine during "
                      f"{len(disturbed)} of the {len(used_rows)} counted runs (up to {worst:.0f} %): "
                      "those numbers are disturbed; rerun on a quiet machine")
    others += [f"- WARNING: {w}" for w in warnings]

    # ---- the tables ----
    wait_head = "| N " if show_wait else ""
    store_head = "| store " if show_store else ""
    ncols = 11 + show_wait + show_store
    cpu_head = ("server CPU µs/req nginx / seckill (+ after the run)" if not distributed
                else "server CPU µs/req nginx / seckill")
    header = ("| conns " + wait_head + store_head + "| case | nginx req/s | seckill req/s | "
              "ratio | nginx p50 ms | seckill p50 ms | nginx p99 ms | seckill p99 ms | p99 ratio "
              f"| {cpu_head} |" + ("" if distributed else f" targets (at {TARGET_CONNS}) |"))
    lines = [header, "|" + "---|" * (ncols + (0 if distributed else 1))]
    for key in cells:
        conns, wait, store, case = key
        d = cell_data[key]
        n, s = d["nginx"], d["seckill"]
        label = "a (new pair, 201)" if case == "a" else "b (sold out, 204)"
        wait_cell = f" {wait} |" if show_wait else ""
        store_cell = f" {store} |" if show_store else ""
        if distributed:
            cpu = f"{n['cpu_us']:.1f} / {s['cpu_us']:.1f}"
        else:
            cpu = (f"{n['cpu_us']:.1f} / {s['cpu_us']:.1f} (+{s['cpu_after_us']:.1f})")
        line = (f"| {conns} |{wait_cell}{store_cell} {label} | {n['rps']:,.0f} | {s['rps']:,.0f} | "
                f"{d['ratio']:.2f} | {n['p50_ms']:.2f} | {s['p50_ms']:.2f} | {n['p99_ms']:.2f} | "
                f"{s['p99_ms']:.2f} | {d['p99_ratio']:.2f} | {cpu} |")
        if not distributed:
            line += f" {'; '.join(marks.get(key, [])) or ''} |"
        lines.append(line)
    table = "\n".join(lines)

    copy_lines = []
    if not distributed:
        copy_lines = ["| conns | store | case | seckill CPU µs/req during / after the run "
                      "| wait for idle s | copy lag max s during | backlog max during "
                      "| caught up after s | RSS MB before → after |",
                      "|" + "---|" * 9]
        for key in cells:
            conns, wait, store, case = key
            s = cell_data[key]["seckill"]
            rs = by_cell[key]["seckill"]
            wait_s = max((x.get("after_wait_ms") or 0) for x in rs) / 1000
            lag = f"{s['max_lag_s']:.3f}" if s["max_lag_s"] is not None else "n/a"
            backlog = f"{s['max_backlog']:,.0f}" if s["max_backlog"] is not None else "n/a"
            drain = ("n/a" if s["drain_ms"] is None else
                     "never (60 s)" if s["drain_ms"] < 0 else f"{s['drain_ms'] / 1000:.2f}")
            rss = (f"{s['rss_before_kb'] / 1024:.0f} → {s['rss_after_kb'] / 1024:.0f}"
                   if s["rss_before_kb"] and s["rss_after_kb"] else "n/a")
            copy_lines.append(f"| {conns} | {store} | {case} | {s['cpu_during_us']:.1f} / "
                              f"{s['cpu_after_us']:.1f} | {wait_s:.1f} | {lag} | {backlog} | "
                              f"{drain} | {rss} |")

    store_lines = []
    if not distributed:
        store_lines = ["| conns | store | grants in SQLite at start | fill s | start s "
                       "| RSS MB at start | B per stored grant | RSS MB after the runs "
                       "| stop s | restart: start s | restart s (stop + start) | grants at "
                       "restart | RSS MB after restart | loaded (check_store.py) |",
                       "|" + "---|" * 14]

        def f2(v, fmt="{:.2f}"):
            return fmt.format(v) if v is not None else "n/a"

        for r in sorted(series_rows, key=lambda r: (r["conns"], STORE_ORDER.get(r["store"], 9))):
            mb = lambda kb: f"{kb / 1024:.0f}" if kb else "n/a"  # noqa: E731
            check = r["check"].replace("CHECK ", "") if r["check"] else "n/a"
            store_lines.append(
                f"| {r['conns']} | {r['store']} | {r['base_grants']:,} | {f2(r['fill_s'])} | "
                f"{f2(r['start_s'])} | {mb(r['rss_start_kb'])} | "
                f"{f2(r['bytes_per_stored_grant'], '{:.1f}')} | {mb(r['rss_end_kb'])} | "
                f"{f2(r['stop_s'])} | {f2(r['restart_start_s'])} | {f2(r['restart_s'])} | "
                f"{r['db_grants']:,} | {mb(r['rss_restart_kb'])} | {check} |"
                if isinstance(r["db_grants"], int) else
                f"| {r['conns']} | {r['store']} | {r['base_grants']:,} | | | | | | | | | "
                f"{r['db_grants']} | | {check} |")

    sustained_lines, sustained_data = [], []
    if sustained:
        sustained.sort(key=lambda x: x["run"])
        s_conns = sustained[0]["conns"]
        nginx_a = [x["rps"] for k in cells if k[0] == s_conns and k[3] == "a"
                   for x in by_cell[k]["nginx"]]
        nginx_rps = mean(nginx_a) if nginx_a else None
        sustained_lines = ["| run | grants before → after | req/s | ratio to nginx (a) | p50 ms "
                           "| p99 ms | server CPU µs/grant (+ after) | copy lag max s "
                           "| backlog max | caught up after s | RSS MB after |",
                           "|" + "---|" * 11]
        for x in sustained:
            res = x["res"]
            lag = res.get("poll_max_lag_s")
            drain = res.get("poll_drain_ms")
            row = {
                "run": x["run"], "grants_before": x["grants_after"] - x["grants_run"],
                "grants_after": x["grants_after"], "rps": res["rps"],
                "ratio": res["rps"] / nginx_rps if nginx_rps else None,
                "p50_ms": res["p50_us"] / 1000, "p99_ms": res["p99_us"] / 1000,
                "cpu_us": cpu_per_request([res]), "cpu_after_us": cpu_per_request([res], "after"),
                "max_lag_s": lag, "max_backlog": res.get("poll_max_backlog"),
                "drain_ms": None if res.get("after_skipped") else drain,
                "rss_after_kb": res.get("rss_after_kb"),
            }
            sustained_data.append(row)
            ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "n/a"
            lag_txt = f"{lag:.3f}" if lag is not None else "n/a"
            backlog = (f"{row['max_backlog']:,.0f}" if row["max_backlog"] is not None
                       else "n/a")
            drain_txt = ("(next run at once)" if row["drain_ms"] is None else
                         "never (60 s)" if row["drain_ms"] < 0 else
                         f"{row['drain_ms'] / 1000:.2f}")
            rss = f"{row['rss_after_kb'] / 1024:.0f}" if row["rss_after_kb"] else "n/a"
            sustained_lines.append(
                f"| {row['run']} | {row['grants_before']:,} → {row['grants_after']:,} | "
                f"{row['rps']:,.0f} | {ratio} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                f"{row['cpu_us']:.1f} (+{row['cpu_after_us']:.1f}) | {lag_txt} | {backlog} | "
                f"{drain_txt} | {rss} |")
        lags_s = [r["max_lag_s"] for r in sustained_data if r["max_lag_s"] is not None]
        first, last = sustained_data[0], sustained_data[-1]
        secs = sum(x["res"]["duration_us"] for x in sustained) / 1e6
        others.append(
            f"- (info) sustained at {s_conns} connections: {len(sustained)} runs, "
            f"{last['grants_after']:,} grants in {secs:.0f} s of load "
            f"({last['grants_after'] / secs if secs else 0:,.0f}/s); req/s {first['rps']:,.0f} in "
            f"the first run, {last['rps']:,.0f} in the last; CPU {first['cpu_us']:.1f} -> "
            f"{last['cpu_us']:.1f} µs/grant; copy lag worst "
            + (f"{max(lags_s):.3f} s" if lags_s else "n/a") + "; caught up after the last run "
            + ("n/a" if last["drain_ms"] is None else "never" if last["drain_ms"] < 0
               else f"in {last['drain_ms'] / 1000:.2f} s"))

    durable_lines = ["| conns " + wait_head + store_head + "| customers x coupons | grants "
                     "committed | seconds of (a) runs | durable grants/s |",
                     "|" + "---|" * (5 + show_wait + show_store)]
    for r in sorted(series_rows, key=lambda r: (r["conns"], int(r["wait"]),
                                                STORE_ORDER.get(r["store"], 9))):
        wait_cell = f" {r['wait']} |" if show_wait else ""
        store_cell = f" {r['store']} |" if show_store else ""
        secs = r["seconds"]
        durable_lines.append(f"| {r['conns']} |{wait_cell}{store_cell} {r['setup']['customers']} x "
                             f"{r['setup']['coupons']} | {r['durable']:,} | {secs:.1f} | "
                             f"{r['durable'] / secs if secs else 0:,.0f} |")

    run_lines = ["| conns " + wait_head + store_head + "| case | run.attempt | server | counted "
                 "| req/s | p50 ms | p90 ms | p99 ms | max ms | requests | CPU s server "
                 "(+ after) / wrk | other processes' CPU | server-side check |",
                 "|" + "---|" * (14 + show_wait + show_store)]
    for conns, wait, store, case, rep, server, res, note in sorted(
            detail_rows, key=lambda x: (x[0], int(x[1]), STORE_ORDER.get(x[2], 9), x[3], x[4],
                                        x[5] != "nginx")):
        used = "yes" if (conns, wait, store, case, rep) in counted else "no (disturbed)"
        wait_cell = f" {wait} |" if show_wait else ""
        store_cell = f" {store} |" if show_store else ""
        after = f" (+{res['after_server_s']:.2f})" if res.get("after_server_s") is not None else ""
        run_lines.append(f"| {conns} |{wait_cell}{store_cell} {case} | {rep} | {server} | {used} | "
                         f"{res['rps']:,.0f} | {ms(res['p50_us'])} | {ms(res['p90_us'])} | "
                         f"{ms(res['p99_us'])} | {ms(res['max_us'])} | {int(res['requests']):,} | "
                         f"{res.get('other_server_s', float('nan')):.2f}{after} "
                         f"({cpu_per_request([res]):.1f} µs/req) / "
                         f"{res.get('other_wrk_s', float('nan')):.2f} | "
                         f"{res.get('other_pct', float('nan')):.0f} % | {note} |")

    print(table)
    print()
    print("\n".join(verdicts + others))
    print()
    if store_lines:
        print("\n".join(store_lines))
        print()
    print("\n".join(durable_lines))
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("  - " + p)

    # ---- RESULTS.json, the charts' data ----
    stem = os.path.splitext(results_md)[0]
    charts = chart_files(results_md)
    timelines = []
    pick_conns = TARGET_CONNS if any(k[0] == TARGET_CONNS for k in cell_data) else \
        (sorted({k[0] for k in cell_data})[len({k[0] for k in cell_data}) // 2] if cell_data else None)
    for key in cells:
        if key[0] != pick_conns or key[3] != "a":
            continue
        rep = min((c[4] for c in counted if c[:4] == key), default=None)
        rows = read_timeline(polls.get(key + (rep,))) if rep else []
        res = next((r[6] for r in detail_rows if (r[0], r[1], r[2], r[3], r[4], r[5]) ==
                    key + (rep, "seckill")), None)
        if not rows or res is None:
            continue
        end = res.get("poll_end") or rows[-1][0]
        start = res.get("poll_start") or end - res["duration_us"] / 1e6
        timelines.append({"conns": key[0], "wait": key[1], "store": key[2], "case": "a",
                          "rep": rep, "start": start, "end_rel": end - start,
                          "samples": [[round(t - start, 3), g, lag, b] for t, g, lag, b in rows]})
    data = {
        "results_md": os.path.basename(results_md),
        "deployment": "distributed" if distributed else "embedded",
        "machine": machine, "target_conns": TARGET_CONNS, "show_wait": show_wait,
        "show_store": show_store,
        "cells": [dict(zip(("conns", "wait", "store", "case"), k), **cell_data[k]) for k in cells],
        "series": [{k: v for k, v in r.items() if k != "setup"} for r in series_rows],
        "timelines": timelines, "sustained": sustained_data, "targets": targets,
        "problems": problems,
        "charts": {k: os.path.relpath(v, os.path.dirname(os.path.abspath(results_md)))
                   for k, v in charts.items() if k != "sustained" or sustained_data},
    }
    with open(stem + ".json", "w") as f:
        json.dump(no_nan(data), f, indent=1, allow_nan=False)
        f.write("\n")

    md = [
        "# Grab benchmark: seckill vs nginx (latest run" +
        (", distributed deployment)" if distributed else ")"),
        "",
        "Written by `bench/run` (see `bench/README.md`); do not edit by hand. The numbers "
        f"are also in [`{os.path.basename(stem)}.json`]({os.path.basename(stem)}.json), "
        "which `bench/charts.py` draws.",
        "",
        "## Machine and run",
        "",
    ]
    md += [f"- {k}: {v}" for k, v in machine.items()]
    md += [
        "",
        "## Results (mean of the two counted runs of each server; ratio = seckill / nginx)",
        "",
        table,
        "",
        "## Targets (" + ("the issues'" if distributed else "issue 13's") +
        f", at {TARGET_CONNS} connections)",
        "",
    ] + verdicts + others + [""]
    md += ["## Charts", ""]
    titles = {"throughput": "req/s as a ratio to nginx", "latency": "latency percentiles",
              "cpu": "server CPU per request", "timeline": "grab rate and SQL copy over one run",
              "sustained": "sustained runs as the grants pile up"}
    for name, path in charts.items():
        if name == "sustained" and not sustained_data:
            continue
        rel = os.path.relpath(path, os.path.dirname(os.path.abspath(results_md)))
        md += [f"![{titles.get(name, name)}]({rel})", ""]
    if copy_lines:
        md += ["## The SQLite copy and memory (seckill, the counted runs of each cell)", "",
               "CPU after the run: from wrk's end until the server's CPU time stopped growing "
               "(at most one tick in 1 s); lag: max of `seckill_journal_lag_seconds` sampled "
               "every 0.1 s; caught up: from wrk's end until `seckill_journal_backlog` (and the "
               "lag) were 0, sampled every 0.02 s; RSS: VmRSS before the first and after the "
               "last counted run.", ""] + copy_lines + [""]
    if store_lines:
        md += ["## The stores: start, memory, restart", "",
               "start: from the exec until `/healthz` answers 200 (the store loads SQLite "
               "before it listens); B per stored grant: (RSS at start of the stored store's "
               "server − the empty one's) / stored grants; stop: SIGTERM until the process is "
               "gone; the restart runs on the same data directory after the runs, with their "
               "grants too, and `bench/check_store.py` checks through the API that every grant "
               "in SQLite was loaded. The sustained store's B per grant is its own growth: "
               "(RSS after its runs − at start) / the grants they made.", ""] + \
            store_lines + [""]
    if sustained_lines:
        md += ["## Sustained: back-to-back all-201 runs on one seckill", "",
               f"`SUSTAINED_SECONDS` s runs of case (a) at {sustained[0]['conns']} connections, "
               "one right after the other on the same seckill (a fresh setup) until it granted "
               "`SUSTAINED_GRANTS`: the store grows through the API while the copy keeps up. "
               "No nginx runs here: the ratio is against the mean nginx req/s of the case-(a) "
               "runs above at the same connection count. Only the last run waits for the "
               "server to be idle (its CPU after the run) and for the copy to catch up.", ""]
        md += sustained_lines + [""]
    md += [
        "## Durable grants (case (a); `select count(*) from grants` after SIGTERM)",
        "",
    ] + durable_lines + [
        "",
        "## Every run, in the order A B A B (nginx, seckill, nginx, seckill)",
        "",
    ] + run_lines + [""]
    if problems:
        md += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    # The hand-written analysis (profiles, history of changes) travels with the numbers.
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "NOTES-distributed.md" if distributed else "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            md += ["", f.read().rstrip(), ""]
    with open(results_md, "w") as f:
        f.write("\n".join(md))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
