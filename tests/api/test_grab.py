"""PATCH /api/users/{seller}/coupons/{name} — grab a coupon (API.md "Coupons")."""

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from seckill_harness import Client, describe, expect_204, expect_json, seg, uniq


@pytest.fixture(scope="module")
def seller(client):
    return client.new_user("saler")


def left_of(client, token, seller, coupon):
    for item in client.list_all(token, seller):
        if item["name"] == coupon:
            return item["left"]
    raise AssertionError(f"{coupon} not listed")


def test_grab_ok(server, client, seller):
    coupon = client.new_coupon(seller[1], seller[0], amount=2, stock=15, description="ok")
    cust, ctoken = client.new_user("customer")
    r = client.grab(ctoken, seller[0], coupon)
    expect_json(r, 201, body={"errMsg": ""})
    assert "X-Seckill-Reason" not in r.headers
    assert client.list(ctoken, cust).json()["data"] == [
        {"name": coupon, "stock": 15, "description": "ok", "seller": seller[0]}]
    assert left_of(client, seller[1], seller[0], coupon) == 1
    # the database holds the grant, committed before the 201
    assert (cust, seller[0], coupon) in server.grants()
    assert server.coupon_rows()[(seller[0], coupon)]["remaining"] == 1
    rows = server.query("select granted_at from grants")
    assert all(row["granted_at"] is not None for row in rows)


def test_left_is_exact_at_the_largest_max_amount(start_server):
    """--max-amount 2^53 - 1 (the largest allowed) and a coupon of that amount: every grab
    leaves exactly one fewer, in the list, in SQL's `remaining` and (distributed) in Redis,
    whose Lua scripts count in doubles."""
    cap = 2**53 - 1
    srv = start_server(options={"--max-amount": cap})
    client = Client(srv)
    seller, stoken = client.new_user("saler")
    coupon = client.new_coupon(stoken, seller, amount=cap)
    for grabbed in (1, 2):
        _customer, ctoken = client.new_user("customer")
        expect_json(client.grab(ctoken, seller, coupon), 201, "")
        want = cap - grabbed
        assert left_of(client, stoken, seller, coupon) == want
        item = [c for c in client.list_all(stoken, seller) if c["name"] == coupon][0]
        assert item["amount"] == cap, item
        # SQL (distributed: once the persister copied the grant)
        assert srv.coupon_rows()[(seller, coupon)]["remaining"] == want
        if srv.deployment is not None:
            redis = srv.deployment.redis
            key = [k for k in redis.command("KEYS", "sk:{*}:c:*")
                   if k.endswith(f":c:{seller}/{coupon}")][0]
            assert redis.command("HGET", key, "left") == str(want)
            assert redis.command("HGET", key, "amount") == str(cap)


def test_grab_bearer_form(client, seller):
    coupon = client.new_coupon(seller[1], seller[0], amount=1)
    _, ctoken = client.new_user("customer")
    expect_json(client.grab("Bearer " + ctoken, seller[0], coupon), 201, "")


def test_seller_cannot_grab(client, seller):
    coupon = client.new_coupon(seller[1], seller[0], amount=1)
    other, otoken = client.new_user("saler")
    msg = {"errMsg": "Sellers aren't allowed to get coupons."}
    expect_json(client.grab(seller[1], seller[0], coupon), 401, body=msg)
    expect_json(client.grab(otoken, seller[0], coupon), 401, body=msg)
    # before any coupon lookup
    expect_json(client.grab(otoken, seller[0], uniq("nope")), 401, body=msg)
    expect_json(client.grab(otoken, uniq("nobody"), "x"), 401, body=msg)
    assert left_of(client, seller[1], seller[0], coupon) == 1


def test_no_token(client, seller):
    coupon = client.new_coupon(seller[1], seller[0], amount=1)
    expect_json(client.grab(None, seller[0], coupon), 401, body={"errMsg": "Not Authorized."})
    expect_json(client.grab(None, uniq("nobody"), "x"), 401, body={"errMsg": "Not Authorized."})
    assert left_of(client, seller[1], seller[0], coupon) == 1


def test_no_such_coupon(client, seller):
    coupon = client.new_coupon(seller[1], seller[0], amount=1)
    cust, ctoken = client.new_user("customer")
    other, otoken = client.new_user("saler")
    expect_204(client.grab(ctoken, seller[0], uniq("nope")), "no-such-coupon")
    expect_204(client.grab(ctoken, uniq("nobody"), coupon), "no-such-coupon")
    expect_204(client.grab(ctoken, other, coupon), "no-such-coupon")
    expect_204(client.grab(ctoken, seller[0], coupon.upper()), "no-such-coupon")
    expect_204(client.grab(ctoken, seller[0].upper(), coupon), "no-such-coupon")
    expect_204(client.grab(ctoken, cust, coupon), "no-such-coupon")
    expect_204(client.list(ctoken, cust))


def test_not_started(client, seller):
    coupon = client.new_coupon(seller[1], seller[0], amount=1, start_at=4102444800)
    _, ctoken = client.new_user("customer")
    expect_204(client.grab(ctoken, seller[0], coupon), "not-started")
    assert left_of(client, seller[1], seller[0], coupon) == 1


def test_ended(client, seller):
    coupon = client.new_coupon(seller[1], seller[0], amount=1, end_at=1000)
    coupon2 = client.new_coupon(seller[1], seller[0], amount=1, start_at=1000, end_at=2000)
    _, ctoken = client.new_user("customer")
    expect_204(client.grab(ctoken, seller[0], coupon), "ended")
    expect_204(client.grab(ctoken, seller[0], coupon2), "ended")
    assert left_of(client, seller[1], seller[0], coupon) == 1


def test_sold_out(server, client, seller):
    coupon = client.new_coupon(seller[1], seller[0], amount=1)
    a, atoken = client.new_user("customer")
    b, btoken = client.new_user("customer")
    expect_json(client.grab(atoken, seller[0], coupon), 201, "")
    expect_204(client.grab(btoken, seller[0], coupon), "sold-out")
    expect_204(client.list(btoken, b))
    assert left_of(client, seller[1], seller[0], coupon) == 0
    assert [g for g in server.grants() if g[1:] == (seller[0], coupon)] == [(a, seller[0], coupon)]


def test_already_held(server, client, seller):
    coupon = client.new_coupon(seller[1], seller[0], amount=3)
    cust, ctoken = client.new_user("customer")
    expect_json(client.grab(ctoken, seller[0], coupon), 201, "")
    for _ in range(3):
        expect_204(client.grab(ctoken, seller[0], coupon), "already-held")
    # a new token of the same customer is the same customer
    expect_204(client.grab(client.token(cust), seller[0], coupon), "already-held")
    assert left_of(client, seller[1], seller[0], coupon) == 2
    assert len(client.list(ctoken, cust).json()["data"]) == 1
    assert server.grants().count((cust, seller[0], coupon)) == 1


def test_sold_out_before_already_held(client, seller):
    coupon = client.new_coupon(seller[1], seller[0], amount=1)
    _, ctoken = client.new_user("customer")
    expect_json(client.grab(ctoken, seller[0], coupon), 201, "")
    expect_204(client.grab(ctoken, seller[0], coupon), "sold-out")


def test_not_started_before_sold_out_and_held(client, seller):
    """A coupon that ends later and starts later: not-started wins over everything after it."""
    coupon = client.new_coupon(seller[1], seller[0], amount=1, start_at=4102444800,
                               end_at=4102444801)
    _, ctoken = client.new_user("customer")
    expect_204(client.grab(ctoken, seller[0], coupon), "not-started")


def test_ended_before_sold_out_and_already_held(client, seller):
    end = int(time.time()) + 3
    coupon = client.new_coupon(seller[1], seller[0], amount=1, end_at=end)
    _, holder = client.new_user("customer")
    _, other = client.new_user("customer")
    expect_json(client.grab(holder, seller[0], coupon), 201, "")
    expect_204(client.grab(holder, seller[0], coupon), "sold-out")
    expect_204(client.grab(other, seller[0], coupon), "sold-out")
    time.sleep(max(0.0, end - time.time()) + 1.1)
    expect_204(client.grab(holder, seller[0], coupon), "ended")
    expect_204(client.grab(other, seller[0], coupon), "ended")


def test_percent_encoded_segments(client):
    seller = uniq("s?#%é")
    assert client.register(seller, "pw", "saler").status_code == 201
    stoken = client.token(seller, "pw")
    coupon = "50% off? #1 & 优惠 " + uniq("x")
    expect_json(client.create_coupon(stoken, seller, coupon, amount=2), 201, "")
    cust, ctoken = client.new_user("customer")
    r = client.request("PATCH", f"/api/users/{seg(seller)}/coupons/{seg(coupon)}", token=ctoken)
    expect_json(r, 201, "")
    held = client.list(ctoken, cust).json()["data"]
    assert [(c["seller"], c["name"]) for c in held] == [(seller, coupon)]
    # every byte encoded, upper and lower case hex
    cust2, ctoken2 = client.new_user("customer")
    enc_seller = "".join("%%%02x" % b for b in seller.encode())
    enc_coupon = "".join("%%%02X" % b for b in coupon.encode())
    r = client.request("PATCH", f"/api/users/{enc_seller}/coupons/{enc_coupon}", token=ctoken2)
    expect_json(r, 201, "")
    assert left_of(client, stoken, seller, coupon) == 0


def test_concurrent_grabs_one_coupon(server, client, seller):
    """30 customers, amount 10, all at once: exactly 10 201s, the rest sold-out."""
    coupon = client.new_coupon(seller[1], seller[0], amount=10)
    customers = [client.new_user("customer") for _ in range(30)]

    def grab(cust):
        c = Client(server, requests.Session())
        return cust[0], c.grab(cust[1], seller[0], coupon)

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(grab, customers))
    winners = []
    for name, r in results:
        if r.status_code == 201:
            expect_json(r, 201, body={"errMsg": ""})
            winners.append(name)
        else:
            expect_204(r, "sold-out")
    assert len(winners) == 10
    assert left_of(client, seller[1], seller[0], coupon) == 0
    granted = sorted(g[0] for g in server.grants() if g[1:] == (seller[0], coupon))
    assert granted == sorted(winners)


def test_concurrent_grabs_same_customer(server, client, seller):
    """One customer, 20 parallel grabs of one coupon: exactly one 201."""
    coupon = client.new_coupon(seller[1], seller[0], amount=5)
    cust, ctoken = client.new_user("customer")

    def grab(_):
        return Client(server, requests.Session()).grab(ctoken, seller[0], coupon)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(grab, range(20)))
    assert sorted(r.status_code for r in results) == [201] + [204] * 19, \
        [describe(r) for r in results if r.status_code not in (201, 204)]
    for r in results:
        if r.status_code == 204:
            expect_204(r, "already-held")
    assert left_of(client, seller[1], seller[0], coupon) == 4
    assert server.grants().count((cust, seller[0], coupon)) == 1


def test_grant_survives_restart(start_server, tmp_path):
    srv = start_server(data_dir=tmp_path / "data")
    client = Client(srv)
    seller, stoken = client.new_user("saler")
    coupon = client.new_coupon(stoken, seller, amount=3, start_at=1000, end_at=4102444800)
    cust, ctoken = client.new_user("customer")
    expect_json(client.grab(ctoken, seller, coupon), 201, "")
    assert srv.stop() == 0, srv.logs()
    srv.start()
    assert [c["name"] for c in client.list_all(ctoken, cust)] == [coupon]
    items = client.list_all(stoken, seller)
    assert items == [{"name": coupon, "stock": 10, "description": "desc", "amount": 3, "left": 2,
                      "start_at": 1000, "end_at": 4102444800}]
    expect_204(client.grab(ctoken, seller, coupon), "already-held")
    _, c2 = client.new_user("customer")
    expect_json(client.grab(c2, seller, coupon), 201, "")
    srv.kill()
    srv.start()
    assert client.list_all(stoken, seller)[0]["left"] == 1
    expect_json(client.create_coupon(stoken, seller, coupon), 400,
                body={"errMsg": "Create failed. Maybe (username,coupon name) duplicates"})
    expect_json(client.register(cust, "x", "customer"), 400,
                body={"errMsg": "Insert user failed. Maybe user name duplicates."})


def test_dot_coupon_names(client):
    seller, stoken = client.new_user("saler")  # its own: the names are the same every run
    cust, ctoken = client.new_user("customer")
    for coupon in ("..", ".", "%2E%2E"):
        expect_json(client.create_coupon(stoken, seller, coupon, amount=1), 201, "")
        expect_json(client.grab(ctoken, seller, coupon), 201, "")
    held = [c["name"] for c in client.list(ctoken, cust).json()["data"]]
    assert held == ["..", ".", "%2E%2E"]


def test_read_your_writes_across_connections(server, client, seller):
    """A 201 on one connection is visible at once on another (another worker thread)."""
    coupon = client.new_coupon(seller[1], seller[0], amount=1000)
    sessions = [requests.Session() for _ in range(4)]
    for i in range(40):
        cust, ctoken = client.new_user("customer")
        grabber = Client(server, sessions[i % 4])
        expect_json(grabber.grab(ctoken, seller[0], coupon), 201, "")
        for s in sessions:
            r = Client(server, s).list(ctoken, cust)
            data = expect_json(r, 200, "")
            assert [c["name"] for c in data["data"]] == [coupon]
        assert left_of(Client(server, sessions[(i + 1) % 4]), seller[1], seller[0], coupon) \
            == 1000 - (i + 1)


@pytest.mark.embedded_only
def test_orders_survive_restart(start_server, tmp_path):
    """After a restart a seller's list is still in creation order and a customer's in grab
    order, and `left` is recomputed from the grants if the stored copy disagrees."""
    srv = start_server(data_dir=tmp_path / "data")
    client = Client(srv)
    seller, stoken = client.new_user("saler")
    coupons = [client.new_coupon(stoken, seller, name=f"{i}-{uniq('o')}", amount=3)
               for i in (3, 1, 2, 5, 4)]
    cust, ctoken = client.new_user("customer")
    order = [coupons[i] for i in (4, 0, 2, 1)]
    for coupon in order:
        expect_json(client.grab(ctoken, seller, coupon), 201, "")
    assert srv.stop() == 0
    srv.start()
    assert [c["name"] for c in client.list_all(stoken, seller)] == coupons
    assert [c["name"] for c in client.list_all(ctoken, cust)] == order
    assert srv.stop() == 0
    # an operator's mistaken UPDATE: the grants table is the truth
    conn = sqlite3.connect(srv.db_path)
    conn.execute("update coupons set remaining = 3")
    conn.commit()
    conn.close()
    srv.start()
    lefts = {c["name"]: c["left"] for c in client.list_all(stoken, seller)}
    assert lefts == {c: (2 if c in order else 3) for c in coupons}
    rows = srv.coupon_rows()
    assert all(rows[(seller, c)]["remaining"] == lefts[c] for c in coupons)
