"""Per-user rate limit of the grab route (--rate-limit, --rate-burst): 429 with Retry-After.

A customer's grabs beyond the burst are answered 429 {"errMsg":"Too many requests."} with a
Retry-After of whole seconds, before the store is asked: a limited grab takes nothing.
Other customers are not affected, tokens come back at the rate, the count is exact under
concurrency, and without the options nothing is ever limited.
"""

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from seckill_harness import Client, Server, describe, expect_204, expect_json, stop_checked, uniq

TOO_MANY = {"errMsg": "Too many requests."}


def expect_429(r):
    expect_json(r, 429, body=TOO_MANY)
    retry_after = r.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), describe(r)
    assert int(retry_after) >= 1, describe(r)
    return int(retry_after)


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """One server with 2 grabs a second and bursts of 3 per customer, and a seller on it."""
    base = tmp_path_factory.mktemp("seckill")
    srv = Server(base / "data", base / "logs",
                 options={"--rate-limit": "2", "--rate-burst": "3"}).start()
    client = Client(srv)
    seller = client.new_user("saler")
    yield srv, client, seller
    stop_checked(srv)


def coupons(client, seller, count, amount=5):
    return [client.new_coupon(seller[1], seller[0], amount=amount) for _ in range(count)]


def grab_burst(client, token, seller, names):
    """Grabs the first three of `names` (the burst), each a 201."""
    for name in names[:3]:
        expect_json(client.grab(token, seller[0], name), 201, "")


def test_fourth_rapid_grab_is_limited(limited):
    server, client, seller = limited
    names = coupons(client, seller, 4)
    _, token = client.new_user("customer")
    grab_burst(client, token, seller, names)
    r = client.grab(token, seller[0], names[3])
    # a burst of 3 at 2 a second: the next token is at most 500 ms away
    assert expect_429(r) == 1
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "X-Seckill-Reason" not in r.headers


def test_limit_applies_before_the_coupon_lookup(limited):
    server, client, seller = limited
    _, token = client.new_user("customer")
    for _ in range(3):
        expect_204(client.grab(token, seller[0], uniq("nope")), "no-such-coupon")
    expect_429(client.grab(token, seller[0], uniq("nope")))
    expect_429(client.grab(token, uniq("nobody"), "x"))


def test_token_and_seller_checks_come_first(limited):
    server, client, seller = limited
    name = coupons(client, seller, 1)[0]
    for _ in range(6):
        expect_json(client.grab(seller[1], seller[0], name), 401,
                    body={"errMsg": "Sellers aren't allowed to get coupons."})
        expect_json(client.grab(None, seller[0], name), 401, body={"errMsg": "Not Authorized."})
    # the seller's 401s took no tokens of anyone's, and a customer starts with a full burst
    _, token = client.new_user("customer")
    for _ in range(3):
        expect_204(client.grab(token, seller[0], uniq("nope")))
    expect_429(client.grab(token, seller[0], name))


def test_other_customers_unaffected(limited):
    server, client, seller = limited
    names = coupons(client, seller, 4)
    _, greedy = client.new_user("customer")
    grab_burst(client, greedy, seller, names)
    expect_429(client.grab(greedy, seller[0], names[3]))
    for _ in range(3):
        _, other = client.new_user("customer")
        grab_burst(client, other, seller, names)
    expect_429(client.grab(greedy, seller[0], names[3]))


def test_allowed_again_after_waiting(limited):
    server, client, seller = limited
    names = coupons(client, seller, 8)
    _, token = client.new_user("customer")
    grab_burst(client, token, seller, names)
    retry_after = expect_429(client.grab(token, seller[0], names[3]))
    time.sleep(retry_after)
    # one second at 2 a second: two tokens back (three after the half second more the
    # test may have taken, never more than the burst)
    expect_json(client.grab(token, seller[0], names[3]), 201, "")
    expect_json(client.grab(token, seller[0], names[4]), 201, "")
    statuses = [client.grab(token, seller[0], name).status_code for name in names[5:8]]
    assert statuses.count(429) >= 2, statuses
    time.sleep(2)  # long enough to refill the whole burst
    for name in names[5:8]:
        r = client.grab(token, seller[0], name)
        if r.status_code != 201:
            expect_204(r, "already-held")
    expect_429(client.grab(token, seller[0], uniq("nope")))


def test_limited_grab_takes_nothing(limited):
    server, client, seller = limited
    names = coupons(client, seller, 4, amount=2)
    cust, token = client.new_user("customer")
    grab_burst(client, token, seller, names)
    held = client.list_all(token, cust)
    grants = sorted(server.grants())
    expect_429(client.grab(token, seller[0], names[3]))
    expect_429(client.grab(token, seller[0], names[3]))
    assert client.list_all(token, cust) == held
    assert [item["name"] for item in held] == names[:3]
    left = {item["name"]: item["left"] for item in client.list_all(seller[1], seller[0])}
    assert left[names[3]] == 2
    assert [left[name] for name in names[:3]] == [1, 1, 1]
    assert sorted(server.grants()) == grants
    assert server.coupon_rows()[(seller[0], names[3])]["remaining"] == 2


def test_429_counted_in_metrics(limited):
    server, client, seller = limited
    _, token = client.new_user("customer")
    statuses = [client.grab(token, seller[0], uniq("nope")).status_code for _ in range(5)]
    assert statuses.count(429) >= 1, statuses
    text = requests.get(server.url + "/metrics", timeout=10).text
    lines = [line for line in text.splitlines()
             if line.startswith("seckill_requests_total{") and 'status="429"' in line]
    assert any(float(line.rsplit(" ", 1)[1]) >= 1 for line in lines), lines


def test_concurrent_grabs_exact(start_server):
    rate, burst, threads, grabs_each = 0.01, 5, 20, 10
    server = start_server(options={"--rate-limit": str(rate), "--rate-burst": str(burst),
                                   "--threads": "2"})
    client = Client(server)
    seller = client.new_user("saler")
    names = coupons(client, seller, threads * grabs_each, amount=1)
    cust, token = client.new_user("customer")
    barrier = threading.Barrier(threads)

    def run(thread):
        own = Client(server, requests.Session())
        barrier.wait()
        out = []
        for i in range(grabs_each):
            r = own.grab(token, seller[0], names[thread * grabs_each + i])
            if r.status_code == 429:
                expect_429(r)
            else:
                expect_json(r, 201, "")
            out.append((r.status_code, names[thread * grabs_each + i]))
        return out

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        results = [item for chunk in pool.map(run, range(threads)) for item in chunk]
    elapsed = time.monotonic() - started
    granted = sorted(name for status, name in results if status == 201)
    # the burst, plus whatever refilled while the storm lasted (nothing at 0.01/s)
    allowance = burst + math.floor(elapsed * rate)
    assert burst <= len(granted) <= allowance, (len(granted), elapsed)
    assert len(results) == threads * grabs_each
    assert all(status in (201, 429) for status, _ in results)
    assert sorted(item["name"] for item in client.list_all(token, cust)) == granted
    assert sorted(c for who, _, c in server.grants() if who == cust) == granted


def test_no_limit_without_options(server, client):
    seller = client.new_user("saler")
    names = coupons(client, seller, 30, amount=1)
    _, token = client.new_user("customer")
    for name in names:
        expect_json(client.grab(token, seller[0], name), 201, "")
    for _ in range(30):
        expect_204(client.grab(token, seller[0], uniq("nope")), "no-such-coupon")
