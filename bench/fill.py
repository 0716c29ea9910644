#!/usr/bin/python3
"""Fill a stopped embedded seckill's SQLite file with stored grants (bench/run calls this).

The "stored" store of the grab benchmark (issue 13): the same seller, customers, coupons
and tokens as the empty store (bench/setup.py made them through the API, on a seckill that
created the schema and the deployment id and was then stopped with SIGTERM), plus
--grants grants of past sales, written here straight into seckill.db in one transaction:

  - ceil(GRANTS / CUSTOMERS) past coupons of the bench seller, named PREFIX_h000000...,
    amount 2 x CUSTOMERS (never sold out, so a stored pair grabbed again answers
    already-held, not sold-out), remaining = amount - their grants;
  - their grants, in the table's key order (seller, coupon, customer): past coupon k to
    every bench customer in turn, the last coupon only to as many as GRANTS leaves; ids go
    on from the largest id in grants, as the store's own numbering does.

The stored grants go to the bench's own customers (each then holds about GRANTS /
CUSTOMERS coupons), so that the server's memory grows by the grants alone (no new users),
and so that every stored grant can be checked through the API with the tokens setup.py
wrote. The fill leaves no WAL behind (checkpoint, truncate) and prints one JSON line:
{"stored_grants":..,"past_coupons":..,"seconds":..,"db_bytes":..}, and writes it to --out.

Run it only while no seckill has the file open.
"""
import argparse
import json
import os
import sqlite3
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True, help="the data dir's seckill.db (seckill stopped)")
    ap.add_argument("--setup", required=True, help="setup.json of bench/setup.py")
    ap.add_argument("--grants", type=int, required=True, help="stored grants to add")
    ap.add_argument("--out", help="also write the JSON line here")
    args = ap.parse_args()
    setup = json.load(open(args.setup))
    seller, customers, prefix = setup["seller"], setup["customers"], setup["prefix"]
    if args.grants < 0:
        sys.exit("fill.py: --grants must be >= 0")
    started = time.monotonic()
    db = sqlite3.connect(args.db, isolation_level=None)
    # One transaction, the pages in memory until the commit: the fill is what the bench
    # waits for, not what it measures.
    db.execute("PRAGMA cache_size=-1048576")
    db.execute("PRAGMA synchronous=OFF")
    names = {r[0] for r in db.execute("SELECT username FROM users WHERE kind = 'customer'")}
    customer_names = [f"{prefix}_u{i:06d}" for i in range(customers)]
    missing = [n for n in customer_names if n not in names]
    if missing:
        sys.exit(f"fill.py: {len(missing)} bench customers missing from users, e.g. {missing[0]}")
    past = (args.grants + customers - 1) // customers
    amount = 2 * customers
    now = int(time.time())
    db.execute("BEGIN IMMEDIATE")
    next_coupon = db.execute("SELECT coalesce(max(id), 0) + 1 FROM coupons").fetchone()[0]
    next_grant = db.execute("SELECT coalesce(max(id), 0) + 1 FROM grants").fetchone()[0]
    coupon_names = [f"{prefix}_h{k:06d}" for k in range(past)]
    taken = [min(customers, args.grants - k * customers) for k in range(past)]
    db.executemany(
        "INSERT INTO coupons (id, seller, name, amount, remaining, stock, description, "
        "start_at, end_at, created_at) VALUES (?, ?, ?, ?, ?, 10, 'bench past sale', NULL, "
        "NULL, ?)",
        ((next_coupon + k, seller, coupon_names[k], amount, amount - taken[k], now - 86400)
         for k in range(past)))

    def rows():
        g = next_grant
        for k in range(past):
            name = coupon_names[k]
            for i in range(taken[k]):
                yield (g, customer_names[i], seller, name, now - 3600)
                g += 1

    db.executemany("INSERT INTO grants (id, customer, seller, coupon, granted_at) "
                   "VALUES (?, ?, ?, ?, ?)", rows())
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # The fill checks itself: the invariant seckill keeps (remaining = amount - grants).
    bad = db.execute("SELECT count(*) FROM coupons c WHERE remaining != amount - "
                     "(SELECT count(*) FROM grants g WHERE g.seller = c.seller AND "
                     "g.coupon = c.name)").fetchone()[0]
    db.close()
    if bad:
        sys.exit(f"fill.py: {bad} coupons with remaining != amount - grants")
    info = {"stored_grants": args.grants, "past_coupons": past,
            "seconds": round(time.monotonic() - started, 2),
            "db_bytes": os.path.getsize(args.db)}
    line = json.dumps(info)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
