#!/usr/bin/python3
"""Prepare a running seckill server for the grab benchmark (bench/run calls this).

Creates, through the public API only:
  - one seller with COUPONS coupons of a large amount (never sold out within a run);
  - CUSTOMERS customers, each logged in once (their tokens are what wrk sends);
  - one sold-out coupon: amount 1, already grabbed by a customer outside the token list.

Writes into --out:
  tokens.txt   one customer token per line (line i = customer i)
  coupons.txt  one grab path per line, /api/users/{seller}/coupons/{name} (line j = coupon j)
  soldout.txt  the grab path of the sold-out coupon (one line)
  setup.json   the sizes and names, for the report

The pair space of case (a) is CUSTOMERS x COUPONS distinct (customer, coupon) pairs; the wrk
script (bench/grab.lua) maps pair number g to customer g % CUSTOMERS and coupon
(g // CUSTOMERS) % COUPONS, so a run that uses g in [offset, offset + span) never repeats a
pair as long as span <= CUSTOMERS * COUPONS. Size COUPONS so that every seckill run of a
series gets its own slice (bench/run does: 2 runs x DURATION s x a rate no 2-core box reaches).

Start the server with --pwhash-cost min, or registering thousands of users takes minutes.
"""
import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import requests

PASSWORD = "bench-password"
_local = threading.local()


def session():
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
    return s


def fail(msg):
    print(f"setup.py: {msg}", file=sys.stderr)
    sys.exit(1)


def register(base, username, kind):
    r = session().post(f"{base}/api/users",
                       json={"username": username, "password": PASSWORD, "kind": kind}, timeout=30)
    if r.status_code != 201:
        fail(f"register {username}: {r.status_code} {r.text!r}")


def login(base, username):
    r = session().post(f"{base}/api/auth", json={"username": username, "password": PASSWORD},
                       timeout=30)
    token = r.headers.get("Authorization")
    if r.status_code != 200 or not token:
        fail(f"login {username}: {r.status_code} {r.text!r}")
    if "\n" in token or "\r" in token:
        fail(f"login {username}: token with a line break")
    return token


def register_and_login(base, username, kind):
    register(base, username, kind)
    return login(base, username)


def create_coupon(base, token, seller, name, amount):
    r = session().post(f"{base}/api/users/{quote(seller, safe='')}/coupons",
                       json={"name": name, "amount": amount, "stock": 10,
                             "description": "bench coupon"},
                       headers={"Authorization": token}, timeout=30)
    if r.status_code != 201:
        fail(f"create coupon {name}: {r.status_code} {r.text!r}")


def grab_path(seller, name):
    return f"/api/users/{quote(seller, safe='')}/coupons/{quote(name, safe='')}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:20080")
    ap.add_argument("--out", required=True, help="directory for the files wrk reads")
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--coupons", type=int, default=1000)
    ap.add_argument("--amount", type=int, default=100_000_000,
                    help="amount of each case-(a) coupon (must exceed the customers)")
    ap.add_argument("--prefix", default="bench", help="prefix of user and coupon names")
    ap.add_argument("--workers", type=int, default=16, help="concurrent setup requests")
    args = ap.parse_args()
    if args.amount < args.customers:
        fail("--amount must be at least --customers, or case (a) sells coupons out")
    base = args.url.rstrip("/")
    os.makedirs(args.out, exist_ok=True)
    started = time.monotonic()

    seller = f"{args.prefix}_seller"
    seller_token = register_and_login(base, seller, "saler")
    names = [f"{args.prefix}_c{j:06d}" for j in range(args.coupons)]
    customers = [f"{args.prefix}_u{i:06d}" for i in range(args.customers)]
    holder = f"{args.prefix}_holder"
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(lambda n: create_coupon(base, seller_token, seller, n, args.amount), names))
        tokens = list(pool.map(lambda u: register_and_login(base, u, "customer"), customers))
    create_coupon(base, seller_token, seller, f"{args.prefix}_soldout", 1)
    holder_token = register_and_login(base, holder, "customer")

    # Sell the sold-out coupon, and check that a listed customer then gets 204 sold-out.
    soldout = grab_path(seller, f"{args.prefix}_soldout")
    r = session().patch(base + soldout, headers={"Authorization": holder_token}, timeout=30)
    if r.status_code != 201:
        fail(f"grab of the sold-out coupon by {holder}: {r.status_code} {r.text!r}")
    r = session().patch(base + soldout, headers={"Authorization": tokens[0]}, timeout=30)
    reason = r.headers.get("X-Seckill-Reason")
    if r.status_code != 204 or reason != "sold-out":
        fail(f"sold-out coupon answered {r.status_code} reason={reason!r}, expected 204 sold-out")

    with open(os.path.join(args.out, "tokens.txt"), "w") as f:
        f.write("\n".join(tokens) + "\n")
    with open(os.path.join(args.out, "coupons.txt"), "w") as f:
        f.write("\n".join(grab_path(seller, n) for n in names) + "\n")
    with open(os.path.join(args.out, "soldout.txt"), "w") as f:
        f.write(soldout + "\n")
    info = {"seller": seller, "prefix": args.prefix, "customers": args.customers, "coupons": args.coupons,
            "amount": args.amount, "pairs": args.customers * args.coupons,
            "soldout": soldout, "setup_grants": 1,
            "seconds": round(time.monotonic() - started, 2)}
    with open(os.path.join(args.out, "setup.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"setup: {args.customers} customers x {args.coupons} coupons = "
          f"{info['pairs']} pairs, sold-out coupon ready, in {info['seconds']} s")


if __name__ == "__main__":
    main()
