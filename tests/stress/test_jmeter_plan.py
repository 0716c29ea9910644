"""The original course's JMeter plan, as a concurrency test.

200 customers; 5 sellers, each with 10 coupons of amount 20 (1000 coupons in all). Every
customer, for each of the 50 coupons in turn: logs in, lists its own coupons, grabs the
coupon, lists its own coupons again. All customers run at once, one thread and one HTTP
session each (keep-alive, as JMeter does).

Then: exactly 1000 201s, 20 per coupon, never a customer twice for a coupon, every other
grab a 204 sold-out, every list read-your-writes, every seller's `left` 0 through the API,
every customer's list equal to its 201s, and the SQL tables in agreement (SQLite, or
MariaDB after the persisters caught up, with the load split over two instances).

SECKILL_STRESS_CUSTOMERS overrides the number of customers (at least 20 to sell out).
"""

import os
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import requests

from seckill_harness import (JSON_CT, Client, describe, expect_json, make_users, parallel,
                             start_fleet)

N_CUSTOMERS = int(os.environ.get("SECKILL_STRESS_CUSTOMERS", "200"))
N_SELLERS = 5
COUPONS_PER_SELLER = 10
AMOUNT = 20
PAGE = 20


def json_or_none(r):
    try:
        return r.json()
    except ValueError:
        return None


def test_jmeter_plan(start_server):
    # Against the distributed deployment: split over two instances, each request to either.
    # Each session then keeps a connection to both, and one may sit idle for the default 10 s
    # --idle-timeout while random routing picks the other (about 20 picks in a row, a few
    # per cent of runs): the server closes it as the client reuses it, and the request fails
    # with "Remote end closed connection without response" (seen in CI run 2). Nothing is
    # wrong in that close; a load test keeps its connections alive longer than its gaps.
    srv = start_fleet(start_server, options={"--idle-timeout": 60})
    client = Client(srv)

    sellers = make_users(srv, [f"saler_{i}" for i in range(N_SELLERS)], "saler")
    coupons = []  # (seller, coupon) in the order every customer walks them
    for seller, token in sellers.items():
        for j in range(COUPONS_PER_SELLER):
            name = f"{seller}_{j}"
            r = client.create_coupon(token, seller, name, amount=AMOUNT, stock=10,
                                     description="fsdfd")
            expect_json(r, 201, "")
            coupons.append((seller, name))
    customers = [f"customer_{i}" for i in range(N_CUSTOMERS)]
    make_users(srv, customers, "customer")

    errors = []
    start = threading.Barrier(N_CUSTOMERS)

    def note(msg):
        if len(errors) < 200:
            errors.append(msg)

    def run_customer(customer):
        """The plan for one customer. Returns its 201s in order."""
        c = Client(srv, requests.Session())
        granted = []
        start.wait()
        for seller, coupon in coupons:
            r = c.login(customer)
            if r.status_code != 200 or not r.headers.get("Authorization"):
                note("login" + describe(r))
                continue
            token = r.headers["Authorization"]
            check_own_list(c, token, customer, granted, "before")
            r = c.grab(token, seller, coupon)
            if r.status_code == 201:
                if r.headers.get("Content-Type") != JSON_CT or json_or_none(r) != {"errMsg": ""}:
                    note("201 body" + describe(r))
                granted.append((seller, coupon))
            elif r.status_code == 204:
                if r.headers.get("X-Seckill-Reason") != "sold-out" or r.content:
                    note("204" + describe(r))
            else:
                note("grab" + describe(r))
            check_own_list(c, token, customer, granted, "after")
        c.session.close()
        return customer, granted

    def check_own_list(c, token, customer, granted, when):
        r = c.list(token, customer)
        expected = granted[:PAGE]
        if not expected:
            if r.status_code != 204 or r.content:
                note(f"list {when}, expected 204" + describe(r))
            return
        if r.status_code != 200:
            note(f"list {when}" + describe(r))
            return
        data = json_or_none(r)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            note(f"list {when}" + describe(r))
            return
        got = [(item.get("seller"), item.get("name")) for item in data["data"]]
        if got != expected:
            note(f"list {when}: got {got}, expected {expected}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(N_CUSTOMERS) as pool:
        results = dict(pool.map(run_customer, customers))
    elapsed = time.monotonic() - t0
    print(f"\nJMeter plan: {N_CUSTOMERS * len(coupons) * 4} requests in {elapsed:.1f} s")

    assert not errors, f"{len(errors)} unexpected answers, first ones:\n" + "\n".join(errors[:20])

    # 201s: exactly AMOUNT per coupon, never twice for a customer
    per_coupon = Counter(pair for granted in results.values() for pair in granted)
    total = sum(per_coupon.values())
    expected_total = min(N_CUSTOMERS, AMOUNT) * len(coupons)
    assert total == expected_total, f"{total} 201s, expected {expected_total}"
    assert all(per_coupon[pair] == min(N_CUSTOMERS, AMOUNT) for pair in coupons), per_coupon
    for customer, granted in results.items():
        assert len(granted) == len(set(granted)), f"{customer} got a coupon twice"

    # every seller's left is 0, through the API
    for seller, token in sellers.items():
        items = client.list_all(token, seller)
        assert sorted(i["name"] for i in items) == sorted(n for s, n in coupons if s == seller)
        for item in items:
            assert item["amount"] == AMOUNT and item["left"] == AMOUNT - min(N_CUSTOMERS, AMOUNT), \
                item

    # every customer's whole list equals its 201s, in grab order
    def full_list(c, customer):
        token = c.token(customer)
        return customer, [(i["seller"], i["name"]) for i in c.list_all(token, customer)]

    for customer, held in parallel(srv, full_list, customers):
        assert held == results[customer], f"{customer} lists {held}, got 201s {results[customer]}"

    # the database agrees
    granted_set = {(customer, seller, coupon)
                   for customer, granted in results.items() for seller, coupon in granted}
    rows = srv.grants()
    assert len(rows) == total, f"{len(rows)} grants rows for {total} 201s"
    assert set(rows) == granted_set
    by_coupon = defaultdict(int)
    for _, seller, coupon in rows:
        by_coupon[(seller, coupon)] += 1
    coupon_rows = srv.coupon_rows()
    for pair in coupons:
        row = coupon_rows[pair]
        assert row["amount"] == AMOUNT
        assert row["remaining"] == AMOUNT - by_coupon[pair], row
        assert row["remaining"] == AMOUNT - min(N_CUSTOMERS, AMOUNT), row
    # A stall guard, not a performance target (bench/ measures those): the plan's time is
    # mostly the Python client's 200 threads, 70-103 s on this machine kind.
    assert elapsed < 240, f"the plan took {elapsed:.1f} s"
