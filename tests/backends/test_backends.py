"""The test backends themselves: each starts, answers, keeps its data across a restart,
and stops; the `start DIR` / `stop DIR` command does the same and cleans up after an
earlier run without touching processes that are not its own."""

import os
import subprocess
import sys
import time

import pytest

from backends import (MariaDB, RedisCluster, RedisError, RedisSentinelGroup, RedisServer,
                      _proc_alive, free_port, redis_command)

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "backends.py")


def test_free_port_is_bindable_and_not_repeated():
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    assert all(1024 <= port < 65536 for port in ports)


def test_redis_round_trip(redis_server):
    assert redis_server.command("SET", "greeting", "hello world") == "OK"
    assert redis_server.command("GET", "greeting") == "hello world"
    assert redis_server.cli("GET", "greeting").strip() == "hello world"
    assert redis_server.url == "redis://127.0.0.1:%d/0" % redis_server.port
    assert redis_server.command("CONFIG", "GET", "appendonly") == ["appendonly", "yes"]
    assert redis_server.command("CONFIG", "GET", "appendfsync") == ["appendfsync", "everysec"]


def test_redis_aof_survives_restart_and_kill():
    with RedisServer(aof=True) as server:
        port, data_dir = server.port, server.dir
        server.command("SET", "kept", "1")
        server.command("RPUSH", "list", "a", "b")
        server.restart()  # SIGTERM: a clean shutdown
        assert (server.port, server.dir) == (port, data_dir)
        assert server.command("GET", "kept") == "1"
        assert server.command("LRANGE", "list", "0", "-1") == ["a", "b"]

        server.command("SET", "after-restart", "2")
        time.sleep(1.5)  # appendfsync everysec
        server.kill()
        assert not server.running()
        server.start()
        assert server.port == port
        assert server.command("GET", "after-restart") == "2"
    assert not os.path.exists(data_dir)


def test_redis_pause_and_resume():
    with RedisServer(aof=False) as server:
        server.pause()
        with pytest.raises(OSError):
            redis_command(server.port, "PING", timeout=0.3)
        server.resume()
        assert server.command("PING") == "PONG"


def test_cluster_round_trip(redis_cluster):
    assert redis_cluster.url == "redis://" + ",".join(
        "127.0.0.1:%d" % port for port in redis_cluster.ports)
    assert len(redis_cluster.ports) == 3
    keys = ["key%d" % index for index in range(20)]
    for key in keys:
        assert redis_cluster.cli("SET", key, "value-" + key).strip() == "OK"
    for key in keys:
        assert redis_cluster.cli("GET", key).strip() == "value-" + key
    # The keys spread over the masters, and a hash tag keeps keys on one slot.
    assert len({redis_cluster.node_for_key(key).port for key in keys}) == 3
    assert (redis_cluster.node_for_key("{coupon:1}:left").port
            == redis_cluster.node_for_key("{coupon:1}:holders").port)
    for node in redis_cluster.nodes:
        assert "cluster_state:ok" in node.command("CLUSTER", "INFO")
        assert node.command("CONFIG", "GET", "appendonly") == ["appendonly", "yes"]


def test_cluster_restart_keeps_data():
    with RedisCluster(masters=3) as cluster:
        ports = cluster.ports
        for index in range(10):
            cluster.cli("SET", "k%d" % index, str(index))
        cluster.restart()
        assert cluster.ports == ports
        for index in range(10):
            assert cluster.cli("GET", "k%d" % index).strip() == str(index)


def test_sentinel_failover_loses_what_the_cut_off_replica_missed():
    """The staged failover of RedisSentinelGroup: writes the master acknowledged while its
    replica was cut off are missing on the replica Sentinel promotes; earlier ones are
    there."""
    with RedisSentinelGroup() as group:
        old_master, old_replica = group.master, group.replica
        assert group.current_master() is old_master
        assert group.url == "redis-sentinel://%s@127.0.0.1:%d/0#seckill" % (
            group.password, group.sentinel.port)
        assert group.master_url == "redis://:%s@127.0.0.1:%d/0" % (group.password,
                                                                   old_master.port)
        with pytest.raises(RedisError, match="NOAUTH"):
            redis_command(old_master.port, "GET", "x")
        assert old_replica.command("CONFIG", "GET", "appendonly") == ["appendonly", "yes"]
        group.command("SET", "before", "1")
        assert group.command("WAIT", "1", "5000") == 1
        assert old_replica.command("GET", "before") == "1"

        group.cut_replica_off()
        for index in range(100):
            group.command("SET", "during%d" % index, str(index))
        assert group.command("WAIT", "1", "200") == 0, "the replica still acknowledges"
        time.sleep(1.5)  # the replica retries its master every second: it must still fail
        assert old_replica.command("GET", "during0") is None
        assert "master_link_status:down" in old_replica.command("INFO", "replication")

        group.kill_master()
        group.restore_replica()
        started = time.monotonic()
        assert group.wait_failover(timeout=30) is old_replica
        print("\nSentinel failover: %.1f s after kill -9" % (time.monotonic() - started))
        assert (group.master, group.replica) == (old_replica, old_master)
        assert group.current_master() is old_replica and old_replica.role() == "master"
        assert group.master_url.endswith(":%d/0" % old_replica.port)
        assert old_replica.command("GET", "before") == "1"
        lost = [index for index in range(100)
                if old_replica.command("GET", "during%d" % index) is None]
        assert lost == list(range(100))
        assert group.command("SET", "after", "1") == "OK"  # the new master takes writes
        group.revive_replica()  # the old master, now a replica of the new one
        assert old_master.role() == "slave"
        assert old_master.command("GET", "during0") is None  # resynced, not merged
        assert group.command("WAIT", "1", "5000") == 1
    assert not os.path.exists(group.dir)
    assert not any(server.running() for server in group.servers + [group.sentinel])


def test_sentinel_manual_failover_demotes_the_old_master():
    """SENTINEL FAILOVER with both servers up (RedisSentinelGroup.failover): the replica is
    promoted; the old master stays a master with no replica (WAIT answers 0) until the
    Sentinel demotes it (wait_demoted), which resyncs it from the new master and drops
    what it took alone."""
    with RedisSentinelGroup() as group:
        old_master, old_replica = group.master, group.replica
        group.command("SET", "before", "1")
        assert group.command("WAIT", "1", "5000") == 1
        started = time.monotonic()
        assert group.failover() is old_replica
        switched = time.monotonic()
        assert (group.master, group.replica) == (old_replica, old_master)
        assert group.current_master() is old_replica and old_replica.role() == "master"
        assert old_replica.command("GET", "before") == "1"
        assert old_master.role() == "master"  # the Sentinel waits 8 s before demoting it
        old_master.command("SET", "alone", "1")
        assert old_master.command("WAIT", "1", "100") == 0
        group.wait_demoted()
        print("\nmanual failover: switched %.1f s after SENTINEL FAILOVER, old master "
              "demoted %.1f s after that" % (switched - started, time.monotonic() - switched))
        assert old_master.role() == "slave"
        assert old_master.command("GET", "alone") is None  # resynced, not merged
        assert old_master.command("GET", "before") == "1"
        group.command("SET", "after", "1")
        assert group.command("WAIT", "1", "5000") == 1


def test_cluster_with_replicas_fails_over_and_moves_the_slots():
    """A Cluster with a replica per master: the replica of a master killed after it was
    cut off takes over that master's slots (clients are MOVED to it) without the writes
    it missed."""
    with RedisCluster(masters=3, replicas=1) as cluster:
        assert len(cluster.nodes) == 6 and cluster.password
        assert cluster.url.startswith("redis://:%s@" % cluster.password)
        assert sorted(node.role() for node in cluster.nodes) == ["master"] * 3 + ["slave"] * 3
        for node in cluster.nodes:
            config = node.command("CONFIG", "GET", "cluster-*")
            settings = dict(zip(config[0::2], config[1::2]))
            assert settings["cluster-node-timeout"] == "1000"
            assert settings["cluster-replica-validity-factor"] == "0"
        key = "{coupon:7}:left"
        master = cluster.node_for_key(key)
        replica = cluster.replica_of(master)
        slots = sorted(first_last for first_last, node in cluster.slot_map().items()
                       if node is master)
        assert slots
        master.command("SET", key, "before")
        assert master.command("WAIT", "1", "5000") == 1

        assert cluster.cut_replica_off(master) is replica
        master.command("SET", "{coupon:7}:missed", "1")
        assert master.command("WAIT", "1", "200") == 0
        cluster.kill_master(master)
        cluster.restore_replica(master)
        started = time.monotonic()
        assert cluster.wait_failover(master, timeout=30) is replica
        print("\nCluster failover: %.1f s after kill -9" % (time.monotonic() - started))
        assert replica.role() == "master"
        assert sorted(first_last for first_last, node in cluster.slot_map().items()
                      if node is replica) == slots
        assert cluster.node_for_key(key) is replica
        assert replica in cluster.masters() and master not in cluster.masters()
        other = next(node for node in cluster.masters() if node is not replica)
        with pytest.raises(RedisError, match="MOVED .*:%d$" % replica.port):
            other.command("GET", key)
        assert cluster.cli("GET", key).strip() == "before"
        assert replica.command("GET", "{coupon:7}:missed") is None
        assert cluster.replica_of(replica) is master
        cluster.revive(master)  # rejoins as the replica of its replacement
        assert replica.command("WAIT", "1", "5000") == 1
        assert master.command("DBSIZE") == replica.command("DBSIZE") == 1  # resynced


def test_mariadb_round_trip(mariadb):
    assert mariadb.url.startswith("mysql://seckill_test:")
    assert mariadb.url.endswith("@127.0.0.1:%d/seckill_test" % mariadb.port)
    mariadb.query("DROP TABLE IF EXISTS t;"
                  "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(64) NULL)"
                  " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;"
                  "INSERT INTO t VALUES (1, 'plain'), (2, 'tab\\there\\nnewline'),"
                  " (3, NULL), (4, '秒杀')")
    assert mariadb.query("SELECT id, name FROM t ORDER BY id") == [
        ["1", "plain"], ["2", "tab\there\nnewline"], ["3", "NULL"], ["4", "秒杀"]]


def test_mariadb_fresh_databases(mariadb, mysql_database):
    name = mysql_database.rsplit("/", 1)[1]
    assert mysql_database == mariadb.url_for(name)
    assert mariadb.query("SHOW TABLES", database=name) == []
    mariadb.query("CREATE TABLE x (a INT); INSERT INTO x VALUES (7)", database=name)
    assert mariadb.query("SELECT a FROM x", database=name) == [["7"]]
    other = mariadb.create_database()
    assert other != mysql_database
    mariadb.drop_database(other.rsplit("/", 1)[1])


def test_mariadb_restart_keeps_data():
    with MariaDB() as server:
        port = server.port
        server.query("CREATE TABLE g (id INT PRIMARY KEY); INSERT INTO g VALUES (1), (2)")
        server.restart()
        assert server.port == port
        assert server.query("SELECT COUNT(*) FROM g") == [["2"]]
        server.query("INSERT INTO g VALUES (3)")
        server.kill()
        server.start()
        assert server.query("SELECT COUNT(*) FROM g") == [["3"]]


def read_env(path):
    with open(path) as env_file:
        return dict(line.rstrip("\n").split("=", 1) for line in env_file if "=" in line)


def run_script(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True,
                          text=True, timeout=120)


def start_script(directory, *args):
    """`backends.py start DIR ARGS`, asserted; returns (DIR/env as a dict, DIR/pids)."""
    start = run_script("start", directory, *args)
    assert start.returncode == 0, start.stdout + start.stderr
    env = read_env(os.path.join(directory, "env"))
    with open(os.path.join(directory, "pids")) as pids_file:
        return env, [int(line) for line in pids_file]


def port_of(url):
    return int(url.rsplit(":", 1)[1].split("/")[0])


def test_command_start_restart_stop(tmp_path):
    directory = str(tmp_path / "backends")
    env, first_pids = start_script(directory)
    assert len(first_pids) == 5

    redis_port = port_of(env["SK_TEST_REDIS_URL"])
    assert redis_command(redis_port, "PING") == "PONG"
    cluster_ports = [int(address.rsplit(":", 1)[1]) for address in
                     env["SK_TEST_REDIS_CLUSTER_URL"][len("redis://"):].split(",")]
    assert len(cluster_ports) == 3
    for port in cluster_ports:
        assert "cluster_state:ok" in redis_command(port, "CLUSTER", "INFO")
    mysql = env["SK_TEST_MYSQL_URL"]
    user_password, address = mysql[len("mysql://"):].rsplit("@", 1)
    user, password = user_password.split(":", 1)
    host_port, database = address.split("/")
    rows = subprocess.run(
        ["mariadb", "--no-defaults", "--protocol=TCP", "-h", "127.0.0.1",
         "-P", host_port.split(":")[1], "-u", user, "--batch", "--skip-column-names",
         "-e", "SELECT DATABASE()", database],
        env=dict(os.environ, MYSQL_PWD=password), capture_output=True, text=True)
    assert rows.stdout.strip() == "seckill_test", rows.stderr

    # A second start on the same DIR stops the leftovers first.
    _env, second_pids = start_script(directory)
    assert not any(_proc_alive(pid) for pid in first_pids)

    stop = run_script("stop", directory)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not any(_proc_alive(pid) for pid in second_pids)
    assert not os.path.exists(directory)


def test_command_start_with_redis_replicas(tmp_path):
    """`start DIR --redis-replicas 1` (bench/run's REDIS_REPLICAS): the standalone Redis
    has a replica that receives its writes; `stop DIR` ends it with the rest."""
    directory = str(tmp_path / "backends")
    env, pids = start_script(directory, "--redis-replicas", "1")
    assert len(pids) == 6
    master_port = port_of(env["SK_TEST_REDIS_URL"])
    replica_urls = env["SK_TEST_REDIS_REPLICA_URLS"].split(",")
    assert len(replica_urls) == 1
    replica_port = port_of(replica_urls[0])
    assert redis_command(replica_port, "ROLE")[:3] == ["slave", "127.0.0.1", master_port]
    assert redis_command(master_port, "SET", "k", "v") == "OK"
    assert redis_command(master_port, "WAIT", "1", "5000") == 1
    assert redis_command(replica_port, "GET", "k") == "v"
    stop = run_script("stop", directory)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not any(_proc_alive(pid) for pid in pids)
    assert not os.path.exists(directory)


def test_command_stop_leaves_other_processes_alone(tmp_path):
    directory = tmp_path / "backends"
    directory.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    with RedisServer(aof=False) as foreign:  # a redis-server, but not from DIR
        (directory / "pids").write_text("%d\n%d\n" % (sleeper.pid, foreign.pid))
        stop = run_script("stop", str(directory))
        assert stop.returncode == 0, stop.stderr
        assert sleeper.poll() is None
        assert foreign.command("PING") == "PONG"
    sleeper.kill()
    sleeper.wait()
