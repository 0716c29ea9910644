"""CORS (API.md "Operations", `--cors-origin`): a preflight from a listed origin is
answered 204 with the route's methods and the request headers a page may send; every answer
to such an origin names it and exposes Authorization and X-Seckill-Reason; other origins,
and every request without the option, get no CORS header at all. Runs in both deployments
(the harness's SECKILL_DEPLOYMENT)."""

import subprocess

import pytest
import requests

from seckill_harness import SECKILL_BIN, Client, describe, expect_json

SHOP = "https://shop.example"
OTHER = "https://evil.example"
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-methods",
                "access-control-allow-headers", "access-control-expose-headers",
                "access-control-max-age")


def preflight(srv, path, origin, method="PATCH", headers="authorization, content-type"):
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return requests.options(srv.url + path, headers=request_headers, timeout=10)


def cors_headers(response):
    return {name: value for name, value in response.headers.items()
            if name.lower() in CORS_HEADERS}


@pytest.fixture
def cors_server(start_server):
    return start_server(options={"--cors-origin": f"{SHOP}, http://127.0.0.1:8080/"})


@pytest.mark.parametrize("path, allow", [
    ("/api/users/s1/coupons/c1", "PATCH"),
    ("/api/users/s1/coupons", "GET, HEAD, POST"),
    ("/api/users", "POST"),
    ("/api/auth", "POST"),
])
def test_preflight_from_an_allowed_origin(cors_server, path, allow):
    r = preflight(cors_server, path, SHOP)
    assert r.status_code == 204, describe(r)
    assert r.content == b"" and "Content-Type" not in r.headers, describe(r)
    assert r.headers["Access-Control-Allow-Origin"] == SHOP
    assert r.headers["Access-Control-Allow-Methods"] == allow
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert int(r.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in r.headers.get("Vary", "")
    # The second listed origin, written with a trailing slash in the option.
    r = preflight(cors_server, path, "http://127.0.0.1:8080")
    assert r.status_code == 204, describe(r)
    assert r.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8080"


def test_answers_to_an_allowed_origin_expose_the_token_and_the_reason(cors_server):
    client = Client(cors_server)
    client.session.headers["Origin"] = SHOP
    seller, stoken = client.new_user("saler")
    r = client.login(seller)
    assert r.status_code == 200, describe(r)
    assert r.headers["Access-Control-Allow-Origin"] == SHOP
    exposed = {h.strip().lower() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"authorization", "x-seckill-reason"}
    coupon = client.new_coupon(stoken, seller, amount=1)
    customer, ctoken = client.new_user("customer")
    r = client.grab(ctoken, seller, coupon)
    assert r.status_code == 201, describe(r)
    assert r.headers["Access-Control-Allow-Origin"] == SHOP
    r = client.grab(ctoken, seller, coupon)  # a 204 with its reason, readable by the page
    assert r.status_code == 204 and r.headers["X-Seckill-Reason"] in ("already-held",
                                                                     "sold-out"), describe(r)
    assert r.headers["Access-Control-Allow-Origin"] == SHOP
    # Errors too, so that a page can tell why it failed.
    r = client.grab("Bearer nonsense", seller, coupon)
    assert r.status_code == 401, describe(r)
    assert r.headers["Access-Control-Allow-Origin"] == SHOP
    r = client.request("GET", "/api/nowhere")
    assert r.status_code == 404, describe(r)
    assert r.headers["Access-Control-Allow-Origin"] == SHOP


def test_other_origins_get_no_cors_headers(cors_server):
    r = preflight(cors_server, "/api/users/s1/coupons/c1", OTHER)
    assert r.status_code == 405, describe(r)  # OPTIONS is not a method of the route
    assert cors_headers(r) == {}, describe(r)
    for origin in (OTHER, "https://shop.example.evil", "http://shop.example", "null", ""):
        r = requests.get(cors_server.url + "/healthz", headers={"Origin": origin}, timeout=10)
        expect_json(r, 200, "")
        assert cors_headers(r) == {}, (origin, describe(r))
    # OPTIONS without Access-Control-Request-Method is no preflight.
    r = requests.options(cors_server.url + "/api/users", headers={"Origin": SHOP}, timeout=10)
    assert r.status_code == 405, describe(r)


def test_without_the_option_no_cors_headers_at_all(server):
    r = preflight(server, "/api/users/s1/coupons/c1", SHOP)
    assert r.status_code == 405, describe(r)
    assert cors_headers(r) == {}, describe(r)
    r = requests.get(server.url + "/healthz", headers={"Origin": SHOP}, timeout=10)
    expect_json(r, 200, "")
    assert cors_headers(r) == {}, describe(r)


@pytest.mark.parametrize("value", ["", "shop.example", "https://shop.example/path",
                                   "https://shop.example?x=1", "https://a b", "https://",
                                   ",".join(f"https://s{i}.example" for i in range(33))])
def test_malformed_origins_refused_at_start(value):
    result = subprocess.run([SECKILL_BIN, "--cors-origin", value, "--listen", "127.0.0.1:1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "--cors-origin" in result.stderr, result.stderr


def test_any_origin(start_server):
    srv = start_server(options={"--cors-origin": "*"})
    r = preflight(srv, "/api/auth", OTHER, method="POST")
    assert r.status_code == 204, describe(r)
    assert r.headers["Access-Control-Allow-Origin"] == OTHER
    r = requests.get(srv.url + "/healthz", timeout=10)  # no Origin: no CORS headers
    assert cors_headers(r) == {}, describe(r)
