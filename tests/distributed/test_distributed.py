"""The distributed deployment's own guarantees (issue "many instances on Redis + MySQL"):
several instances on one Redis (standalone or a three-master Cluster) and one MariaDB,
all started by the tests on loopback.

- kill -9 of one instance of two under load: every 201 reaches SQL exactly once, and
  `remaining = amount - rows`; hot state and SQL agree (`seckill reconcile`).
- Redis restarted (AOF) without load: state intact.
- Redis FLUSHALL, instances restarted together: hot state rebuilt from SQL once.
- The same grab storm against a Redis Cluster.
- Redis down for seconds during load: 503 with Retry-After, no crash, recovery, invariants.
- MariaDB down: the routes that need it answer 503, /readyz 503, grabs go on; recovery.
- Revocations reach every instance, survive restarts and a Redis that lost its data.
- `seckill reconcile` reports and repairs differences.
"""

import os
import random
import signal
import re
import subprocess
import threading
import time
from collections import Counter

import pytest
import requests

from seckill_harness import (SECKILL_BIN, SECRET, Client, Deployment, Fleet, describe,
                             expect_204, expect_json, make_users, uniq)


def start_group(start_server, data_dir, count=2, **options):
    """`count` instances of one deployment (the one of `data_dir`)."""
    return [start_server(data_dir=data_dir, options=options or None) for _ in range(count)]


def wait_ready(server, want=200, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = requests.get(server.url + "/readyz", timeout=2).status_code
        except requests.RequestException:
            status = None
        if status == want:
            return
        assert time.monotonic() < deadline, f"/readyz stayed {status}, wanted {want}"
        time.sleep(0.05)


def reconcile(deployment, *extra):
    return subprocess.run([SECKILL_BIN, "reconcile", "--redis", deployment.redis_url,
                           "--mysql", deployment.mysql_url, *extra],
                          capture_output=True, text=True, timeout=120)


def sql_grants(deployment):
    rows = deployment.query("select customer, seller, coupon from grants")
    return Counter((r["customer"], r["seller"], r["coupon"]) for r in rows)


def check_sql_invariants(deployment, seller, amounts, granted, unknown=frozenset()):
    """Every 201 in SQL exactly once; rows beyond the 201s only where the answer was lost;
    remaining = amount - rows; never more rows than amount."""
    assert deployment.settle() == 0, "the persisters did not catch up"
    rows = sql_grants(deployment)
    assert all(n == 1 for n in rows.values()), "a grant twice in SQL"
    in_sql = {(c, n) for (c, s, n) in rows if s == seller}
    missing = granted - in_sql
    assert not missing, f"201s missing from SQL: {sorted(missing)[:5]}"
    extra = in_sql - granted
    assert extra <= set(unknown), f"grants nobody was told about: {sorted(extra - set(unknown))[:5]}"
    per_coupon = Counter(n for (_c, n) in in_sql)
    coupons = {r["name"]: r for r in deployment.query(
        "select name, amount, remaining from coupons where seller = ?", (seller,))}
    for name, amount in amounts.items():
        assert per_coupon[name] <= amount, f"oversold {name}"
        assert coupons[name]["remaining"] == amount - per_coupon[name], (name, coupons[name])
    result = reconcile(deployment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in agreement" in result.stdout


class GrabStorm:
    """Threads grabbing random coupons for random customers on random live instances,
    keeping every outcome: 201s, answers lost to a dying connection, statuses seen."""

    def __init__(self, servers, seller, coupons, tokens, threads=12):
        self.servers = list(servers)
        self.live = list(servers)
        self.seller, self.coupons, self.tokens = seller, list(coupons), dict(tokens)
        self.granted, self.unknown = set(), set()
        self.statuses = Counter()
        self.bad = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, seed):
        rng = random.Random(seed)
        sessions = {}
        while not self.stopping.is_set():
            with self.lock:
                live = list(self.live)
            if not live:
                time.sleep(0.01)
                continue
            server = rng.choice(live)
            customer = rng.choice(list(self.tokens))
            coupon = rng.choice(self.coupons)
            r = self.grab(sessions, server, customer, coupon)
            if r is None:
                continue
            with self.lock:
                self.statuses[r.status_code] += 1
                if r.status_code == 201:
                    self.granted.add((customer, coupon))
                elif r.status_code == 503:
                    # Redis may have run the script before the connection broke: the
                    # outcome is unknown to the client (a retry answers already-held).
                    self.unknown.add((customer, coupon))
                    if not r.headers.get("Retry-After"):
                        self.bad.append(describe(r))
                elif r.status_code != 204:
                    self.bad.append(describe(r))

    def grab(self, sessions, server, customer, coupon):
        """One grab on `server`, on its Session in `sessions`; None when the connection
        broke (the outcome is unknown, and recorded so)."""
        session = sessions.setdefault(server.url, requests.Session())
        try:
            return Client(server, session).grab(self.tokens[customer], self.seller, coupon)
        except requests.RequestException:
            sessions.pop(server.url, None)
            with self.lock:
                self.unknown.add((customer, coupon))
            return None

    def set_live(self, servers):
        with self.lock:
            self.live = list(servers)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)


def sale(client, n_coupons=8, amount=15, n_customers=40):
    seller, stoken = client.new_user("saler")
    amounts = {}
    for i in range(n_coupons):
        name = client.new_coupon(stoken, seller, name=f"{i}_{uniq('d')}", amount=amount)
        amounts[name] = amount
    tokens = make_users(client.server, [uniq("dc") for _ in range(n_customers)], "customer")
    return seller, stoken, amounts, tokens


def test_kill9_one_instance_under_load(start_server, tmp_path):
    a, b = start_group(start_server, tmp_path / "d")
    deployment = a.deployment
    seller, _stoken, amounts, tokens = sale(Client(b))
    with GrabStorm([a, b], seller, amounts, tokens) as storm:
        time.sleep(1.0)
        storm.set_live([b])
        a.kill()
        time.sleep(1.0)
        a.start()
        storm.set_live([a, b])
        time.sleep(1.0)
    assert not storm.bad, storm.bad[:3]
    assert storm.statuses[201] > 0 and storm.granted
    # every coupon's holders: once each, never over the amount (through the API as well)
    check_sql_invariants(deployment, seller, amounts, storm.granted, storm.unknown)
    for name, amount in amounts.items():
        rows = [c for c in Client(a).list_all(next(iter(tokens.values())), seller)
                if c["name"] == name]
        held = sum(1 for (_c, _s, n) in sql_grants(deployment) if n == name)
        assert rows[0]["left"] == amount - held


def test_redis_restart_keeps_state(start_server, tmp_path):
    a, b = start_group(start_server, tmp_path / "d")
    client = Client(Fleet([a, b]))
    seller, stoken, amounts, tokens = sale(client, n_coupons=3, amount=2, n_customers=3)
    customer, ctoken = next(iter(tokens.items()))
    coupons = list(amounts)
    for coupon in coupons:
        expect_json(client.grab(ctoken, seller, coupon), 201, "")
    seller_view = client.list_all(stoken, seller)
    customer_view = client.list_all(ctoken, customer)
    a.deployment.redis.restart()
    for server in (a, b):
        wait_ready(server)
    assert client.list_all(stoken, seller) == seller_view
    assert client.list_all(ctoken, customer) == customer_view
    r = client.grab(ctoken, seller, coupons[0])
    assert r.status_code == 204 and r.headers["X-Seckill-Reason"] == "already-held"
    other, otoken = list(tokens.items())[1]
    expect_json(client.grab(otoken, seller, coupons[0]), 201, "")
    check_sql_invariants(a.deployment, seller, amounts, {(customer, c) for c in coupons} |
                         {(other, coupons[0])})


def test_flushall_rebuilds_hot_state_once(start_server, tmp_path):
    a, b = start_group(start_server, tmp_path / "d")
    deployment = a.deployment
    client = Client(Fleet([a, b]))
    seller, stoken, amounts, tokens = sale(client, n_coupons=3, amount=2, n_customers=3)
    customers = list(tokens)
    coupons = list(amounts)
    granted = set()
    for customer in customers[:2]:  # coupons[0] sells out
        expect_json(client.grab(tokens[customer], seller, coupons[0]), 201, "")
        granted.add((customer, coupons[0]))
    expect_json(client.grab(tokens[customers[0]], seller, coupons[1]), 201, "")
    granted.add((customers[0], coupons[1]))
    seller_view = client.list_all(stoken, seller)
    customer_view = client.list_all(tokens[customers[0]], customers[0])
    assert deployment.settle() == 0
    for server in (a, b):
        assert server.stop() == 0
    deployment.redis.command("FLUSHALL")
    # both at once: one loads, the other waits for it
    starters = [threading.Thread(target=server.start) for server in (a, b)]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    assert client.list_all(stoken, seller) == seller_view
    assert client.list_all(tokens[customers[0]], customers[0]) == customer_view
    r = client.grab(tokens[customers[2]], seller, coupons[0])
    assert r.status_code == 204 and r.headers["X-Seckill-Reason"] == "sold-out", describe(r)
    r = client.grab(tokens[customers[0]], seller, coupons[1])
    assert r.status_code == 204 and r.headers["X-Seckill-Reason"] == "already-held", describe(r)
    expect_json(client.grab(tokens[customers[2]], seller, coupons[2]), 201, "")
    granted.add((customers[2], coupons[2]))
    loads = sum(len(re.findall("rebuilt the hot state from SQL", s.logs())) for s in (a, b))
    assert loads == 1, "exactly one of the two instances rebuilt the hot state"
    check_sql_invariants(deployment, seller, amounts, granted)


def test_grab_storm_on_redis_cluster(start_server, tmp_path):
    data_dir = tmp_path / "d"
    deployment = Deployment.for_dir(data_dir, cluster=True)
    a, b = start_group(start_server, data_dir)
    seller, _stoken, amounts, tokens = sale(Client(a), n_coupons=24, amount=5, n_customers=30)
    with GrabStorm([a, b], seller, amounts, tokens, threads=16):
        time.sleep(2.5)
    # the coupons live on every master (the shards' hash tags spread over the slots)
    per_node = [len(node.command("KEYS", "sk:{*}:c:*") or []) for node in deployment.redis_nodes]
    assert all(n > 0 for n in per_node), per_node
    rows = sql_grants(deployment)
    assert sum(rows.values()) == sum(amounts.values()), "every coupon sold out exactly"
    check_sql_invariants(deployment, seller, amounts, {(c, n) for (c, _s, n) in rows})


def test_redis_down_during_load(start_server, tmp_path):
    a, b = start_group(start_server, tmp_path / "d")
    deployment = a.deployment
    seller, _stoken, amounts, tokens = sale(Client(a), n_coupons=10, amount=40, n_customers=40)
    with GrabStorm([a, b], seller, amounts, tokens) as storm:
        time.sleep(0.5)
        deployment.redis.stop()
        time.sleep(1.0)
        r = requests.get(a.url + "/readyz", timeout=5)
        assert r.status_code == 503, describe(r)
        down_statuses = Counter(storm.statuses)
        time.sleep(1.5)
        deployment.redis.start()
        for server in (a, b):
            wait_ready(server)
        before = storm.statuses[201]
        time.sleep(1.0)
        assert storm.statuses[201] > before, "grabs did not come back after Redis did"
    assert a.alive() and b.alive()
    assert down_statuses[503] > 0 and not storm.bad, storm.bad[:3]
    check_sql_invariants(deployment, seller, amounts, storm.granted, storm.unknown)


def test_mariadb_down(start_server, tmp_path):
    a, b = start_group(start_server, tmp_path / "d")
    mariadb = Deployment.mariadb()
    client = Client(a)
    seller, stoken, amounts, tokens = sale(client, n_coupons=1, amount=5, n_customers=2)
    customers = list(tokens)
    coupon = next(iter(amounts))
    mariadb.stop()
    try:
        wait_ready(a, 503, timeout=10)
        r = client.register(uniq("x"))
        assert r.status_code == 503 and r.headers.get("Retry-After"), describe(r)
        assert r.json()["errMsg"]
        r = client.create_coupon(stoken, seller, uniq("x"))
        assert r.status_code == 503 and r.headers.get("Retry-After"), describe(r)
        # grabs need only Redis: granted, and written to SQL once it is back
        expect_json(client.grab(tokens[customers[0]], seller, coupon), 201, "")
    finally:
        mariadb.start()
    for server in (a, b):
        wait_ready(server)
    expect_json(client.register(uniq("x")), 201, "")
    check_sql_invariants(a.deployment, seller, amounts, {(customers[0], coupon)})


def test_revocation_reaches_every_instance(start_server, tmp_path):
    a, b = start_group(start_server, tmp_path / "d")
    ca, cb = Client(a), Client(b)
    seller, token = ca.new_user("saler")
    expect_204(cb.list(token, seller))
    expect_json(ca.request("POST", "/api/auth/logout", token=token), 200)
    revoked = {"errMsg": "Authorization has been revoked."}
    expect_json(cb.list(token, seller), 401, body=revoked)
    expect_json(ca.list(token, seller), 401, body=revoked)
    # survives restarts, and a Redis that lost everything (SQL keeps revocations)
    for server in (a, b):
        assert server.stop() == 0
    a.deployment.redis.command("FLUSHALL")
    a.start()
    b.start()
    expect_json(cb.list(token, seller), 401, body=revoked)
    expect_json(ca.list(token, seller), 401, body=revoked)


def test_reconcile_reports_and_repairs(start_server, tmp_path):
    a, = start_group(start_server, tmp_path / "d", count=1)
    deployment = a.deployment
    client = Client(a)
    seller, _stoken, amounts, tokens = sale(client, n_coupons=2, amount=3, n_customers=2)
    c1, c2 = list(amounts)
    customer = next(iter(tokens))
    expect_json(client.grab(tokens[customer], seller, c1), 201, "")
    assert deployment.settle() == 0
    result = reconcile(deployment)
    assert result.returncode == 0 and "in agreement" in result.stdout, result.stdout
    # an operator's mistakes on both sides
    deployment.query(f"delete from grants where customer = ?", (customer,))
    for node in deployment.redis_nodes:
        for key in node.command("KEYS", "sk:{*}:c:*") or []:
            if key.endswith(b"/" + c2.encode()) if isinstance(key, bytes) else key.endswith("/" + c2):
                node.command("HSET", key, "left", "1")
    result = reconcile(deployment)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"grant in Redis, not in SQL: coupon {seller}/{c1}: customer {customer}" in result.stdout
    assert f"left differs: coupon {seller}/{c2}" in result.stdout
    result = reconcile(deployment, "--repair")
    assert result.returncode == 1 and "repaired" in result.stdout, result.stdout
    result = reconcile(deployment)
    assert result.returncode == 0, result.stdout
    assert sql_grants(deployment)[(customer, seller, c1)] == 1
    assert [c["left"] for c in client.list_all(tokens[customer], seller) if c["name"] == c2] == [3]


def test_distributed_needs_a_shared_secret(tmp_path):
    deployment = Deployment.for_dir(tmp_path / "d")
    result = subprocess.run([SECKILL_BIN, "--redis", deployment.redis_url, "--mysql",
                             deployment.mysql_url, "--listen", "127.0.0.1:1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "--jwt-secret" in result.stderr
    assert deployment.mysql_url.split(":")[2].split("@")[0] not in result.stderr  # password


def test_redis_without_aof_is_warned_about(start_server, tmp_path):
    Deployment.for_dir(tmp_path / "d", aof=False)
    server = start_server(data_dir=tmp_path / "d", options={"--log-level": "warn"})
    assert "WITHOUT appendonly" in server.logs()


def test_bad_urls_are_refused(tmp_path):
    for redis_url, mysql_url in (("http://x", "mysql://u:p@127.0.0.1/db"),
                                 ("redis://127.0.0.1:6379", "mysql://nohost"),
                                 ("redis://127.0.0.1:99999", "mysql://u:p@127.0.0.1/db")):
        result = subprocess.run([SECKILL_BIN, "--redis", redis_url, "--mysql", mysql_url,
                                 "--jwt-secret", SECRET, "--listen", "127.0.0.1:1"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode != 0, (redis_url, mysql_url)
        assert ":p@" not in result.stderr


def test_rate_limit_is_shared_by_the_instances(start_server, tmp_path):
    """--rate-limit 1 --rate-burst 3 on two instances: a customer alternating between them
    gets 3 grabs at once in all, not 3 per instance; then one a second."""
    a, b = start_group(start_server, tmp_path / "d", **{"--rate-limit": 1, "--rate-burst": 3})
    ca, cb = Client(a), Client(b)
    seller, stoken = ca.new_user("saler")
    coupons = [ca.new_coupon(stoken, seller, amount=100) for _ in range(8)]
    _customer, ctoken = ca.new_user("customer")
    statuses = []
    for i, coupon in enumerate(coupons):
        r = (ca if i % 2 == 0 else cb).grab(ctoken, seller, coupon)
        statuses.append(r.status_code)
        if r.status_code == 429:
            expect_json(r, 429, body={"errMsg": "Too many requests."})
            assert int(r.headers["Retry-After"]) >= 1
    assert statuses[:3] == [201, 201, 201] and set(statuses[3:]) == {429}, statuses
    time.sleep(1.1)
    expect_json(cb.grab(ctoken, seller, coupons[3]), 201, "")
    r = ca.grab(ctoken, seller, coupons[4])
    assert r.status_code == 429, describe(r)
    # another customer has a bucket of its own
    _other, otoken = cb.new_user("customer")
    expect_json(ca.grab(otoken, seller, coupons[0]), 201, "")


def test_pending_grants_of_a_dead_instance_are_claimed(start_server, tmp_path):
    """A grant read from its stream by an instance that died before writing it to SQL stays
    pending on that instance's consumer; a live instance claims it (after 10 s) and writes
    it, once."""
    a, = start_group(start_server, tmp_path / "d", count=1)
    deployment = a.deployment
    client = Client(a)
    seller, _stoken, amounts, tokens = sale(client, n_coupons=1, amount=5, n_customers=2)
    coupon = next(iter(amounts))
    first, second = list(tokens)
    expect_json(client.grab(tokens[first], seller, coupon), 201, "")
    assert deployment.settle() == 0
    assert a.stop() == 0
    # What a grab does, by hand, then read by a consumer that never acknowledges it.
    redis = deployment.redis
    coupon_key = next(k for k in redis.command("KEYS", "sk:{*}:c:*")
                      if (k.decode() if isinstance(k, bytes) else k).endswith("/" + coupon))
    coupon_key = coupon_key.decode() if isinstance(coupon_key, bytes) else coupon_key
    tag = coupon_key.split("}")[0] + "}"
    stream = tag + ":g"
    redis.command("HINCRBY", coupon_key, "left", "-1")
    now = int(time.time())
    redis.command("ZADD", f"{tag}:u:{second}", str(now * 1000000), f"{seller}/{coupon}")
    redis.command("XADD", stream, "*", "g", f"{second}\n{seller}\n{coupon}\n3\n{now}\n{now * 1000000}")
    taken = redis.command("XREADGROUP", "GROUP", "persister", "dead-instance", "COUNT", "10",
                          "STREAMS", stream, ">")
    assert taken, "the dead consumer read the entry"
    assert int(redis.command("XPENDING", stream, "persister")[0]) == 1
    started = time.monotonic()
    a.start()
    deadline = started + 30
    while sql_grants(deployment).get((second, seller, coupon)) != 1:
        assert time.monotonic() < deadline, "the pending grant was never claimed"
        time.sleep(0.2)
    assert time.monotonic() - started >= 9, "claimed before the dead consumer's entry aged"
    assert deployment.settle() == 0
    assert int(redis.command("XPENDING", stream, "persister")[0]) == 0
    check_sql_invariants(deployment, seller, amounts, {(first, coupon), (second, coupon)})


@pytest.mark.parametrize("backend,how", [("redis", "frozen"), ("redis", "down"),
                                         ("mariadb", "frozen"), ("mariadb", "down")])
def test_sigterm_is_prompt_while_a_backend_is_frozen_or_down(start_server, tmp_path, backend,
                                                             how):
    """Every thread observes a stop within a bounded time (README "Signals") even when a
    backend hangs (SIGSTOP: connections stay open and nothing answers) or is gone: the
    instance exits 0 under grab load, and every 201 it gave is kept."""
    bound = 8.0 if os.environ.get("SECKILL_SANITIZED") else 6.0
    a, b = start_group(start_server, tmp_path / "d")
    deployment = a.deployment
    seller, _stoken, amounts, tokens = sale(Client(a), n_coupons=4, amount=400, n_customers=30)
    target = deployment.redis if backend == "redis" else Deployment.mariadb()
    with GrabStorm([a, b], seller, amounts, tokens, threads=6) as storm:
        time.sleep(0.5)
        if how == "frozen":
            target.pause()
        else:
            target.stop()
        try:
            time.sleep(0.5)
            start = time.monotonic()
            a.proc.send_signal(signal.SIGTERM)
            try:
                if os.environ.get("SK_DIAG"):
                    try:
                        a.proc.wait(timeout=float(os.environ["SK_DIAG"]))
                    except subprocess.TimeoutExpired:
                        a.dump_threads()
                code = a.proc.wait(timeout=bound)
            except subprocess.TimeoutExpired:
                a.dump_threads()
                code = None
            seconds = time.monotonic() - start
            with storm.lock:
                storm.live.remove(a)
        finally:
            if how == "frozen":
                target.resume()
            else:
                target.start()
        wait_ready(b)
    assert code == 0, f"status {code} after {seconds:.1f} s\n{a.logs()[-3000:]}"
    print(f"\n{backend} {how}: SIGTERM to exit {seconds:.2f} s")
    assert not storm.bad, storm.bad[:3]
    check_sql_invariants(deployment, seller, amounts, storm.granted, storm.unknown)
