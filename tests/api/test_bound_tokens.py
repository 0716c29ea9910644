"""Tokens bound to their deployment and user (API.md "Auth", after logout), and expired
revocations pruned from SQL at start and while running."""

import secrets
import sqlite3
import time

from seckill_harness import (DISTRIBUTED, Client, describe, expect_json, jwt_decode, jwt_sign,
                             uniq)

INVALID = {"errMsg": "Token is invalid."}
HS256 = {"alg": "HS256", "typ": "JWT"}


def forge(token, **changes):
    """The token's claims with `changes` (None deletes a claim), a fresh jti and times,
    signed with the test secret: valid in every way the changes do not touch."""
    _, payload = jwt_decode(token)
    now = int(time.time())
    payload.update(iat=now, nbf=now, exp=now + 600, jti=secrets.token_hex(16))
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return jwt_sign(HS256, payload)


def sql_write(srv, sql, args=()):
    """Runs one writing statement on the server's SQL database, behind its back."""
    if srv.deployment is not None:
        srv.deployment.query(sql, args)
        return
    conn = sqlite3.connect(str(srv.db_path), timeout=10)
    try:
        conn.execute(sql, args)
        conn.commit()
    finally:
        conn.close()


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_token_carries_deployment_and_user_id(server, client):
    name, token = client.new_user("customer")
    _, payload = jwt_decode(token)
    rows = server.query("select value from settings where name = 'deployment_id'")
    assert len(rows) == 1, rows
    assert payload["dep"] == rows[0]["value"], payload
    assert len(payload["dep"]) == 32 and int(payload["dep"], 16) >= 0
    users = server.query("select id from users where username = ?", (name,))
    assert payload["uid"] == users[0]["id"], (payload, users)


def test_token_of_a_wiped_database(start_server, tmp_path):
    """The reproduction of the issue: a customer token kept across a wipe (same secret) must
    not act for whoever registers that name next, here a seller."""
    old = start_server(data_dir=tmp_path / "before")
    client = Client(old)
    bob = uniq("bob")
    expect_json(client.register(bob, "pw", "customer"), 201, "")
    old_token = client.token(bob, "pw")
    old_dep = jwt_decode(old_token)[1]["dep"]
    assert old.stop() == 0, old.logs()

    # The wiped database: a fresh data dir (distributed: a fresh Redis and MariaDB database).
    new = start_server(data_dir=tmp_path / "after")
    client = Client(new)
    expect_json(client.register(bob, "pw", "saler"), 201, "")
    seller, stoken = client.new_user("saler")
    coupon = client.new_coupon(stoken, seller, amount=5)
    assert jwt_decode(stoken)[1]["dep"] != old_dep

    expect_json(client.grab(old_token, seller, coupon), 401, body=INVALID)
    expect_json(client.list(old_token, bob), 401, body=INVALID)
    expect_json(client.list(old_token, seller), 401, body=INVALID)
    expect_json(client.create_coupon(old_token, bob, uniq("cp")), 401, body=INVALID)
    # Nothing was granted, and the new bob's own token works.
    left = [c for c in client.list_all(stoken, seller) if c["name"] == coupon][0]["left"]
    assert left == 5
    expect_json(client.create_coupon(client.token(bob, "pw"), bob, uniq("cp")), 201, "")


def test_forged_user_id(client):
    """Signed with the secret but naming another user id: refused wherever the route looks
    the user up (the user's own list, coupon creation)."""
    seller, stoken = client.new_user("saler")
    customer, ctoken = client.new_user("customer")
    uid = jwt_decode(stoken)[1]["uid"]
    for bad_uid in (uid + 1000, jwt_decode(ctoken)[1]["uid"]):
        forged = forge(stoken, uid=bad_uid)
        expect_json(client.list(forged, seller), 401, body=INVALID)
        expect_json(client.create_coupon(forged, seller, uniq("cp")), 401, body=INVALID)
    forged = forge(ctoken, uid=jwt_decode(ctoken)[1]["uid"] + 1000)
    expect_json(client.list(forged, customer), 401, body=INVALID)
    # The controls: the same forgery with the right id passes.
    expect_json(client.create_coupon(forge(stoken), seller, uniq("cp")), 201, "")
    r = client.list(forge(ctoken), customer)
    assert r.status_code == 204, describe(r)
    expect_json(client.list(forge(stoken), seller), 200, "")


def test_token_without_the_new_claims(client):
    """What an older version signed (no dep, no uid), or another deployment's id: invalid
    on every route, the grab included."""
    seller, stoken = client.new_user("saler")
    coupon = client.new_coupon(stoken, seller)
    customer, ctoken = client.new_user("customer")
    for changes in ({"dep": None, "uid": None}, {"dep": None}, {"uid": None},
                    {"dep": secrets.token_hex(16)}, {"dep": ""}, {"uid": 0},
                    {"uid": str(jwt_decode(ctoken)[1]["uid"])}):
        forged = forge(ctoken, **changes)
        expect_json(client.grab(forged, seller, coupon), 401, body=INVALID)
        expect_json(client.list(forged, seller), 401, body=INVALID)
        expect_json(client.request("POST", "/api/auth/logout", token=forged), 200,
                    body={"errMsg": "log out."})
    # The control, and the coupon is still there to take.
    expect_json(client.grab(forge(ctoken), seller, coupon), 201, "")


def test_expired_revocations_deleted_at_start(start_server, tmp_path):
    srv = start_server(data_dir=tmp_path / "data")
    client = Client(srv)
    name, token = client.new_user("customer")
    jti = jwt_decode(token)[1]["jti"]
    expect_json(client.request("POST", "/api/auth/logout", token=token), 200, "log out.")
    assert srv.stop() == 0, srv.logs()
    now = int(time.time())
    # Written by an older version, which never deleted any.
    sql_write(srv, "insert into revoked_tokens (jti, expires_at) values (?, ?)",
              ("expired-long-ago", now - 3600))
    sql_write(srv, "insert into revoked_tokens (jti, expires_at) values (?, ?)", ("ancient", 1))
    srv.start()

    def jtis():
        return sorted(row["jti"] for row in srv.query("select jti from revoked_tokens"))
    assert wait_for(lambda: jtis() == [jti]), jtis()
    # The live revocation still holds.
    expect_json(client.list(token, name), 401, body={"errMsg": "Authorization has been revoked."})


def test_expired_revocations_deleted_while_running(start_server):
    """The periodic prune, shortened for the test by SECKILL_REVOCATION_PRUNE_MS."""
    srv = start_server(env={"SECKILL_REVOCATION_PRUNE_MS": "200"}, options={"--log-level": "info"})
    client = Client(srv)
    name, token = client.new_user("customer")
    expect_json(client.request("POST", "/api/auth/logout", token=token), 200, "log out.")
    now = int(time.time())
    sql_write(srv, "insert into revoked_tokens (jti, expires_at) values (?, ?)",
              ("expired-while-up", now - 3600))

    def jtis():
        return [row["jti"] for row in srv.query("select jti from revoked_tokens")]
    assert wait_for(lambda: "expired-while-up" not in jtis()), jtis()
    assert jtis() == [jwt_decode(token)[1]["jti"]], jtis()
    assert "expired revocations from revoked_tokens" in srv.logs(), srv.logs()[-2000:]
    expect_json(client.list(token, name), 401, body={"errMsg": "Authorization has been revoked."})


def test_revocation_within_its_grace_is_kept(start_server, tmp_path):
    """A revocation whose token expired moments ago is kept (a token within the clock-skew
    leeway must still be refused), at start as well."""
    srv = start_server(data_dir=tmp_path / "data")
    assert srv.stop() == 0, srv.logs()
    now = int(time.time())
    sql_write(srv, "insert into revoked_tokens (jti, expires_at) values (?, ?)",
              ("just-expired", now - 2))
    srv.start()
    time.sleep(0.5 if not DISTRIBUTED else 1.5)
    rows = srv.query("select jti from revoked_tokens")
    assert [row["jti"] for row in rows] == ["just-expired"], rows
