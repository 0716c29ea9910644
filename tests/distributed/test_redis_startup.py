"""What the service says at start about its Redis (issue 15): the warnings of
`--redis-wait-replicas` against the replicas a master has, the refusal of values the option
and `--redis-wait-timeout` do not take, and a Sentinel URL that names a master the
Sentinel does not know.

- A master with one replica (backends.RedisSentinelGroup, shared by the module) and N=0:
  the log warns that a failover can lose grants already answered 201. N=2: it warns that
  grabs answer 503, and they do (with Retry-After; the grant stands, a retry answers
  already-held). N=1: neither warning.
- `--redis-wait-replicas -1 / x / 65`, `--redis-wait-timeout 0` (and from the
  environment): exit status 2 before touching a backend, a message naming the option.
- `redis-sentinel://...#wrong`: the instance starts, stays alive and not ready (503 on
  /readyz), says that the Sentinel knows no such master (once, then counted), and becomes
  ready by itself once the Sentinel monitors that name.
"""

import os
import time

import pytest
import requests

from seckill_harness import Client, Deployment, expect_204, expect_json, free_port
from test_distributed import wait_ready
from test_failover import create_coupon
from test_ops import run_briefly

LOSES_GRANTS = ("Redis master 0 has 1 replica(s) but --redis-wait-replicas is 0: a failover "
                "to a replica that lagged loses grants already answered 201")
ANSWERS_503 = ("--redis-wait-replicas is 2 but Redis master 0 has 1 replica(s) connected: "
               "grabs answer 503 until enough replicas are")
# the start-up wait for the backends (10 s) and more under the sanitizers
NOT_READY_BOUND = 40.0 if os.environ.get("SECKILL_SANITIZED") else 20.0


@pytest.fixture(scope="module")
def sentinel_dir(tmp_path_factory):
    """A data directory whose deployment is a Sentinel group: a master with one replica."""
    data_dir = tmp_path_factory.mktemp("sentinel") / "d"
    Deployment.for_dir(data_dir, sentinel=True)
    return data_dir


def start_with(start_server, data_dir, wait_replicas):
    options = {} if wait_replicas is None else {"--redis-wait-replicas": wait_replicas}
    return start_server(data_dir=data_dir, options=options)


def replica_warnings(server):
    """The two warnings of sk_hot_state_check_replicas, as far as the log has them. The
    persister checks before it declares the hot state present, so a ready instance (the
    harness waits for /readyz) has written them."""
    logs = server.logs()
    return [text for text in (LOSES_GRANTS, ANSWERS_503) if text in logs]


def test_replica_but_no_wait_warns_of_lost_grants(start_server, sentinel_dir):
    server = start_with(start_server, sentinel_dir, None)  # the default, 0
    assert replica_warnings(server) == [LOSES_GRANTS], server.logs()


def test_wait_for_more_replicas_than_connected_warns_and_answers_503(start_server,
                                                                     sentinel_dir):
    waiting = start_with(start_server, sentinel_dir, 2)
    assert replica_warnings(waiting) == [ANSWERS_503], waiting.logs()
    # The coupon through an instance that can create one (creation waits for replicas too).
    one = start_with(start_server, sentinel_dir, 1)
    seller, stoken = Client(one).new_user("saler")
    coupon = create_coupon(Client(one), stoken, seller, 20)
    customer, token = Client(one).new_user("customer")
    r = Client(waiting).grab(token, seller, coupon)
    expect_json(r, 503)
    assert r.headers.get("Retry-After"), r.headers
    # The script ran and its replica has it: the grant stands, a retry says so.
    expect_204(Client(one).grab(token, seller, coupon), "already-held")


def test_wait_for_the_replica_connected_warns_of_nothing(start_server, sentinel_dir):
    server = start_with(start_server, sentinel_dir, 1)
    assert replica_warnings(server) == [], server.logs()
    assert "--redis-wait-replicas" not in server.logs(), server.logs()


@pytest.mark.parametrize("option, value", [
    ("--redis-wait-replicas", "-1"), ("--redis-wait-replicas", "x"),
    ("--redis-wait-replicas", "65"),
    ("--redis-wait-timeout", "0"), ("--redis-wait-timeout", "-100"),
    ("--redis-wait-timeout", "1s")])
def test_wait_options_refuse_bad_values(tmp_path, option, value):
    code, out = run_briefly(["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
                             option, value])
    assert code == 2, f"{option} {value!r}: status {code}: {out}"
    expected = "invalid value for %s (expected %s)" % (
        option, "N" if option == "--redis-wait-replicas" else "MS")
    assert expected in out, out
    assert not (tmp_path / "d").exists(), "it went on after refusing its options"
    env = {"SECKILL_REDIS_WAIT_REPLICAS" if option == "--redis-wait-replicas"
           else "SECKILL_REDIS_WAIT_TIMEOUT": value}
    code, out = run_briefly(["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d")],
                            env=env)
    assert code == 2, f"{env}: status {code}: {out}"
    assert "invalid value in " + next(iter(env)) in out, out


def test_sentinel_url_naming_an_unknown_master(start_server, sentinel_dir):
    """Not ready while the Sentinel knows no master of that name, alive, one clear
    message; ready by itself once the Sentinel monitors it."""
    group = Deployment.for_dir(sentinel_dir).redis
    name = "nosuch"
    url = group.url.rsplit("#", 1)[0] + "#" + name
    server = start_server(data_dir=sentinel_dir, options={"--redis": url}, start=False)
    server.port = free_port()
    server.spawn()
    started = time.monotonic()
    wait_ready(server, want=503, timeout=NOT_READY_BOUND)
    assert server.alive(), server.logs()
    r = requests.get(server.url + "/healthz", timeout=5)
    assert r.status_code == 200, r.text
    logs = server.logs()
    expected = f'Sentinel 127.0.0.1:{group.sentinel.port} knows no master named "{name}"'
    assert expected in logs, logs
    assert "not ready yet" in logs, logs
    assert group.password not in logs, "the password was logged"
    try:
        group.sentinel.command("SENTINEL", "MONITOR", name, "127.0.0.1", group.master.port, 1)
        group.sentinel.command("SENTINEL", "SET", name, "auth-pass", group.password)
        wait_ready(server, want=200, timeout=NOT_READY_BOUND)
        assert server.alive(), server.logs()
    finally:
        group.sentinel.command("SENTINEL", "REMOVE", name)
    # Every attempt fails (the watcher's each second, the blocking clients' more often),
    # and its message is written once, then counted: per 10 s window a line and its count,
    # for the watcher's message and the blocking clients' (README "Logs").
    windows = int((time.monotonic() - started) // 10) + 1
    repeats = [line for line in server.logs().splitlines() if expected in line]
    assert len(repeats) <= 2 * 2 * windows, "\n".join(repeats)
