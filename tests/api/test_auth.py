"""POST /api/auth, POST /api/auth/logout and the token rules of API.md "Auth"."""

import base64
import hashlib
import hmac
import json
import time

import pytest
import requests

from seckill_harness import (SECRET, Client, SocketReader, b64url, connect, describe, expect_json,
                             jwt_decode, jwt_sign, seg, strip_bearer, uniq)


@pytest.fixture(scope="module")
def seller(client):
    """A seller with one coupon: (name, token, coupon name)."""
    name, token = client.new_user("saler")
    coupon = client.new_coupon(token, name)
    return name, token, coupon


def can_use(client, token, seller):
    """An authenticated request: 200 when the token is accepted."""
    return client.list(token, seller[0])


# -- login ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["customer", "saler"])
def test_login_ok(client, kind):
    name = uniq("login")
    expect_json(client.register(name, "secret-pw", kind), 201, "")
    r = client.login(name, "secret-pw")
    data = expect_json(r, 200, "")
    assert data["kind"] == kind
    assert set(data) <= {"kind", "errMsg", "token"}, describe(r)
    token = r.headers.get("Authorization")
    assert token, "no Authorization response header" + describe(r)
    if "token" in data:
        assert strip_bearer(data["token"]) == strip_bearer(token)


def test_login_trailing_slash(client):
    name, _ = client.new_user("customer")
    r = client.request("POST", "/api/auth/", json_body={"username": name, "password": "123456"})
    expect_json(r, 200, "")
    assert r.headers.get("Authorization")


def test_login_unknown_user(client):
    r = client.login(uniq("ghost"), "123456")
    expect_json(r, 401, body={"kind": "", "errMsg": "No such queryUser."})
    assert "Authorization" not in r.headers


def test_login_user_names_case_sensitive(client):
    name = uniq("cs").lower()
    expect_json(client.register(name, "pw", "customer"), 201, "")
    expect_json(client.login(name.upper(), "pw"), 401,
                body={"kind": "", "errMsg": "No such queryUser."})


@pytest.mark.parametrize("kind", ["customer", "saler"])
def test_login_wrong_password(client, kind):
    name = uniq("wrong")
    expect_json(client.register(name, "right", kind), 201, "")
    for bad in ("wrong", "Right", "right ", "", "righ"):
        r = client.login(name, bad)
        expect_json(r, 401, body={"kind": kind, "errMsg": "Password mismatched."})
        assert "Authorization" not in r.headers


@pytest.mark.parametrize("data", [b"", b"garbage", b"[]", b'{"username": "a"', b"null",
                                  b'{"username": "\xff", "password": "x"}'])
def test_login_not_json(client, data):
    r = client.request("POST", "/api/auth", data=data)
    expect_json(r, 400, body={"kind": "", "errMsg": "Only receive JSON format."})


def test_token_contents(client):
    """HS256 JWT with username, kind, iat, nbf, exp (1 h), jti; no password or its hash."""
    name = uniq("tok")
    password = "pw-" + uniq()
    expect_json(client.register(name, password, "saler"), 201, "")
    before = int(time.time())
    t1 = client.token(name, password)
    t2 = client.token(name, password)
    after = int(time.time())
    header, payload = jwt_decode(t1)
    assert header.get("alg") == "HS256"
    for claim in ("iat", "nbf", "exp", "jti"):
        assert claim in payload, payload
    assert name in payload.values(), payload
    assert "saler" in payload.values(), payload
    assert before - 5 <= payload["iat"] <= after + 5
    assert payload["exp"] - payload["iat"] == 3600
    assert payload["nbf"] <= payload["iat"] + 5
    assert jwt_decode(t2)[1]["jti"] != payload["jti"], "jti is not unique"
    text = strip_bearer(t1)
    md5 = hashlib.md5(password.encode()).hexdigest()
    decoded = base64.urlsafe_b64decode(text.split(".")[1] + "==").decode()
    assert password not in decoded and md5 not in decoded.lower()
    assert "password" not in decoded.lower() and "pwd" not in decoded.lower()


# -- token errors --------------------------------------------------------------------------


def test_no_authorization_header(client, seller):
    expect_json(client.list(None, seller[0]), 401, body={"errMsg": "Not Authorized."})
    expect_json(client.grab(None, seller[0], seller[2]), 401, body={"errMsg": "Not Authorized."})
    expect_json(client.create_coupon(None, seller[0], uniq("cp")), 401,
                body={"errMsg": "Not Authorized."})


def test_token_accepted_raw_bearer_and_leading_spaces(server, client, seller):
    token = strip_bearer(client.token(seller[0]))
    for value in (token, "Bearer " + token):
        r = client.list(value, seller[0])
        expect_json(r, 200, "")
    # leading spaces (the JMeter plan echoes the header back with them): requests refuses to
    # send such a header, so speak raw HTTP
    for value in (" " + token, "   " + token, "\t" + token, "  Bearer " + token):
        sock = connect(server)
        try:
            sock.sendall(f"GET /api/users/{seg(seller[0])}/coupons HTTP/1.1\r\nHost: x\r\n"
                         f"Authorization:{value}\r\n\r\n".encode())
            response = SocketReader(sock).read_response()
            assert response.status == 200, (value[:12], response)
            assert response.json()["data"][0]["name"] == seller[2]
        finally:
            sock.close()


@pytest.mark.parametrize("token", [
    "garbage",
    "a.b.c",
    "Bearer garbage",
    "eyJhbGciOiJIUzI1NiJ9",
    "eyJhbGciOiJIUzI1NiJ9.e30",
    "..",
    "x" * 4000,
])
def test_garbage_token(client, seller, token):
    expect_json(client.list(token, seller[0]), 401, body={"errMsg": "Token is invalid."})


def test_bad_signature(client, seller):
    token = strip_bearer(client.token(seller[0]))
    head, body, sig = token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    for bad in (f"{head}.{body}.{flipped}", f"{head}.{body}.", f"{head}.{body}",
                f"{head}.{body}.{sig}x"):
        expect_json(client.list(bad, seller[0]), 401, body={"errMsg": "Token is invalid."})
    header, payload = jwt_decode(token)
    other_secret = jwt_sign(header, payload, secret="another-secret-0123456789-abcdefghijklm")
    expect_json(client.list(other_secret, seller[0]), 401, body={"errMsg": "Token is invalid."})
    # a tampered payload with the original signature
    payload2 = dict(payload)
    payload2["jti"] = "0" * 32
    tampered = f"{head}.{b64url(json.dumps(payload2))}.{sig}"
    expect_json(client.list(tampered, seller[0]), 401, body={"errMsg": "Token is invalid."})


def test_forged_token_with_the_secret_is_accepted(client, seller):
    """The HMAC key is the configured secret's bytes as given: a token we sign is valid
    (this is what lets the other token tests fail for the right reason)."""
    header, payload = jwt_decode(client.token(seller[0]))
    now = int(time.time())
    payload.update(iat=now, nbf=now, exp=now + 600, jti="f" * 32)
    token = jwt_sign({"alg": "HS256", "typ": "JWT"}, payload)
    expect_json(client.list(token, seller[0]), 200, "")


def test_alg_none_and_other_algorithms(client, seller):
    header, payload = jwt_decode(client.token(seller[0]))
    _, _, sig = strip_bearer(client.token(seller[0])).split(".")
    for alg in ("none", "None", "NONE", "nOnE"):
        head = b64url(json.dumps({"alg": alg, "typ": "JWT"}))
        body = b64url(json.dumps(payload))
        for token in (f"{head}.{body}.", f"{head}.{body}", f"{head}.{body}.{sig}"):
            expect_json(client.list(token, seller[0]), 401, body={"errMsg": "Token is invalid."})
    for alg in ("HS384", "HS512"):
        token = jwt_sign({"alg": alg, "typ": "JWT"}, payload, alg=alg)
        expect_json(client.list(token, seller[0]), 401, body={"errMsg": "Token is invalid."})
    # RS256 header with an HMAC signature (key-confusion style)
    token = jwt_sign({"alg": "RS256", "typ": "JWT"}, payload)
    expect_json(client.list(token, seller[0]), 401, body={"errMsg": "Token is invalid."})
    # no alg at all
    token = jwt_sign({"typ": "JWT"}, payload)
    expect_json(client.list(token, seller[0]), 401, body={"errMsg": "Token is invalid."})


def test_not_yet_valid(client, seller):
    header, payload = jwt_decode(client.token(seller[0]))
    now = int(time.time())
    payload.update(iat=now, nbf=now + 120, exp=now + 3600, jti="a" * 32)
    token = jwt_sign({"alg": "HS256", "typ": "JWT"}, payload)
    expect_json(client.list(token, seller[0]), 401, body={"errMsg": "Token is invalid."})


def test_expired_forged(client, seller):
    header, payload = jwt_decode(client.token(seller[0]))
    now = int(time.time())
    payload.update(iat=now - 3700, nbf=now - 3700, exp=now - 30, jti="b" * 32)
    token = jwt_sign({"alg": "HS256", "typ": "JWT"}, payload)
    expect_json(client.list(token, seller[0]), 401, body={"errMsg": "Authorization has expired."})
    expect_json(client.grab(token, seller[0], seller[2]), 401,
                body={"errMsg": "Authorization has expired."})


def test_expired_with_bad_signature_is_invalid(client, seller):
    header, payload = jwt_decode(client.token(seller[0]))
    now = int(time.time())
    payload.update(iat=now - 3700, nbf=now - 3700, exp=now - 30, jti="c" * 32)
    token = jwt_sign({"alg": "HS256", "typ": "JWT"}, payload,
                     secret="wrong-secret-0123456789-abcdefghijklmnop")
    expect_json(client.list(token, seller[0]), 401, body={"errMsg": "Token is invalid."})


def test_token_of_a_user_that_does_not_exist(client, seller):
    """A well-signed token naming a user that was never registered must not act for anyone."""
    header, payload = jwt_decode(client.token(seller[0]))
    ghost = uniq("ghost")
    now = int(time.time())
    for key, value in list(payload.items()):
        if value == seller[0]:
            payload[key] = ghost
    payload.update(iat=now, nbf=now, exp=now + 600, jti="d" * 32)
    token = jwt_sign({"alg": "HS256", "typ": "JWT"}, payload)
    r = client.create_coupon(token, ghost, uniq("cp"))
    assert r.status_code in (400, 401), describe(r)


def test_token_expires_with_ttl(start_server):
    """--token-ttl 1: valid at once, 'Authorization has expired.' after 1 s + 5 s leeway."""
    srv = start_server(options={"--token-ttl": 1})
    client = Client(srv)
    name, token = client.new_user("saler")
    coupon = client.new_coupon(token, name)
    _, payload = jwt_decode(token)
    assert payload["exp"] - payload["iat"] == 1
    expect_json(client.list(token, name), 200, "")
    cust, ctoken = client.new_user("customer")
    time.sleep(7.2)
    expect_json(client.list(token, name), 401, body={"errMsg": "Authorization has expired."})
    expect_json(client.create_coupon(token, name, uniq("cp")), 401,
                body={"errMsg": "Authorization has expired."})
    expect_json(client.grab(ctoken, name, coupon), 401,
                body={"errMsg": "Authorization has expired."})
    # logging in again gives a fresh token
    expect_json(client.list(client.token(name), name), 200, "")


# -- logout --------------------------------------------------------------------------------


def test_logout_without_token(client):
    expect_json(client.request("POST", "/api/auth/logout"), 200, body={"errMsg": "log out."})
    expect_json(client.request("POST", "/api/auth/logout", token="garbage"), 200,
                body={"errMsg": "log out."})


def test_logout_revokes_that_token_only(client, seller):
    name, t1 = client.new_user("customer")
    t2 = client.token(name)
    cust_coupon_list = client.list(t1, name)
    assert cust_coupon_list.status_code == 204, describe(cust_coupon_list)
    r = client.request("POST", "/api/auth/logout", token=t1)
    expect_json(r, 200, body={"errMsg": "log out."})
    revoked = {"errMsg": "Authorization has been revoked."}
    expect_json(client.list(t1, name), 401, body=revoked)
    expect_json(client.list(t1, seller[0]), 401, body=revoked)
    expect_json(client.grab(t1, seller[0], seller[2]), 401, body=revoked)
    expect_json(client.list("Bearer " + strip_bearer(t1), seller[0]), 401, body=revoked)
    # the user's other token still works
    expect_json(client.list(t2, seller[0]), 200, "")
    expect_json(client.grab(t2, seller[0], seller[2]), 201, body={"errMsg": ""})


def test_logout_bearer_form(client, seller):
    name, token = client.new_user("saler")
    expect_json(client.request("POST", "/api/auth/logout", token="Bearer " + strip_bearer(token)),
                200, body={"errMsg": "log out."})
    expect_json(client.create_coupon(token, name, uniq("cp")), 401,
                body={"errMsg": "Authorization has been revoked."})


def test_logout_recorded_in_database(server, client):
    name, token = client.new_user("customer")
    _, payload = jwt_decode(token)
    expect_json(client.request("POST", "/api/auth/logout", token=token), 200, "log out.")
    rows = server.query("select jti, expires_at from revoked_tokens where jti = ?",
                        (payload["jti"],))
    assert len(rows) == 1, rows
    assert rows[0]["expires_at"] == payload["exp"]


def test_revocation_survives_restart(start_server, tmp_path):
    srv = start_server(data_dir=tmp_path / "data")
    client = Client(srv)
    seller, stoken = client.new_user("saler")
    coupon = client.new_coupon(stoken, seller)
    cust = uniq("c")
    expect_json(client.register(cust, "pw", "customer"), 201, "")
    revoked, kept = client.token(cust, "pw"), client.token(cust, "pw")
    expect_json(client.request("POST", "/api/auth/logout", token=revoked), 200, "log out.")
    assert srv.stop() == 0, srv.logs()
    srv.start()
    expect_json(client.grab(revoked, seller, coupon), 401,
                body={"errMsg": "Authorization has been revoked."})
    expect_json(client.grab(kept, seller, coupon), 201, body={"errMsg": ""})
    assert srv.stop() == 0, srv.logs()
    # and after a kill -9 too
    srv.start()
    revoked2 = client.token(cust, "pw")
    expect_json(client.request("POST", "/api/auth/logout", token=revoked2), 200, "log out.")
    srv.kill()
    srv.start()
    expect_json(client.list(revoked2, cust), 401,
                body={"errMsg": "Authorization has been revoked."})
    assert [c["name"] for c in client.list_all(kept, cust)] == [coupon]


def test_logout_wrong_method(client):
    r = client.request("GET", "/api/auth/logout")
    expect_json(r, 405, body={"errMsg": "Method not allowed."})
    assert "POST" in [m.strip() for m in r.headers.get("Allow", "").split(",")], describe(r)


def test_secret_is_the_configured_one(start_server, client, seller):
    """A server signs with its configured secret: another server's tokens are invalid here."""
    other = start_server(options={"--jwt-secret": "b" * 40})
    oclient = Client(other)
    name, token = oclient.new_user("saler")
    oclient.new_coupon(token, name)
    expect_json(oclient.list(token, name), 200, "")
    # the module server (SECRET) rejects it, whatever the user
    expect_json(client.list(token, seller[0]), 401, body={"errMsg": "Token is invalid."})
    assert SECRET not in other.logs()


def test_revocation_reaches_every_connection(server, client, seller):
    """Tokens may be cached per worker thread, but a logout must reach every cache: use a
    token on many connections (both workers), log out on one, then every one refuses it."""
    for _ in range(5):
        name, token = client.new_user("customer")
        clients = [Client(server, requests.Session()) for _ in range(6)]
        for c in clients:
            for _ in range(3):
                expect_json(c.list(token, seller[0]), 200, "")
        expect_json(clients[0].request("POST", "/api/auth/logout", token=token), 200, "log out.")
        for c in clients:
            expect_json(c.list(token, seller[0]), 401,
                        body={"errMsg": "Authorization has been revoked."})
            expect_json(c.grab(token, seller[0], seller[2]), 401,
                        body={"errMsg": "Authorization has been revoked."})


@pytest.mark.parametrize("mutate", [
    lambda p: [],
    lambda p: None,
    lambda p: "not json",
    lambda p: {k: v for k, v in p.items() if k != "exp"},
    lambda p: {k: v for k, v in p.items() if k != "jti"},
    lambda p: {k: v for k, v in p.items() if k not in ("username", "kind")},
    lambda p: dict(p, exp=str(p["exp"])),
    lambda p: dict(p, exp=p["exp"] + 0.5),
    lambda p: dict(p, exp=1e30),
    lambda p: dict(p, nbf="0"),
], ids=["array", "null", "not-json", "no-exp", "no-jti", "no-user", "exp-string", "exp-float",
        "exp-huge", "nbf-string"])
def test_well_signed_but_malformed_claims(client, seller, mutate):
    """Signed with the right key but not a token of ours: 'Token is invalid.'"""
    _, payload = jwt_decode(client.token(seller[0]))
    claims = mutate(payload)
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}))
    body = b64url(claims if isinstance(claims, str) else json.dumps(claims))
    sig = b64url(hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    expect_json(client.list(f"{head}.{body}.{sig}", seller[0]), 401,
                body={"errMsg": "Token is invalid."})
