#!/usr/bin/python3
"""Check that a restarted embedded seckill loaded every grant its SQLite file holds.

bench/run calls this after the restart that ends each embedded series: the server was
stopped with SIGTERM (so the SQLite copy is complete), the grants counted in seckill.db,
and the server started again on the same data directory. Through the public API only:

  - the seller's coupon list (every page) must show, for each coupon, left = amount minus
    the coupon's rows in grants, and every coupon in the file must be listed;
  - for up to --samples coupons spread over the seller's coupons that have grants (past
    sales of bench/fill.py and the runs' coupons alike), up to three of their holders grab
    the coupon again: each must be answered 204 with X-Seckill-Reason: already-held (a
    grant the server had not loaded would be granted again: 201).

Reads the file while the server runs (WAL: a reader never blocks it). Prints one line,
CHECK ok=1 coupons=N listed=N sampled=N problems=N, and the first problems; exits 1 on any.
"""
import argparse
import json
import sqlite3
import sys
from urllib.parse import quote

import requests


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--data", required=True, help="the directory setup.py wrote")
    ap.add_argument("--samples", type=int, default=40)
    args = ap.parse_args()
    base = args.url.rstrip("/")
    setup = json.load(open(f"{args.data}/setup.json"))
    seller, prefix = setup["seller"], setup["prefix"]
    tokens = [line.strip() for line in open(f"{args.data}/tokens.txt") if line.strip()]
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    want = {}
    for name, amount, remaining in db.execute(
            "SELECT name, amount, remaining FROM coupons WHERE seller = ?", (seller,)):
        want[name] = [amount, remaining, 0]
    for name, n in db.execute("SELECT coupon, count(*) FROM grants WHERE seller = ? "
                              "GROUP BY coupon", (seller,)):
        if name in want:
            want[name][2] = n
    problems = []
    s = requests.Session()
    s.headers["Authorization"] = tokens[0]
    listed = {}
    page = 1
    while True:
        r = s.get(f"{base}/api/users/{quote(seller, safe='')}/coupons", params={"page": page},
                  timeout=30)
        if r.status_code == 204:
            break
        if r.status_code != 200:
            problems.append(f"seller list page {page}: {r.status_code} {r.text[:200]!r}")
            break
        for c in r.json()["data"]:
            listed[c["name"]] = (c["amount"], c["left"])
        page += 1
    for name, (amount, remaining, grants) in want.items():
        if remaining != amount - grants:
            problems.append(f"{name}: SQLite remaining {remaining}, amount {amount} - grants "
                            f"{grants} = {amount - grants}")
        got = listed.get(name)
        if got is None:
            problems.append(f"{name}: in SQLite, not in the seller's list")
        elif got != (amount, amount - grants):
            problems.append(f"{name}: listed amount/left {got}, SQLite says "
                            f"{(amount, amount - grants)}")
    for name in listed.keys() - want.keys():
        problems.append(f"{name}: listed, not in SQLite")

    with_grants = sorted(n for n, w in want.items() if w[2] > 0)
    step = max(1, len(with_grants) // max(1, args.samples))
    sampled = 0
    for name in with_grants[::step][:args.samples]:
        for (customer,) in db.execute("SELECT customer FROM grants WHERE seller = ? AND "
                                      "coupon = ? AND customer LIKE ? LIMIT 3",
                                      (seller, name, f"{prefix}_u%")):
            i = int(customer[len(prefix) + 2:])
            r = requests.patch(f"{base}/api/users/{quote(seller, safe='')}/coupons/"
                               f"{quote(name, safe='')}", headers={"Authorization": tokens[i]},
                               timeout=30)
            sampled += 1
            reason = r.headers.get("X-Seckill-Reason")
            if r.status_code != 204 or reason != "already-held":
                problems.append(f"{customer} grabbing {name} again: {r.status_code} "
                                f"reason={reason!r}, expected 204 already-held")
    print(f"CHECK ok={int(not problems)} coupons={len(want)} listed={len(listed)} "
          f"sampled={sampled} problems={len(problems)}")
    for p in problems[:10]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
