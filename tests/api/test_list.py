"""GET /api/users/{username}/coupons?page=N — list coupons (API.md "Coupons")."""

import pytest

from seckill_harness import describe, expect_204, expect_json, seg, uniq

SELLER_KEYS = {"name", "stock", "description", "amount", "left"}
CUSTOMER_KEYS = {"name", "stock", "description", "seller"}


@pytest.fixture(scope="module")
def big_seller(client):
    """A seller with 25 coupons created in a known order: (name, token, [coupon names])."""
    name, token = client.new_user("saler")
    coupons = []
    for i in range(25):
        coupon = f"c{i:02d}_{uniq('x')}"
        r = client.create_coupon(token, name, coupon, amount=i + 1, stock=i * 10,
                                 description=f"desc {i}")
        expect_json(r, 201, "")
        coupons.append(coupon)
    return name, token, coupons


def page_names(r):
    data = expect_json(r, 200, "")
    assert set(data) == {"errMsg", "data"}, describe(r)
    return [c["name"] for c in data["data"]]


def test_seller_pages(client, big_seller):
    name, token, coupons = big_seller
    r = client.list(token, name)
    data = expect_json(r, 200, "")
    assert len(data["data"]) == 20
    for i, item in enumerate(data["data"]):
        assert item == {"name": coupons[i], "stock": i * 10, "description": f"desc {i}",
                        "amount": i + 1, "left": i + 1}
    assert page_names(client.list(token, name, page=1)) == coupons[:20]
    assert page_names(client.list(token, name, page=2)) == coupons[20:]
    expect_204(client.list(token, name, page=3))
    expect_204(client.list(token, name, page=4))


@pytest.mark.parametrize("query", ["page=1", "", "page=", "page=0", "page=-1", "page=-0",
                                   "page=-99999999999999999999999", "page=01", "page=%31",
                                   "page=-9223372036854775808", "page=-9223372036854775809",
                                   "foo=bar", "foo=bar&page=1", "page=1&page=2",
                                   "page=&page=2"])
def test_first_page(client, big_seller, query):
    name, token, coupons = big_seller
    assert page_names(client.list(token, name, query=query)) == coupons[:20]


@pytest.mark.parametrize("query", ["page=2", "page=02", "page=%32", "page=2&page=1",
                                   "x=1&page=2&page=abc"])
def test_second_page(client, big_seller, query):
    name, token, coupons = big_seller
    assert page_names(client.list(token, name, query=query)) == coupons[20:]


@pytest.mark.parametrize("query", ["page=3", "page=1000", "page=2147483648",
                                   "page=9223372036854775807", "page=9223372036854775808",
                                   "page=461168601842738791", "page=461168601842738792",
                                   "page=461168601842738793", "page=922337203685477581",
                                   "page=1844674407370955162", "page=18446744073709551617",
                                   "page=99999999999999999999999999999999"])
def test_past_the_end(client, big_seller, query):
    name, token, _ = big_seller
    expect_204(client.list(token, name, query=query))


@pytest.mark.parametrize("query", ["page=abc", "page=1.5", "page=1e1", "page=%2B2", "page=+2",
                                   "page=%202", "page=2%20", "page=0x2", "page=1,2", "page=--1",
                                   "page=abc&page=1", "page=2a", "page=-"])
def test_page_wrong_format(client, big_seller, query):
    name, token, _ = big_seller
    expect_json(client.list(token, name, query=query), 400,
                body={"errMsg": "Wrong format of page."})


def test_anyone_logged_in_sees_a_sellers_coupons(client, big_seller):
    name, token, coupons = big_seller
    _, other_seller = client.new_user("saler")
    _, customer = client.new_user("customer")
    own = client.list(token, name).json()
    for t in (other_seller, customer):
        r = client.list(t, name)
        assert expect_json(r, 200, "") == own
        for item in own["data"]:
            assert set(item) == SELLER_KEYS


def test_unknown_user(client):
    _, token = client.new_user("customer")
    for user in (uniq("nobody"), "x", "%"):
        expect_json(client.list(token, user), 400, body={"errMsg": "Record not found."})
    # token first
    expect_json(client.list(None, uniq("nobody")), 401, body={"errMsg": "Not Authorized."})
    expect_json(client.list("garbage", uniq("nobody")), 401, body={"errMsg": "Token is invalid."})


def test_unknown_user_before_page_format(client):
    """Unknown user and bad page: both 400; the route-level rules do not fix the order, so
    only the status is asserted."""
    _, token = client.new_user("customer")
    r = client.list(token, uniq("nobody"), query="page=abc")
    assert r.status_code == 400, describe(r)


def test_empty_seller_and_customer(client):
    seller, stoken = client.new_user("saler")
    cust, ctoken = client.new_user("customer")
    expect_204(client.list(stoken, seller))
    expect_204(client.list(ctoken, seller))
    expect_204(client.list(ctoken, cust))
    expect_204(client.list(ctoken, cust, page=5))


def test_other_customer(client, big_seller):
    a, atoken = client.new_user("customer")
    b, btoken = client.new_user("customer")
    body = {"errMsg": "Cannot check other customer.", "data": []}
    expect_json(client.list(atoken, b), 401, body=body)
    expect_json(client.list(btoken, a), 401, body=body)
    # a seller is not that customer either
    expect_json(client.list(big_seller[1], a), 401, body=body)
    # even when the other customer holds coupons
    expect_json(client.grab(btoken, big_seller[0], big_seller[2][0]), 201, "")
    expect_json(client.list(atoken, b), 401, body=body)


def test_customer_view(client):
    s1, t1 = client.new_user("saler")
    s2, t2 = client.new_user("saler")
    a = client.new_coupon(t1, s1, stock=5, description="first", amount=3)
    b = client.new_coupon(t2, s2, stock=0, description="second", amount=3)
    c = client.new_coupon(t1, s1, stock=99, description="third", amount=3)
    cust, ctoken = client.new_user("customer")
    # grab order: c, a, b
    for seller, coupon in ((s1, c), (s1, a), (s2, b)):
        expect_json(client.grab(ctoken, seller, coupon), 201, "")
    data = expect_json(client.list(ctoken, cust), 200, "")
    assert data["data"] == [
        {"name": c, "stock": 99, "description": "third", "seller": s1},
        {"name": a, "stock": 5, "description": "first", "seller": s1},
        {"name": b, "stock": 0, "description": "second", "seller": s2},
    ]
    assert set(data) == {"errMsg", "data"}
    # the sellers see the grabs in left, exactly
    items = {i["name"]: i for i in client.list(t1, s1).json()["data"]}
    assert items[a]["left"] == 2 and items[c]["left"] == 2


def test_customer_pages_in_grab_order(client):
    seller, stoken = client.new_user("saler")
    coupons = [client.new_coupon(stoken, seller, amount=1) for _ in range(23)]
    cust, ctoken = client.new_user("customer")
    order = coupons[::-1]
    for i, coupon in enumerate(order):
        expect_json(client.grab(ctoken, seller, coupon), 201, "")
        # read-your-writes: listed on the very next request
        r = client.list(ctoken, cust, page=1 if i < 20 else 2)
        names = page_names(r)
        assert names[-1] == coupon, describe(r)
    assert page_names(client.list(ctoken, cust, page=1)) == order[:20]
    assert page_names(client.list(ctoken, cust, page=2)) == order[20:]
    expect_204(client.list(ctoken, cust, page=3))
    # left is exact, at once
    for item in client.list_all(stoken, seller):
        assert item["left"] == 0 and item["amount"] == 1


def test_seller_list_shows_window_only_when_set(client):
    seller, token = client.new_user("saler")
    plain = client.new_coupon(token, seller)
    start_only = client.new_coupon(token, seller, start_at=1893456000)
    end_only = client.new_coupon(token, seller, end_at=1893456000)
    both = client.new_coupon(token, seller, start_at=1893456000, end_at=1893459600)
    items = {i["name"]: i for i in client.list_all(token, seller)}
    assert set(items[plain]) == SELLER_KEYS
    assert set(items[start_only]) == SELLER_KEYS | {"start_at"}
    assert set(items[end_only]) == SELLER_KEYS | {"end_at"}
    assert items[both]["start_at"] == 1893456000 and items[both]["end_at"] == 1893459600
    # the customer's view of such a coupon has the customer fields
    cust, ctoken = client.new_user("customer")
    window = client.new_coupon(token, seller, start_at=0, end_at=4102444800)
    expect_json(client.grab(ctoken, seller, window), 201, "")
    held = client.list(ctoken, cust).json()["data"]
    assert len(held) == 1 and {"name", "stock", "description", "seller"} <= set(held[0])


def test_percent_encoded_user_name(client):
    seller = uniq("s%?#é&+")
    assert client.register(seller, "pw", "saler").status_code == 201
    token = client.token(seller, "pw")
    coupon = client.new_coupon(token, seller)
    data = expect_json(client.request("GET", f"/api/users/{seg(seller)}/coupons", token=token),
                       200, "")
    assert [c["name"] for c in data["data"]] == [coupon]
    # unreserved characters may be encoded too
    encoded = "".join("%%%02X" % b for b in seller.encode())
    data = expect_json(client.request("GET", f"/api/users/{encoded}/coupons", token=token), 200)
    assert [c["name"] for c in data["data"]] == [coupon]


@pytest.mark.parametrize("seller", ["..", ".", "a%2Fb", "%2E%2E"])
def test_dot_segment_user_names(client, seller):
    """'.' and '..' are valid user names (no '/', whitespace or control character); their
    path segments must reach the handler percent-decoded, not be resolved as dot segments."""
    seller = seller + uniq("") if seller not in (".", "..") else seller
    # "." and ".." are registered by this test alone, once per (fresh) server
    expect_json(client.register(seller, "pw", "saler"), 201, "")
    token = client.token(seller, "pw")
    coupon = uniq("dot")
    expect_json(client.create_coupon(token, seller, coupon, amount=5), 201, "")
    names = [c["name"] for c in client.list_all(token, seller)]
    assert coupon in names
    cust, ctoken = client.new_user("customer")
    expect_json(client.grab(ctoken, seller, coupon), 201, "")
    expect_json(client.grab(token, seller, ".."), 401,
                body={"errMsg": "Sellers aren't allowed to get coupons."})
    held = client.list(ctoken, cust).json()["data"]
    assert [(c["seller"], c["name"]) for c in held] == [(seller, coupon)]


def test_exactly_one_full_page(client):
    seller, token = client.new_user("saler")
    coupons = [client.new_coupon(token, seller) for _ in range(20)]
    assert page_names(client.list(token, seller)) == coupons
    expect_204(client.list(token, seller, page=2))
