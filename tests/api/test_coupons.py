"""POST /api/users/{username}/coupons — create a coupon (API.md "Coupons"), the integer
formats of "Conventions", and the sale window."""

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from seckill_harness import (Client, describe, expect_204, expect_json, free_port, seg,
                             uniq)

AMOUNT_WRONG = "Amount field wrong format."
STOCK_WRONG = "Stock field wrong format."
EMPTY = "Coupon name or description should not be empty."
INVALID = "Coupon name or description too long or invalid."
DUPLICATE = "Create failed. Maybe (username,coupon name) duplicates"
WINDOW = "Sale window invalid."
T2030 = 1893456000  # 2030-01-01T00:00:00Z


@pytest.fixture(scope="module")
def seller(client):
    return client.new_user("saler")


def create_raw(client, token, seller, data):
    if isinstance(data, str):
        data = data.encode()
    return client.request("POST", f"/api/users/{seg(seller)}/coupons", token=token, data=data)


def seller_view(client, token, seller, coupon):
    """The seller's list entry for `coupon` (all pages)."""
    for item in client.list_all(token, seller):
        if item["name"] == coupon:
            return item
    raise AssertionError(f"{coupon} not in {seller}'s list")


def test_create_and_list(client, seller):
    name, token = seller
    coupon = uniq("cp")
    r = client.create_coupon(token, name, coupon, amount=20, stock=10, description="fsdfd")
    expect_json(r, 201, body={"errMsg": ""})
    item = seller_view(client, token, name, coupon)
    assert item == {"name": coupon, "stock": 10, "description": "fsdfd", "amount": 20,
                    "left": 20}


@pytest.mark.embedded_only
def test_create_stored_in_database(server, client, seller):
    name, token = seller
    coupon = uniq("db")
    expect_json(client.create_coupon(token, name, coupon, amount="7", stock="3",
                                     description="d b"), 201, "")
    row = server.coupon_rows()[(name, coupon)]
    assert row["amount"] == 7 and row["remaining"] == 7 and row["stock"] == 3
    assert row["description"] == "d b"
    assert row["start_at"] is None and row["end_at"] is None
    assert row["created_at"] is not None
    typed = server.query("select typeof(amount) a, typeof(remaining) r, typeof(stock) s "
                         "from coupons where name = ?", (coupon,))[0]
    assert typed == {"a": "integer", "r": "integer", "s": "integer"}


def test_customer_cannot_create(client, seller):
    cust, ctoken = client.new_user("customer")
    msg = {"errMsg": "Only sellers can create coupons."}
    expect_json(client.create_coupon(ctoken, cust, uniq("cp")), 401, body=msg)
    expect_json(client.create_coupon(ctoken, seller[0], uniq("cp")), 401, body=msg)
    # checked before the body
    expect_json(create_raw(client, ctoken, cust, "not json"), 401, body=msg)


def test_cannot_create_for_other_users(client, seller):
    other, _ = client.new_user("saler")
    cust, _ = client.new_user("customer")
    msg = {"errMsg": "Cannot create coupons for other users."}
    for target in (other, cust, uniq("nobody"), seller[0].upper()):
        expect_json(client.create_coupon(seller[1], target, uniq("cp")), 401, body=msg)
    expect_json(create_raw(client, seller[1], other, "not json"), 401, body=msg)
    expect_json(client.create_coupon(seller[1], other, "", amount="x"), 401, body=msg)
    r = client.list(seller[1], other)
    assert r.status_code == 204, describe(r)


@pytest.mark.parametrize("data", [b"", b"nope", b"[]", b'"x"', b"1", b"null",
                                  b'{"name": "a", "amount": 1',
                                  b'{"name": "\xff", "amount": 1, "stock": 1, "description": "d"}'])
def test_create_not_json(client, seller, data):
    expect_json(create_raw(client, seller[1], seller[0], data), 400,
                body={"errMsg": "Only receive JSON format."})


@pytest.mark.parametrize("amount,stored", [
    (1, 1), (20, 20), ("20", 20), ("1", 1), (1000000000, 1000000000),
    ("1000000000", 1000000000), ("010", 10),
])
def test_amount_valid(client, seller, amount, stored):
    coupon = uniq("am")
    expect_json(client.create_coupon(seller[1], seller[0], coupon, amount=amount), 201, "")
    item = seller_view(client, seller[1], seller[0], coupon)
    assert item["amount"] == stored and item["left"] == stored
    assert isinstance(item["amount"], int) and isinstance(item["left"], int)


AMOUNT_RAW_WRONG = ["1e2", "10.0", "1.5", '"+10"', '" 10"', '"10 "', '"1e2"', '"10.0"', '""',
                    '"abc"', '"0x10"', "0", '"0"', "-1", '"-1"', "-0", "1000000001",
                    '"1000000001"', "1e30", "9223372036854775808", '"9223372036854775808"',
                    "99999999999999999999999", "true", "false", "[]", "{}", "[1]", "null",
                    "-9223372036854775809", '"1_000"', '"٣"', '"１０"']


@pytest.mark.parametrize("raw", AMOUNT_RAW_WRONG)
def test_amount_wrong_format(client, seller, raw):
    data = '{"name": "%s", "amount": %s, "description": "d", "stock": 1}' % (uniq("aw"), raw)
    expect_json(create_raw(client, seller[1], seller[0], data), 400, body={"errMsg": AMOUNT_WRONG})


def test_amount_missing(client, seller):
    body = {"name": uniq("am"), "description": "d", "stock": 1}
    r = client.request("POST", f"/api/users/{seg(seller[0])}/coupons", token=seller[1],
                       json_body=body)
    expect_json(r, 400, body={"errMsg": AMOUNT_WRONG})


def test_max_amount_option(start_server):
    srv = start_server(options={"--max-amount": 100})
    client = Client(srv)
    name, token = client.new_user("saler")
    expect_json(client.create_coupon(token, name, uniq("m"), amount=100), 201, "")
    expect_json(client.create_coupon(token, name, uniq("m"), amount="100"), 201, "")
    for bad in (101, "101", 1000000000):
        expect_json(client.create_coupon(token, name, uniq("m"), amount=bad), 400,
                    body={"errMsg": AMOUNT_WRONG})


@pytest.mark.parametrize("value", [2**53, 2**63 - 1, 2**64])
def test_max_amount_above_2_53_is_refused(start_server, value):
    """Above 2^53 - 1 the distributed deployment's Lua scripts would skip integers: refused
    at start (both deployments), with a message naming the limit and why."""
    srv = start_server(options={"--max-amount": value}, start=False)
    srv.port = free_port()
    result = subprocess.run(srv.command(), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0, result.stderr
    assert ("--max-amount is larger than 9007199254740991 (2^53 - 1), the largest amount "
            "counted exactly: Redis's Lua scripts hold a coupon's left as a double"
            in result.stderr), result.stderr


@pytest.mark.parametrize("stock,stored", [
    (0, 0), ("0", 0), (10, 10), ("10", 10), (9007199254740991, 9007199254740991),
    ("9007199254740991", 9007199254740991), ("-0", 0),
])
def test_stock_valid(client, seller, stock, stored):
    coupon = uniq("st")
    expect_json(client.create_coupon(seller[1], seller[0], coupon, stock=stock), 201, "")
    item = seller_view(client, seller[1], seller[0], coupon)
    assert item["stock"] == stored and isinstance(item["stock"], int)


STOCK_RAW_WRONG = ["-1", '"-1"', "9007199254740992", '"9007199254740992"', "1e30", "1e2",
                   "10.0", "0.5", '"+10"', '" 10"', '"10 "', '""', '"ten"', "true", "[]",
                   "{}", "null", "18446744073709551616", "-9007199254740992"]


@pytest.mark.parametrize("raw", STOCK_RAW_WRONG)
def test_stock_wrong_format(client, seller, raw):
    data = '{"name": "%s", "amount": 5, "description": "d", "stock": %s}' % (uniq("sw"), raw)
    expect_json(create_raw(client, seller[1], seller[0], data), 400, body={"errMsg": STOCK_WRONG})


def test_stock_missing(client, seller):
    body = {"name": uniq("st"), "description": "d", "amount": 1}
    r = client.request("POST", f"/api/users/{seg(seller[0])}/coupons", token=seller[1],
                       json_body=body)
    expect_json(r, 400, body={"errMsg": STOCK_WRONG})


@pytest.mark.parametrize("name,description", [
    ("", "d"), (None, "d"), ("NAME", ""), ("NAME", None), ("", ""),
])
def test_name_or_description_empty(client, seller, name, description):
    body = {"amount": 1, "stock": 1}
    if name is not None:
        body["name"] = uniq("e") if name == "NAME" else name
    if description is not None:
        body["description"] = description
    r = client.request("POST", f"/api/users/{seg(seller[0])}/coupons", token=seller[1],
                       json_body=body)
    expect_json(r, 400, body={"errMsg": EMPTY})


@pytest.mark.parametrize("make", [
    lambda u: (u + "x" * (65 - len(u)), "d"),
    lambda u: ("x" * 63 + "é", "d"),
    lambda u: (u + "/x", "d"),
    lambda u: ("/" + u, "d"),
    lambda u: (u + "\n", "d"),
    lambda u: (u + "\tx", "d"),
    lambda u: (u + "\x00", "d"),
    lambda u: (u + "\x1b[0m", "d"),
    lambda u: (u + "\x7f", "d"),
    lambda u: (u, "d" * 1025),
    lambda u: (u, "é" * 512 + "d"),
], ids=["name-65", "name-65-bytes-utf8", "name-slash", "name-leading-slash", "name-newline",
        "name-tab", "name-nul", "name-escape", "name-del", "description-1025",
        "description-1025-bytes-utf8"])
def test_name_or_description_invalid(client, seller, make):
    name, description = make(uniq("n"))
    r = client.create_coupon(seller[1], seller[0], name, description=description)
    expect_json(r, 400, body={"errMsg": INVALID})


@pytest.mark.parametrize("make", [
    lambda u: (u + "x" * (64 - len(u)), "d"),
    lambda u: (u + "x" * (62 - len(u)) + "é", "d"),
    lambda u: (u + " 50% off? #1 & more", "d"),
    lambda u: ("优惠券" + u, "描述"),
    lambda u: (u, "d" * 1024),
    lambda u: (u, "é" * 512),
    lambda u: (u, "line one\nline two\ttabbed / slashed"),
], ids=["name-64", "name-64-bytes-utf8", "name-punctuation-and-spaces", "cjk",
        "description-1024", "description-1024-bytes-utf8", "description-free-text"])
def test_name_and_description_valid(client, seller, make):
    name, description = make(uniq("n"))
    r = client.create_coupon(seller[1], seller[0], name, description=description)
    expect_json(r, 201, "")
    item = seller_view(client, seller[1], seller[0], name)
    assert item["description"] == description


def test_duplicate_name_per_seller(client, seller):
    coupon = uniq("dup")
    expect_json(client.create_coupon(seller[1], seller[0], coupon, amount=3), 201, "")
    r = client.create_coupon(seller[1], seller[0], coupon, amount=5, description="other")
    expect_json(r, 400, body={"errMsg": DUPLICATE})
    item = seller_view(client, seller[1], seller[0], coupon)
    assert item["amount"] == 3 and item["description"] == "desc"
    # coupon names are case-sensitive
    expect_json(client.create_coupon(seller[1], seller[0], coupon.upper()), 201, "")


def test_two_sellers_share_a_coupon_name(server, client):
    s1, t1 = client.new_user("saler")
    s2, t2 = client.new_user("saler")
    coupon = uniq("shared")
    expect_json(client.create_coupon(t1, s1, coupon, amount=1, stock=5), 201, "")
    expect_json(client.create_coupon(t2, s2, coupon, amount=2, stock=7), 201, "")
    assert seller_view(client, t1, s1, coupon)["stock"] == 5
    assert seller_view(client, t2, s2, coupon)["stock"] == 7
    # grabbing one does not touch the other
    cust, ctoken = client.new_user("customer")
    expect_json(client.grab(ctoken, s1, coupon), 201, "")
    expect_json(client.grab(ctoken, s2, coupon), 201, "")
    assert seller_view(client, t1, s1, coupon)["left"] == 0
    assert seller_view(client, t2, s2, coupon)["left"] == 1
    held = client.list_all(ctoken, cust)
    assert sorted((c["seller"], c["name"], c["stock"]) for c in held) == \
        sorted([(s1, coupon, 5), (s2, coupon, 7)])
    rows = server.coupon_rows()
    assert rows[(s1, coupon)]["remaining"] == 0 and rows[(s2, coupon)]["remaining"] == 1


def test_field_order(client, seller):
    """The first failing row of the table answers; the sale window comes after them all."""
    name, token = seller
    taken = client.new_coupon(token, name)
    cases = [
        ({"name": "", "amount": "x", "stock": "y", "description": ""}, AMOUNT_WRONG),
        ({"name": "a/b", "amount": 0, "stock": -1, "description": ""}, AMOUNT_WRONG),
        ({"name": "", "amount": 1, "stock": "y", "description": ""}, STOCK_WRONG),
        ({"name": "a/b", "amount": 1, "stock": 2 ** 53, "description": "d" * 2000}, STOCK_WRONG),
        ({"name": "", "amount": 1, "stock": 1, "description": "d" * 2000}, EMPTY),
        ({"name": "x" * 65, "amount": 1, "stock": 1, "description": ""}, EMPTY),
        ({"name": taken, "amount": "1.0", "stock": 1, "description": "d"}, AMOUNT_WRONG),
        ({"name": "x" * 65, "amount": 1, "stock": 1, "description": "d", "start_at": "bad"},
         INVALID),
        ({"name": uniq("o"), "amount": 0, "stock": 1, "description": "d", "start_at": 10,
          "end_at": 5}, AMOUNT_WRONG),
        ({"name": "", "amount": 1, "stock": 1, "description": "d", "end_at": "never"}, EMPTY),
    ]
    for body, msg in cases:
        r = client.request("POST", f"/api/users/{seg(name)}/coupons", token=token, json_body=body)
        expect_json(r, 400, body={"errMsg": msg})


def test_field_names_case_insensitive_and_last_wins(client, seller):
    name, token = seller
    coupon = uniq("ci")
    data = json.dumps({"NAME": "first", "Amount": "3", "STOCK": 4, "Description": "D"})
    data = data[:-1] + ', "name": "%s", "amount": 0, "AMOUNT": 9}' % coupon
    expect_json(create_raw(client, token, name, data), 201, "")
    item = seller_view(client, token, name, coupon)
    assert item == {"name": coupon, "stock": 4, "description": "D", "amount": 9, "left": 9}
    assert all(c["name"] != "first" for c in client.list_all(token, name))


# -- sale window ---------------------------------------------------------------------------


@pytest.mark.parametrize("start,end,want_start,want_end", [
    (T2030, T2030 + 60, T2030, T2030 + 60),
    (str(T2030), str(T2030 + 1), T2030, T2030 + 1),
    ("2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z", T2030, T2030 + 86400),
    ("2030-01-01T02:00:00+02:00", "2029-12-31T20:00:00-05:00", T2030, T2030 + 3600),
    ("2030-01-01T00:00:00.75Z", None, T2030, None),
    (None, "2030-01-01T05:30:00+05:30", None, T2030),
    (None, T2030, None, T2030),
    (T2030, None, T2030, None),
    (None, 1, None, 1),                 # an end alone, even in the past, is allowed
    (None, "2001-01-01T00:00:00Z", None, 978307200),
    (0, 1, 0, 1),
])
def test_sale_window_valid(client, seller, start, end, want_start, want_end):
    name, token = seller
    coupon = uniq("w")
    extra = {}
    if start is not None:
        extra["start_at"] = start
    if end is not None:
        extra["end_at"] = end
    expect_json(client.create_coupon(token, name, coupon, **extra), 201, "")
    item = seller_view(client, token, name, coupon)
    expected = {"name": coupon, "stock": 10, "description": "desc", "amount": 20, "left": 20}
    if want_start is not None:
        expected["start_at"] = want_start
    if want_end is not None:
        expected["end_at"] = want_end
    assert item == expected


def test_sale_window_null_is_absent(server, client, seller):
    name, token = seller
    coupon = uniq("null")
    expect_json(client.create_coupon(token, name, coupon, start_at=None, end_at=None), 201, "")
    item = seller_view(client, token, name, coupon)
    assert "start_at" not in item and "end_at" not in item
    row = server.coupon_rows()[(name, coupon)]
    assert row["start_at"] is None and row["end_at"] is None


def test_sale_window_stored(server, client, seller):
    name, token = seller
    coupon = uniq("wdb")
    expect_json(client.create_coupon(token, name, coupon, start_at="2030-01-01T00:00:00Z",
                                     end_at=T2030 + 10), 201, "")
    row = server.coupon_rows()[(name, coupon)]
    assert row["start_at"] == T2030 and row["end_at"] == T2030 + 10


@pytest.mark.parametrize("start,end", [
    (T2030, T2030),
    (T2030, T2030 - 1),
    ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
    ("2030-01-01T02:00:00+02:00", "2030-01-01T00:00:00Z"),   # same instant
    ("2030-01-01T00:00:00Z", T2030 - 100),
    (T2030, 0),
    ("2030-01-01T00:00:00", None),            # no offset
    ("2030-01-01", None),
    ("tomorrow", None),
    ("", None),
    ("2030-13-01T00:00:00Z", None),
    ("2030-01-32T00:00:00Z", None),
    ("2030-01-01T25:00:00Z", None),
    ("2030-01-01T00:00:00+2:00", None),
    (None, "2030-01-01T00:00:00 Z"),
    (None, "1e9"),
    (None, 1.5),
    (None, 1e10),
    (None, "+1893456000"),
    (None, " 1893456000"),
    (None, True),
    (None, [T2030]),
    (None, {"t": T2030}),
    (None, "99999999999999999999"),
])
def test_sale_window_invalid(client, seller, start, end):
    name, token = seller
    coupon = uniq("bad")
    extra = {}
    if start is not None:
        extra["start_at"] = start
    if end is not None:
        extra["end_at"] = end
    expect_json(client.create_coupon(token, name, coupon, **extra), 400, body={"errMsg": WINDOW})
    assert all(c["name"] != coupon for c in client.list_all(token, name))


def test_sale_window_field_names_case_insensitive(client, seller):
    name, token = seller
    coupon = uniq("wci")
    data = json.dumps({"name": coupon, "amount": 1, "stock": 1, "description": "d",
                       "Start_At": T2030, "END_AT": T2030 + 5})
    expect_json(create_raw(client, token, name, data), 201, "")
    item = seller_view(client, token, name, coupon)
    assert item["start_at"] == T2030 and item["end_at"] == T2030 + 5


def test_created_coupon_grabbable_at_once(client, seller):
    name, token = seller
    coupon = uniq("now")
    expect_json(client.create_coupon(token, name, coupon, amount=1), 201, "")
    _, ctoken = client.new_user("customer")
    expect_json(client.grab(ctoken, name, coupon), 201, body={"errMsg": ""})


def test_sale_opens_at_start(client, seller):
    name, token = seller
    coupon = uniq("soon")
    start = int(time.time()) + 2
    expect_json(client.create_coupon(token, name, coupon, amount=2, start_at=start), 201, "")
    _, ctoken = client.new_user("customer")
    expect_204(client.grab(ctoken, name, coupon), "not-started")
    time.sleep(max(0.0, start - time.time()) + 1.1)
    expect_json(client.grab(ctoken, name, coupon), 201, body={"errMsg": ""})


def test_description_with_nul_round_trips(client, seller):
    """Free text may hold any character; what is stored is what was sent, never cut at a
    NUL (or else refused as invalid, but never silently truncated)."""
    name, token = seller
    coupon = uniq("nul")
    data = json.dumps({"name": coupon, "amount": 1, "stock": 1, "description": "a\u0000b"})
    r = create_raw(client, token, name, data)
    if r.status_code == 400:
        expect_json(r, 400, body={"errMsg": INVALID})
        return
    expect_json(r, 201, "")
    assert seller_view(client, token, name, coupon)["description"] == "a\u0000b"


def test_stored_strings_survive_a_restart_byte_for_byte(start_server, tmp_path):
    """Every string the API stores comes back after a restart exactly as it was sent:
    descriptions with NULs anywhere (once loaded with strlen, cut at the first), control
    characters, non-ASCII; names with every character the API admits. In the distributed
    deployment also after a FLUSHALL, when the hot state is rebuilt from SQL."""
    srv = start_server(data_dir=tmp_path / "data")
    client = Client(srv)
    seller = uniq('s"q\\é') + "優惠"  # user names: no whitespace (API.md)
    customer = uniq("cü") + "😀"
    expect_json(client.register(seller, "pw", "saler"), 201, "")
    expect_json(client.register(customer, "pw", "customer"), 201, "")
    stoken, ctoken = client.token(seller, "pw"), client.token(customer, "pw")
    descriptions = ["a\u0000b", "\u0000", "\u0000lead", "trail\u0000", "x\u0000" * 400,
                    "é\u0000" + "d" * 1021, "\u0001\u001f\u007f \u2028 </script> \"'\\",
                    "line\nnext\ttab\r", "😀" * 256]
    for i, description in enumerate(descriptions):
        assert len(description.encode()) <= 1024
        name = f"{uniq('n')} #{i} ✓ 50% & more"
        expect_json(client.create_coupon(stoken, seller, name, description=description,
                                         amount=3), 201, "")
        expect_json(client.grab(ctoken, seller, name), 201, "")
    seller_view = client.list_all(stoken, seller)
    customer_view = client.list_all(ctoken, customer)
    assert [item["description"] for item in seller_view] == descriptions
    assert [item["description"] for item in customer_view] == descriptions
    assert all(item["seller"] == seller for item in customer_view)

    assert srv.stop() == 0
    srv.start()
    assert client.list_all(stoken, seller) == seller_view
    assert client.list_all(ctoken, customer) == customer_view
    r = client.grab(ctoken, seller, seller_view[0]["name"])
    expect_204(r, "already-held")
    if srv.deployment is not None:
        assert srv.deployment.settle() == 0
        assert srv.stop() == 0
        srv.deployment.redis.command("FLUSHALL")
        srv.start()
        assert client.list_all(stoken, seller) == seller_view
        assert client.list_all(ctoken, customer) == customer_view
        expect_204(client.grab(ctoken, seller, seller_view[-1]["name"]), "already-held")


def test_concurrent_creation_of_one_name(server, client, seller):
    name, token = seller
    coupon = uniq("race")

    def create(i):
        return Client(server, requests.Session()).create_coupon(token, name, coupon, amount=i + 1)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(create, range(20)))
    assert sorted(r.status_code for r in results) == [201] + [400] * 19
    for r in results:
        if r.status_code == 400:
            expect_json(r, 400, body={"errMsg": DUPLICATE})
    rows = server.query("select amount, remaining from coupons where seller = ? and name = ?",
                        (name, coupon))
    assert len(rows) == 1 and rows[0]["amount"] == rows[0]["remaining"]
    assert seller_view(client, token, name, coupon)["amount"] == rows[0]["amount"]


def test_special_characters_round_trip(client):
    """Quotes, backslashes, control characters in free text and non-ASCII survive the JSON
    answers unchanged (the answers stay valid JSON)."""
    seller = uniq('s"\\q') + "é"
    expect_json(client.register(seller, "pw", "saler"), 201, "")
    token = client.token(seller, "pw")
    coupon = 'say "hi" \\ ' + uniq("x") + " 優惠"
    description = 'line\nnext\t"quoted" \\ back \u0001 \u2028 </script> 😀'
    expect_json(client.create_coupon(token, seller, coupon, description=description, amount=2),
                201, "")
    assert seller_view(client, token, seller, coupon)["description"] == description
    cust, ctoken = client.new_user("customer")
    expect_json(client.grab(ctoken, seller, coupon), 201, "")
    held = expect_json(client.list(ctoken, cust), 200, "")["data"]
    assert held == [{"name": coupon, "stock": 10, "description": description, "seller": seller}]
