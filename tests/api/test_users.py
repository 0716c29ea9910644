"""POST /api/users — register (API.md "Users"), and the JSON body conventions."""

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from seckill_harness import Client, describe, expect_json, uniq

NOT_JSON = "Only receive JSON format."


def register_raw(client, data, path="/api/users"):
    if isinstance(data, str):
        data = data.encode()
    return client.request("POST", path, data=data)


def test_register_customer_and_seller(client):
    for kind in ("customer", "saler"):
        name = uniq(kind)
        r = client.register(name, "123456", kind)
        expect_json(r, 201, body={"errMsg": ""})
        r = client.login(name, "123456")
        expect_json(r, 200, body=None)
        assert r.json()["kind"] == kind


def test_register_trailing_slash(client):
    name = uniq("slash")
    r = client.request("POST", "/api/users/",
                       json_body={"username": name, "password": "pw", "kind": "customer"})
    expect_json(r, 201, "")
    assert client.login(name, "pw").status_code == 200


@pytest.mark.parametrize("data", [
    b"",
    b"not json",
    b"[1, 2]",
    b'"a string"',
    b"123",
    b"null",
    b"true",
    b'{"username": "x", "password": "y", "kind": "customer"',
    b'{"username": "x", "password": "y", "kind": "customer"} trailing',
    b'{"username": "x"}{"password": "y"}',
    b"{'username': 'x'}",
    b'{"username": "\xff\xfe", "password": "y", "kind": "customer"}',
    b'{"username": "\xc3", "password": "y", "kind": "customer"}',
    b'{"username": "a\xed\xa0\x80b", "password": "y", "kind": "customer"}',
], ids=["empty", "text", "array", "string", "number", "null", "true", "truncated",
        "trailing-garbage", "two-objects", "single-quotes", "invalid-utf8", "truncated-utf8",
        "utf8-surrogate"])
def test_register_not_json(client, data):
    expect_json(register_raw(client, data), 400, body={"errMsg": NOT_JSON})


@pytest.mark.parametrize("body,msg", [
    ({"username": "", "password": "pw", "kind": "customer"}, "User name too short."),
    ({"password": "pw", "kind": "customer"}, "User name too short."),
    ({"username": None, "password": "pw", "kind": "customer"}, "User name too short."),
    ({"username": "USER", "password": "", "kind": "customer"}, "Password too short."),
    ({"username": "USER", "kind": "customer"}, "Password too short."),
    ({"username": "USER", "password": "pw"}, "Empty field of kind."),
    ({"username": "USER", "password": "pw", "kind": ""}, "Empty field of kind."),
    ({"username": "USER", "password": "pw", "kind": None}, "Empty field of kind."),
    ({"username": "USER", "password": "pw", "kind": "admin"}, "Unexpected value of kind, admin"),
    ({"username": "USER", "password": "pw", "kind": "seller"},
     "Unexpected value of kind, seller"),
    ({"username": "USER", "password": "pw", "kind": "Customer"},
     "Unexpected value of kind, Customer"),
    ({"username": "USER", "password": "pw", "kind": "customer "},
     "Unexpected value of kind, customer "),
    ({"username": "USER", "password": "pw", "kind": "顾客"}, "Unexpected value of kind, 顾客"),
], ids=["username-empty", "username-missing", "username-null", "password-empty",
        "password-missing", "kind-missing", "kind-empty", "kind-null", "kind-admin",
        "kind-seller", "kind-capitalised", "kind-trailing-space", "kind-utf8"])
def test_register_field_errors(client, body, msg):
    body = dict(body)
    if body.get("username") == "USER":
        body["username"] = uniq("f")
    r = client.request("POST", "/api/users", json_body=body)
    expect_json(r, 400, body={"errMsg": msg})
    if body.get("username"):  # nothing was created
        assert client.login(body["username"], "pw").status_code == 401


def test_register_field_order(client):
    """Fields are checked in the order of the table: the first failing row answers."""
    cases = [
        ({"username": "", "password": "", "kind": ""}, "User name too short."),
        ({"username": "", "password": "pw", "kind": "bad"}, "User name too short."),
        ({"username": uniq("o"), "password": "", "kind": ""}, "Password too short."),
        ({"username": uniq("o"), "password": "", "kind": "bad"}, "Password too short."),
        ({"username": uniq("o"), "password": "pw", "kind": ""}, "Empty field of kind."),
        # the beyond rows come after the original's rows
        ({"username": "a/b" + uniq(), "password": "", "kind": "customer"}, "Password too short."),
        ({"username": "a/b" + uniq(), "password": "pw", "kind": "bad"},
         "Unexpected value of kind, bad"),
        ({"username": "x" * 65, "password": "p" * 300, "kind": "customer"}, "Invalid user name."),
        ({"username": uniq("o"), "password": "p" * 257, "kind": "nope"},
         "Unexpected value of kind, nope"),
    ]
    for body, msg in cases:
        r = client.request("POST", "/api/users", json_body=body)
        expect_json(r, 400, body={"errMsg": msg})


def test_register_duplicate(client):
    name = uniq("dup")
    expect_json(client.register(name, "pw1", "customer"), 201, "")
    for kind in ("customer", "saler"):
        r = client.register(name, "pw2", kind)
        expect_json(r, 400, body={"errMsg": "Insert user failed. Maybe user name duplicates."})
    # the first registration stands
    r = client.login(name, "pw1")
    expect_json(r, 200, body=None)
    assert r.json()["kind"] == "customer"
    expect_json(client.login(name, "pw2"), 401, "Password mismatched.")


def test_register_duplicate_before_password_too_long(client):
    """'username taken' is a row above 'password longer than 256 bytes'."""
    name = uniq("dup")
    expect_json(client.register(name, "pw", "customer"), 201, "")
    r = client.register(name, "p" * 257, "customer")
    expect_json(r, 400, body={"errMsg": "Insert user failed. Maybe user name duplicates."})


def test_user_names_are_case_sensitive(client):
    name = uniq("Case")
    expect_json(client.register(name, "lower", "customer"), 201, "")
    expect_json(client.register(name.upper(), "upper", "saler"), 201, "")
    expect_json(client.register(name.lower(), "lowest", "customer"), 201, "")
    assert client.login(name, "lower").json()["kind"] == "customer"
    assert client.login(name.upper(), "upper").json()["kind"] == "saler"
    expect_json(client.login(name.upper(), "lower"), 401, "Password mismatched.")


@pytest.mark.parametrize("make_name", [
    lambda u: u + "x" * (64 - len(u)),                     # exactly 64 bytes
    lambda u: u + "x" * (62 - len(u)) + "é",               # 63 characters, 64 bytes
    lambda u: u + "!?#%&=+:;,.'\"\\<>*~^`@$",              # punctuation other than '/'
    lambda u: "顾客" + u,
], ids=["64-bytes", "64-bytes-utf8", "punctuation", "cjk"])
def test_register_valid_names(client, make_name):
    name = make_name(uniq("v"))
    assert len(name.encode()) <= 64
    expect_json(client.register(name, "pw", "customer"), 201, "")
    r = client.login(name, "pw")
    expect_json(r, 200)
    assert r.json()["kind"] == "customer"


@pytest.mark.parametrize("make_name", [
    lambda u: u + "x" * (65 - len(u)),
    lambda u: "x" * 63 + "é",                               # 64 characters, 65 bytes
    lambda u: "x" * 1000,
    lambda u: u + "/x",
    lambda u: "/" + u,
    lambda u: u + "/",
    lambda u: u + " x",
    lambda u: " " + u,
    lambda u: u + " ",
    lambda u: u + "\tx",
    lambda u: u + "\nx",
    lambda u: u + "\rx",
    lambda u: u + "\x0bx",
    lambda u: u + "\x0cx",
    lambda u: u + "\x00x",
    lambda u: u + "\x01x",
    lambda u: u + "\x1fx",
    lambda u: u + "\x7fx",
], ids=["65-bytes", "65-bytes-utf8", "1000-bytes", "slash", "leading-slash", "trailing-slash",
        "space", "leading-space", "trailing-space", "tab", "newline", "cr", "vtab", "formfeed",
        "nul", "soh", "us", "del"])
def test_register_invalid_names(client, make_name):
    name = make_name(uniq("i"))
    r = client.request("POST", "/api/users",
                       json_body={"username": name, "password": "pw", "kind": "customer"})
    expect_json(r, 400, body={"errMsg": "Invalid user name."})


def test_password_length_limits(client):
    name = uniq("pw")
    password = "p" * 256
    expect_json(client.register(name, password, "customer"), 201, "")
    expect_json(client.login(name, password), 200, "")
    expect_json(client.login(name, password[:-1]), 401, "Password mismatched.")
    # 256 bytes of UTF-8, fewer characters
    name2 = uniq("pw")
    password2 = "密" * 85 + "x"  # 255 + 1 bytes
    assert len(password2.encode()) == 256
    expect_json(client.register(name2, password2, "saler"), 201, "")
    expect_json(client.login(name2, password2), 200, "")
    for too_long in ("p" * 257, "密" * 86, "p" * 5000):
        name3 = uniq("pw")
        r = client.register(name3, too_long, "customer")
        expect_json(r, 400, body={"errMsg": "Password too long."})
        expect_json(client.login(name3, too_long), 401, "No such queryUser.")


def test_password_may_hold_any_characters(client):
    name = uniq("pw")
    password = " pass word\t/ \"quoted\" 密码 "
    expect_json(client.register(name, password, "customer"), 201, "")
    expect_json(client.login(name, password), 200, "")
    expect_json(client.login(name, password.strip()), 401, "Password mismatched.")


def test_field_names_case_insensitive(client):
    name = uniq("ci")
    data = json.dumps({"UserName": name, "PASSWORD": "pw", "Kind": "saler"})
    expect_json(register_raw(client, data), 201, "")
    r = client.request("POST", "/api/auth", data=json.dumps({"USERNAME": name, "passWord": "pw"}))
    expect_json(r, 200, "")
    assert r.json()["kind"] == "saler"


def test_last_occurrence_wins(client):
    first, last = uniq("first"), uniq("last")
    data = ('{"username": "%s", "password": "one", "kind": "admin", '
            '"UserName": "%s", "Password": "two", "KIND": "customer"}' % (first, last))
    expect_json(register_raw(client, data), 201, "")
    expect_json(client.login(first, "one"), 401, "No such queryUser.")
    expect_json(client.login(last, "one"), 401, "Password mismatched.")
    expect_json(client.login(last, "two"), 200, "")
    # a last empty value wins over an earlier good one
    data = '{"username": "%s", "password": "pw", "kind": "customer", "kind": ""}' % uniq("e")
    expect_json(register_raw(client, data), 400, body={"errMsg": "Empty field of kind."})
    data = '{"username": "%s", "username": "", "password": "pw", "kind": "customer"}' % uniq("e")
    expect_json(register_raw(client, data), 400, body={"errMsg": "User name too short."})
    # last occurrence wins at login too
    data = '{"username": "nobody-%s", "password": "x", "Username": "%s", "PASSWORD": "two"}' % (
        uniq(), last)
    expect_json(client.request("POST", "/api/auth", data=data), 200, "")


def test_unknown_fields_ignored(client):
    name = uniq("unk")
    body = {"username": name, "password": "pw", "kind": "customer", "extra": [1, {"a": None}],
            "age": 3, "nested": {"username": "other"}}
    expect_json(client.request("POST", "/api/users", json_body=body), 201, "")
    expect_json(client.login(name, "pw"), 200, "")
    expect_json(client.login("other", "pw"), 401, "No such queryUser.")


def test_json_escapes_in_strings(client):
    name = uniq("esc")
    data = '{"username": "%s\\u00e9", "password": "p\\u0077", "kind": "cust\\u006fmer"}' % name
    expect_json(register_raw(client, data), 201, "")
    expect_json(client.login(name + "é", "pw"), 200, "")


def test_password_hash_in_database(server, client):
    """users.password_hash is argon2id, salted, never MD5 or the password."""
    a, b = uniq("hash"), uniq("hash")
    password = "123456"
    expect_json(client.register(a, password, "customer"), 201, "")
    expect_json(client.register(b, password, "saler"), 201, "")
    rows = {row["username"]: row for row in server.query(
        "select id, username, kind, password_hash, created_at from users where username in (?, ?)",
        (a, b))}
    assert set(rows) == {a, b}
    assert rows[a]["kind"] == "customer"
    assert rows[b]["kind"] == "saler"
    for row in rows.values():
        h = row["password_hash"]
        if isinstance(h, bytes):
            h = h.decode("latin-1")
        assert h.startswith("$argon2id$"), h
        assert not re.fullmatch(r"[0-9a-fA-F]{32}", h)
        assert "e10adc3949ba59abbe56e057f20f883e" not in h.lower()  # md5("123456")
        assert password not in h
        assert row["created_at"] is not None
    assert rows[a]["password_hash"] != rows[b]["password_hash"], "hash is not salted"


def test_failed_registration_writes_nothing(server, client):
    name = uniq("nothing")
    r = client.register(name, "p" * 300, "customer")
    assert r.status_code == 400, describe(r)
    r = client.register(name, "pw", "martian")
    assert r.status_code == 400, describe(r)
    assert server.query("select count(*) as n from users where username = ?", (name,))[0]["n"] == 0


def test_password_with_nul_is_not_truncated(client):
    name = uniq("nul")
    data = '{"username": "%s", "password": "abc\\u0000def", "kind": "customer"}' % name
    expect_json(register_raw(client, data), 201, "")
    for wrong in ("abc", "abc\u0000", "abc\u0000xyz"):
        expect_json(client.login(name, wrong), 401, "Password mismatched.")
    expect_json(client.login(name, "abc\u0000def"), 200, "")


def test_concurrent_registrations_of_one_name(server, client):
    name = uniq("race")

    def register(i):
        return Client(server, requests.Session()).register(name, f"pw{i}", "customer")

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(register, range(20)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [400] * 19, statuses
    for r in results:
        if r.status_code == 400:
            expect_json(r, 400, body={"errMsg": "Insert user failed. Maybe user name duplicates."})
    assert server.query("select count(*) n from users where username = ?", (name,))[0]["n"] == 1
