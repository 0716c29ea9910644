"""The live sale view (API.md "Operations", `--status-page`): GET /status, an HTML page
that loads nothing from other hosts, and GET /status.json, its figures: every coupon's
`left` of `amount` (paged, 50 a page, creation order, filtered by `seller`), the grab
answers of the last minute by outcome, second by second, and their latency. No token.
In the distributed runs every test that counts grabs runs two instances and grabs on both:
each one's answer must hold the grabs of both. The browser's view is
test_status_browser.py."""

import re
import subprocess
import time

import pytest
import requests

from seckill_harness import (DISTRIBUTED, JSON_CT, SECKILL_BIN, Client, describe, expect_204,
                             expect_json, seg, start_fleet, uniq)

OUTCOMES = ("granted", "sold_out", "already_held", "rejected")
PAGE_SIZE = 50


def status(srv, query=None, method="GET"):
    return requests.request(method, srv.url + "/status.json" + (f"?{query}" if query else ""),
                            timeout=10)


def status_data(srv, query=None):
    data = expect_json(status(srv, query), 200, "")
    check_shape(data)
    return data


def check_shape(data):
    for key in ("coupons", "page", "pages", "total", "window_seconds", "grabs", "latency_ms",
                "instances"):
        assert key in data, f"no {key!r} in {data}"
    assert data["window_seconds"] == 60
    assert isinstance(data["coupons"], list) and len(data["coupons"]) <= PAGE_SIZE
    for coupon in data["coupons"]:
        assert set(coupon) >= {"seller", "name", "amount", "left"}, coupon
        assert isinstance(coupon["amount"], int) and isinstance(coupon["left"], int)
        assert 0 <= coupon["left"] <= coupon["amount"], coupon
        # Nothing a logged-in customer could not see in a seller's list.
        assert set(coupon) <= {"seller", "name", "amount", "left", "stock", "description",
                               "start_at", "end_at"}, coupon
    assert set(data["grabs"]) == set(OUTCOMES), data["grabs"]
    for outcome in OUTCOMES:
        series = data["grabs"][outcome]
        assert len(series) == 60 and all(isinstance(n, int) and n >= 0 for n in series), series
    assert set(data["latency_ms"]) >= {"p50", "p99"}
    p50, p99 = data["latency_ms"]["p50"], data["latency_ms"]["p99"]
    assert (p50 is None) == (p99 is None), data["latency_ms"]
    if p50 is not None:
        assert 0 <= p50 <= p99, data["latency_ms"]
    assert isinstance(data["instances"], int) and data["instances"] >= 1
    assert data["pages"] == (data["total"] + PAGE_SIZE - 1) // PAGE_SIZE, data


def totals(data):
    return {outcome: sum(data["grabs"][outcome]) for outcome in OUTCOMES}


def wait_for(srv, predicate, what, query=None, timeout=15.0):
    """Polls /status.json until predicate(data) holds; the last answer otherwise fails."""
    deadline = time.monotonic() + timeout
    while True:
        data = status_data(srv, query)
        if predicate(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"/status.json never showed {what}: {data}")
        time.sleep(0.2)


def servers_of(fleet):
    return getattr(fleet, "servers", [fleet])


# -- the page --------------------------------------------------------------------------------


def test_page_is_one_self_contained_html_file(client):
    r = client.request("GET", "/status")
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"] == "text/html; charset=utf-8", describe(r)
    assert int(r.headers["Content-Length"]) == len(r.content)
    html = r.text
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "/status.json" in html, "the page does not poll its figures"
    # Nothing is loaded from anywhere: no external script, style, image or font, and the
    # policy forbids every other origin even if something tried.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I), \
        "the page names another host"
    assert not re.search(r"<link\b|<script[^>]*\bsrc=|@import|url\(", html, re.I)
    policy = r.headers.get("Content-Security-Policy", "")
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy, policy
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    # No token needed, and nothing private: the page is the same for everyone.
    assert "Authorization" not in r.headers


@pytest.mark.parametrize("path", ["/status", "/status.json", "/status/", "/status.json?page=2"])
def test_head_is_get_without_body(client, path):
    get = client.request("GET", path)
    head = client.request("HEAD", path)
    assert head.status_code == get.status_code == 200, describe(head)
    assert head.content == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    if path.startswith("/status.json"):
        # The figures move between two requests; the length may differ by a few digits.
        assert abs(int(head.headers["Content-Length"]) - len(get.content)) < 200
    else:
        assert int(head.headers["Content-Length"]) == len(get.content)


@pytest.mark.parametrize("path", ["/status", "/status.json"])
@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
def test_other_methods_are_405(client, path, method):
    r = client.request(method, path, data="{}")
    expect_json(r, 405, "Method not allowed.")
    assert r.headers.get("Allow") == "GET, HEAD", describe(r)


# -- the figures -----------------------------------------------------------------------------


def test_shape_without_any_grab(start_server):
    srv = start_fleet(start_server)
    r = status(srv)
    data = expect_json(r, 200, "")
    assert r.headers["Content-Type"] == JSON_CT
    check_shape(data)
    assert data["coupons"] == [] and data["total"] == 0 and data["pages"] == 0
    assert data["page"] == 1
    assert totals(data) == dict.fromkeys(OUTCOMES, 0)
    assert data["latency_ms"] == {"p50": None, "p99": None}


def test_counts_follow_grabs(start_server):
    """Each outcome counted once per answer, on whichever instance answered it."""
    fleet = start_fleet(start_server)
    servers = servers_of(fleet)
    clients = [Client(srv) for srv in servers]
    first = clients[0]
    seller, stoken = first.new_user("saler")
    coupon = first.new_coupon(stoken, seller, amount=2)
    customers = [first.new_user("customer") for _ in range(3)]
    # Alternate instances, so that in the distributed runs both answer every kind.
    answers = []
    for i, (who, token, expected) in enumerate([
            (customers[0], customers[0][1], 201),
            (customers[0], customers[0][1], 204),   # already held
            (customers[1], customers[1][1], 201),
            (customers[2], customers[2][1], 204),   # sold out
            (customers[0], customers[0][1], 204),   # sold out before already held
    ]):
        r = clients[i % len(clients)].grab(token, seller, coupon)
        assert r.status_code == expected, describe(r)
        answers.append(r.headers.get("X-Seckill-Reason"))
    assert answers == [None, "already-held", None, "sold-out", "sold-out"]
    # Rejected: every other answer of the grab route.
    for i, (token, path, status_code) in enumerate([
            (customers[1][1], f"/api/users/{seg(seller)}/coupons/{seg(uniq('none'))}", 204),
            (stoken, f"/api/users/{seg(seller)}/coupons/{seg(coupon)}", 401),
            (None, f"/api/users/{seg(seller)}/coupons/{seg(coupon)}", 401),
            ("not-a-token", f"/api/users/{seg(seller)}/coupons/{seg(coupon)}", 401)]):
        r = clients[i % len(clients)].request("PATCH", path, token=token)
        assert r.status_code == status_code, describe(r)
    # Not grabs: other routes, and a wrong method on the grab route.
    first.request("GET", f"/api/users/{seg(seller)}/coupons/{seg(coupon)}")
    first.list(stoken, seller)

    expected = {"granted": 2, "sold_out": 2, "already_held": 1, "rejected": 4}
    for srv in servers:
        data = wait_for(srv, lambda d: totals(d) == expected, expected)
        assert data["instances"] == len(servers), data
        assert data["latency_ms"]["p50"] is not None and data["latency_ms"]["p50"] > 0, data
        mine = [c for c in data["coupons"] if c["seller"] == seller and c["name"] == coupon]
        assert mine == [{"seller": seller, "name": coupon, "amount": 2, "left": 0}], data


def test_left_is_exact_at_once(start_server):
    """`left` is read when asked (as the list route's), not from the last minute's figures."""
    fleet = start_fleet(start_server)
    client = Client(fleet)
    seller, stoken = client.new_user("saler")
    coupon = client.new_coupon(stoken, seller, amount=5)
    for n in range(1, 4):
        _, token = client.new_user("customer")
        expect_json(client.grab(token, seller, coupon), 201, "")
        for srv in servers_of(fleet):
            data = status_data(srv, f"seller={seg(seller)}")
            assert data["coupons"] == [{"seller": seller, "name": coupon, "amount": 5,
                                        "left": 5 - n}], data


def test_paging_and_seller_filter(start_server):
    fleet = start_fleet(start_server)
    client = Client(fleet)
    seller, stoken = client.new_user("saler")
    names = [f"c{i:03d}" for i in range(120)]
    for name in names:
        client.new_coupon(stoken, seller, name, amount=7)
    other, otoken = client.new_user("saler")
    other_names = [client.new_coupon(otoken, other, amount=3) for _ in range(3)]

    pages = [status_data(fleet, f"seller={seg(seller)}&page={p}") for p in (1, 2, 3, 4)]
    assert [len(p["coupons"]) for p in pages] == [50, 50, 20, 0]
    for p, data in enumerate(pages, 1):
        assert data["page"] == p and data["pages"] == 3 and data["total"] == 120, data
        assert all(c["seller"] == seller and c["amount"] == 7 and c["left"] == 7
                   for c in data["coupons"])
    assert [c["name"] for p in pages for c in p["coupons"]] == names, "not in creation order"

    # Every seller's together, in creation order: this server holds these two sellers' only.
    everything = [status_data(fleet, f"page={p}") for p in (1, 2, 3)]
    assert everything[0]["total"] == 123 and everything[0]["pages"] == 3
    listed = [(c["seller"], c["name"]) for p in everything for c in p["coupons"]]
    assert listed == [(seller, n) for n in names] + [(other, n) for n in other_names]

    data = status_data(fleet, f"seller={seg(other)}")
    assert [c["name"] for c in data["coupons"]] == other_names and data["total"] == 3

    # The query's rules are the list route's: first `page` wins, <= 1 is the first page,
    # past the end is an empty page, a seller named differently is another seller.
    assert status_data(fleet, f"seller={seg(seller)}&page=3&page=1")["page"] == 3
    for page in ("0", "-3", "", "1"):
        data = status_data(fleet, f"seller={seg(seller)}&page={page}")
        assert data["page"] == 1 and len(data["coupons"]) == 50, page
    data = status_data(fleet, f"seller={seg(seller)}&page=99999999999999999999")
    assert data["coupons"] == [] and data["total"] == 120
    for nobody in (uniq("nobody"), seller.upper(), seller + " ", "x" * 65, "%zz", ""):
        data = status_data(fleet, "seller=" + (nobody if nobody == "%zz" else seg(nobody)))
        if nobody == "":
            assert data["total"] == 123  # an empty seller is no filter
        else:
            assert data["coupons"] == [] and data["total"] == 0, nobody
    customer, _ = client.new_user("customer")
    assert status_data(fleet, f"seller={seg(customer)}")["total"] == 0


def test_names_come_back_byte_for_byte(start_server):
    srv = start_fleet(start_server)
    client = Client(srv)
    seller, stoken = client.new_user("saler")
    names = ['say "hi" \\ back', "ünïcødé 优惠券 🎟", "<b>&amp;<i>", "tab\u00a0nbsp"]
    for name in names:
        client.new_coupon(stoken, seller, name, amount=1)
    r = status(srv, f"seller={seg(seller)}")
    data = expect_json(r, 200, "")
    assert [c["name"] for c in data["coupons"]] == names, r.content


@pytest.mark.parametrize("page", ["abc", "1.5", "+1", " 1", "1e2", "0x10", "--1", "%2B1"])
def test_bad_page_is_400(client, page):
    expect_json(status(client.server, f"page={page}"), 400, "Wrong format of page.")
    expect_json(status(client.server, f"seller=x&page={page}"), 400, "Wrong format of page.")


@pytest.mark.skipif(not DISTRIBUTED, reason="two instances of one deployment")
def test_every_instance_shows_all_instances(start_server):
    """Grabs answered by each instance alone, and each one's page holds both."""
    fleet = start_fleet(start_server)
    a, b = fleet.servers
    client_a, client_b = Client(a), Client(b)
    seller, stoken = client_a.new_user("saler")
    coupon = client_a.new_coupon(stoken, seller, amount=100)
    tokens = [client_a.new_user("customer")[1] for _ in range(5)]
    for token in tokens[:3]:
        expect_json(client_a.grab(token, seller, coupon), 201, "")
    for token in tokens[3:]:
        expect_json(client_b.grab(token, seller, coupon), 201, "")
    expect_204(client_b.grab(tokens[0], seller, coupon), "already-held")  # on b
    expected = {"granted": 5, "sold_out": 0, "already_held": 1, "rejected": 0}
    for srv in (a, b):
        data = wait_for(srv, lambda d: totals(d) == expected and d["instances"] == 2, expected)
        assert data["coupons"] == [{"seller": seller, "name": coupon, "amount": 100,
                                    "left": 95}], data
    # One instance stops: the other no longer counts it once its reports are old.
    b.stop()
    wait_for(a, lambda d: d["instances"] == 1, "one instance", timeout=10)
    assert totals(status_data(a)) == expected


# -- --status-page off -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_off_answers_404(start_server, how):
    if how == "flag":
        srv = start_server(options={"--status-page": "off"})
    else:
        srv = start_server(env={"SECKILL_STATUS_PAGE": "off"})
    for path in ("/status", "/status.json", "/status.json?page=abc", "/status/"):
        for method in ("GET", "HEAD", "POST"):
            r = requests.request(method, srv.url + path, timeout=10)
            assert r.status_code == 404, describe(r)
            if method != "HEAD":
                expect_json(r, 404, "Not found.")
    assert requests.get(srv.url + "/metrics", timeout=10).status_code == 200
    # Grabs still work, and are still counted in /metrics.
    client = Client(srv)
    seller, stoken = client.new_user("saler")
    coupon = client.new_coupon(stoken, seller, amount=1)
    _, token = client.new_user("customer")
    expect_json(client.grab(token, seller, coupon), 201, "")


def test_on_is_the_default_and_bad_values_are_refused(start_server):
    srv = start_server(options={"--status-page": "on"})
    assert requests.get(srv.url + "/status", timeout=10).status_code == 200
    out = subprocess.run([SECKILL_BIN, "--status-page", "maybe"], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode != 0 and "--status-page" in out.stderr + out.stdout, out
    out = subprocess.run([SECKILL_BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert "--status-page" in out.stdout and "SECKILL_STATUS_PAGE" in out.stdout, out.stdout
