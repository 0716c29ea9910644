#!/usr/bin/python3
"""Real Redis, Redis Cluster and MariaDB servers for the tests of the distributed deployment.

Every server runs on a free loopback port with its data in a directory of its own, and
nothing here depends on a server that is already running. Standard library only.

As a command (CTest's `backends_start` / `backends_stop` fixtures):

    backends.py start DIR [--redis-replicas N]
                            start a standalone Redis (AOF on; with N replicas of it, AOF
                            on too), a three-master Redis Cluster (AOF on, no replicas)
                            and a MariaDB with a database `seckill_test`; write DIR/env
                            (KEY=VALUE lines) and DIR/pids; exit 0 only once all of them
                            answer (and every replica receives the stream)
    backends.py stop DIR    stop what DIR/pids names (SIGTERM, then SIGKILL) and remove
                            the data

DIR/env holds

    SK_TEST_REDIS_URL=redis://127.0.0.1:PORT/0
    SK_TEST_REDIS_CLUSTER_URL=redis://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
    SK_TEST_MYSQL_URL=mysql://USER:PASSWORD@127.0.0.1:PORT/seckill_test
    SK_TEST_REDIS_REPLICA_URLS=redis://127.0.0.1:PORT/0,...   (with --redis-replicas)

As a module (pytest, see fixtures.py):

    RedisServer(aof=True, password=None, replica_of=None)
                            .start() .stop() .kill() .restart() .pause() .resume()
                            .close() .url .port .pid .dir .command(*args) .cli(*args)
                            .role() .logs()
    RedisCluster(masters=3, replicas=0)
                            .start() .stop() .kill() .restart() .close() .url .ports
                            .nodes (RedisServer each) .cli(*args) .node_for_key(key)
                            .slot_map() .masters() .logs(); with replicas, for one
                            master: .replica_of(m) .cut_replica_off(m) .kill_master(m)
                            .restore_replica(m) .wait_failover(m) .revive(m)
    RedisSentinelGroup()    a master, its replica and a Sentinel: .start() .stop()
                            .close() .url (redis-sentinel://...#seckill) .master_url
                            .master .replica .sentinel .current_master()
                            .cut_replica_off() .kill_master() .restore_replica()
                            .wait_failover() .revive_replica() .command(*args) .logs()
    MariaDB()               .start() .stop() .kill() .restart() .pause() .resume()
                            .close() .url .port .pid .query(sql, database=None)
                            .admin(sql) .create_database(name=None) .url_for(name)
                            .drop_database(name) .logs()
    free_port(), redis_command(port, *args)

`stop()` keeps the data directory, so `start()` (or `restart()`) brings the same server
back on the same port with its data; `close()` stops and removes the data. Whatever a
process starts is closed at exit.
"""

import argparse
import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
MARIADB = shutil.which("mariadb") or "/usr/bin/mariadb"

HOST = "127.0.0.1"
CLUSTER_SLOTS = 16384
STOP_TIMEOUT = 5.0
START_TIMEOUT = 30.0
# The process names the `stop` command agrees to signal (/proc/PID/comm; a Sentinel is a
# redis-server too).
SERVER_NAMES = ("redis-server", "mariadbd")


class BackendError(Exception):
    """A server did not start, stop or answer as expected."""


class RedisError(Exception):
    """Redis answered with an error reply."""


# ---------------------------------------------------------------------------------------
# Ports and processes

_ports_lock = threading.Lock()
_ports_given = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now, never the same one twice in
    this process. Another process may still take it first; the servers retry on that."""
    with _ports_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                port = sock.getsockname()[1]
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise BackendError("no free port")


# Called with (pid, name) for every server process started; the `start` command records
# them in DIR/pids at once, so that a start killed half way can still be cleaned up.
spawn_listeners = []


def _spawn(argv, log_path, cwd):
    log = open(log_path, "ab")
    try:
        # A session of its own: a Ctrl-C meant for pytest or ctest does not reach the
        # servers half way through a test; they are stopped explicitly.
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=cwd,
                                   start_new_session=True)
    finally:
        log.close()
    for listener in spawn_listeners:
        listener(process.pid, os.path.basename(argv[0]))
    return process


def _stop_process(process, timeout=STOP_TIMEOUT):
    """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status."""
    if process.poll() is not None:
        return process.returncode
    try:
        process.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
        process.terminate()
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _kill_process(process):
    if process.poll() is None:
        process.kill()
    return process.wait()


def _tail(path, lines=40):
    try:
        with open(path, "rb") as log:
            text = log.read().decode("utf-8", "replace")
    except OSError as error:
        return "(no log: %s)" % error
    return "\n".join(text.splitlines()[-lines:])


def _wait_until(check, timeout, what, process=None, logs=None):
    """Poll `check()` until it returns a true value; fail early if `process` exits.
    `logs()` gives the text to show on failure."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        if process is not None and process.poll() is not None:
            raise BackendError("%s: the server exited with status %s\n%s"
                               % (what, process.returncode, logs() if logs else ""))
        try:
            result = check()
            if result:
                return result
        except (OSError, RedisError, BackendError, subprocess.SubprocessError) as error:
            last_error = error
        if time.monotonic() > deadline:
            raise BackendError("%s: not ready after %.0f s (%s)\n%s"
                               % (what, timeout, last_error, logs() if logs else ""))
        time.sleep(0.02)


def _logs(directory, names, lines):
    parts = []
    for name in names:
        path = os.path.join(directory, name)
        if os.path.exists(path) and os.path.getsize(path) > 0:
            parts.append("--- %s\n%s" % (path, _tail(path, lines)))
    return "\n".join(parts) or "(no logs in %s)" % directory


def _address_in_use(log_path):
    return "Address already in use" in _tail(log_path, 20)


_open_servers = []


def _register(server):
    if server not in _open_servers:
        _open_servers.append(server)


@atexit.register
def close_all():
    """Close every server this process started and did not close (runs at exit)."""
    while _open_servers:
        server = _open_servers.pop()
        try:
            server.close()
        except Exception as error:  # keep closing the others
            print("backends: closing %r: %s" % (server, error), file=sys.stderr)


def _make_base_dir(base_dir, prefix):
    if base_dir is None:
        return tempfile.mkdtemp(prefix=prefix), True
    os.makedirs(base_dir, exist_ok=True)
    return os.path.abspath(base_dir), False


# ---------------------------------------------------------------------------------------
# A small RESP client (enough for tests: commands in, replies out)

def _encode_command(args):
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif not isinstance(arg, bytes):
            arg = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def _read_reply(stream):
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by the server")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return None
        data = stream.read(length + 2)
        return data[:-2].decode("utf-8", "surrogateescape")
    if kind == b"*":
        count = int(rest)
        if count < 0:
            return None
        return [_read_reply(stream) for _ in range(count)]
    raise ConnectionError("unexpected reply %r" % line)


def redis_command(port, *args, host=HOST, timeout=5.0, password=None):
    """Send one command to the Redis at host:port and return its reply: str, int, None or
    a list of those. An error reply raises RedisError (errors inside arrays are
    returned as RedisError values). With `password`, AUTH first on the same connection."""
    request = _encode_command(args)
    if password is not None:
        request = _encode_command(("AUTH", password)) + request
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        with sock.makefile("rb") as stream:
            if password is not None:
                auth = _read_reply(stream)
                if isinstance(auth, RedisError):
                    raise auth
            reply = _read_reply(stream)
    if isinstance(reply, RedisError):
        raise reply
    return reply


def _info_field(info, name):
    """The value of `name` in an INFO reply, or None."""
    prefix = name + ":"
    for line in info.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


def _redis_ready(port, password=None):
    try:
        return redis_command(port, "PING", timeout=1.0, password=password) == "PONG"
    except RedisError as error:  # LOADING: still reading the AOF
        if str(error).startswith("LOADING"):
            return False
        raise


# ---------------------------------------------------------------------------------------
# Redis

class RedisServer:
    """One redis-server on 127.0.0.1. `aof=True`: appendonly yes, appendfsync everysec.
    `cluster=True`: cluster-enabled (a node of a RedisCluster), `cluster_node_timeout`
    in ms. `password`: requirepass and masterauth (clients and replicas must AUTH;
    `command()` and `cli()` do). `replica_of`: a RedisServer this one replicates
    (replicaof, from its first start). `config`: more `--name value` arguments."""

    def __init__(self, aof=True, base_dir=None, port=None, cluster=False, password=None,
                 replica_of=None, cluster_node_timeout=2000, config=()):
        self.aof = aof
        self.cluster = cluster
        self.cluster_node_timeout = cluster_node_timeout
        self.config = [str(arg) for arg in config]
        self.password = password
        self.replica_of = replica_of
        self.dir, self._owns_dir = _make_base_dir(base_dir, "sk-redis-")
        self.port = port
        self.bus_port = None
        self.process = None
        self._fresh = port is None  # may move to another port if this one is taken
        self.log_path = os.path.join(self.dir, "redis.log")

    def __repr__(self):
        return "RedisServer(port=%s, dir=%s)" % (self.port, self.dir)

    @property
    def url(self):
        """redis://[:password@]127.0.0.1:PORT/0"""
        credentials = ":%s@" % self.password if self.password else ""
        return "redis://%s%s:%d/0" % (credentials, HOST, self.port)

    @property
    def address(self):
        return "%s:%d" % (HOST, self.port)

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def running(self):
        return self.process is not None and self.process.poll() is None

    def _argv(self):
        argv = [REDIS_SERVER,
                "--bind", HOST, "--port", str(self.port), "--dir", self.dir,
                "--logfile", self.log_path, "--daemonize", "no", "--save", "",
                "--appendonly", "yes" if self.aof else "no",
                "--appendfsync", "everysec",
                "--enable-debug-command", "local"]
        if self.password:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        if self.replica_of is not None:
            argv += ["--replicaof", HOST, str(self.replica_of.port)]
        if self.cluster:
            argv += ["--cluster-enabled", "yes",
                     "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
                     "--cluster-port", str(self.bus_port),
                     "--cluster-node-timeout", str(self.cluster_node_timeout)]
        return argv + self.config

    def launch(self):
        """Start the process without waiting for it; `wait_ready()` waits."""
        if self.running():
            return
        if self.port is None:
            self.port = free_port()
        if self.cluster and self.bus_port is None:
            self.bus_port = free_port()
        self.process = _spawn(self._argv(), os.path.join(self.dir, "stdout.log"), self.dir)
        _register(self)

    def wait_ready(self, timeout=START_TIMEOUT):
        _wait_until(lambda: _redis_ready(self.port, self.password), timeout, repr(self),
                    self.process, self.logs)

    def start(self, timeout=START_TIMEOUT):
        """Start (or start again, on the same port with the same data) and wait until it
        answers PING. A fresh server that lost its port to another process retries on
        another one."""
        for attempt in range(3):
            self.launch()
            try:
                self.wait_ready(timeout)
                self._fresh = False
                return self
            except BackendError:
                if not (self._fresh and attempt < 2 and self.process.poll() is not None
                        and _address_in_use(self.log_path)):
                    raise
                self.port = self.bus_port = None
        return self

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (Redis writes and fsyncs the AOF), SIGKILL after `timeout`. Keeps data."""
        if self.process is not None:
            _stop_process(self.process, timeout)

    def kill(self):
        """SIGKILL: a crash. With appendfsync everysec, writes older than ~1 s survive."""
        if self.process is not None:
            _kill_process(self.process)

    def restart(self, timeout=START_TIMEOUT):
        self.stop()
        return self.start(timeout)

    def pause(self):
        """SIGSTOP: the server stops answering but keeps its connections."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def close(self):
        """Stop and remove the data directory (if this object created it)."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _open_servers:
            _open_servers.remove(self)

    def logs(self, lines=40):
        """The end of the server's log (and of its stdout, where early errors go)."""
        return _logs(self.dir, ("stdout.log", os.path.basename(self.log_path)), lines)

    def command(self, *args, timeout=5.0):
        """One command over RESP (after AUTH if the server has a password); see
        redis_command."""
        return redis_command(self.port, *args, timeout=timeout, password=self.password)

    def role(self, timeout=2.0):
        """"master" or "slave" (the first field of ROLE)."""
        return self.command("ROLE", timeout=timeout)[0]

    def cli(self, *args, check=True):
        """Run redis-cli against this server; returns its stdout (str)."""
        return _run_cli(["-h", HOST, "-p", str(self.port)] + _cli_auth(self.password), args,
                        check)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def _cli_auth(password):
    return ["-a", password, "--no-auth-warning"] if password else []


def _run_cli(target, args, check):
    result = subprocess.run([REDIS_CLI] + target + [str(arg) for arg in args],
                            capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    if check and (result.returncode != 0 or result.stdout.startswith("(error)")
                  or result.stdout.startswith("ERR")):
        raise BackendError("redis-cli %s: status %d: %s%s" % (
            " ".join(map(str, args)), result.returncode, result.stdout, result.stderr))
    return result.stdout


# ---------------------------------------------------------------------------------------
# Replication

# A replica that needs a full resync gets it at once: Redis waits 5 s by default
# (repl-diskless-sync-delay) for more replicas to share the transfer. The failover tests
# resync a revived or demoted master every time, and would wait that out in each.
PROMPT_RESYNC = ("--repl-diskless-sync-delay", "0")


def _replication(server):
    return server.command("INFO", "replication", timeout=2.0)


def _link_up(replica):
    """True when `replica` receives its master's replication stream."""
    return _info_field(_replication(replica), "master_link_status") == "up"


def _cut_off(master, replica, password):
    """Stop `replica` from receiving `master`'s stream until _reconnect(): a wrong
    masterauth on the replica, then its link dropped by the master, whose requirepass
    refuses every reconnection. (SIGSTOP on the replica is not enough: the kernel keeps
    receiving the stream into its socket buffer, and it applies all of it on SIGCONT.)"""
    if not password:
        raise BackendError("cutting a replica off needs a password on the master")
    replica.command("CONFIG", "SET", "masterauth", "wrong-" + secrets.token_hex(4))
    master.command("CLIENT", "KILL", "TYPE", "replica")
    _wait_until(lambda: (_info_field(_replication(master), "connected_slaves") == "0"
                         and not _link_up(replica)),
                10.0, "cutting %r off %r" % (replica, master))


def _reconnect(replica, password):
    """Undo _cut_off: the right masterauth again (the replica reconnects by itself, if its
    master is still there)."""
    replica.command("CONFIG", "SET", "masterauth", password)


# ---------------------------------------------------------------------------------------
# Redis Cluster

class RedisCluster:
    """A Redis Cluster of `masters` masters (AOF on), each with `replicas` replicas (none by
    default), created with `redis-cli --cluster create` (the masters), then CLUSTER MEET
    and CLUSTER REPLICATE (the replicas of master i: nodes[masters + i * replicas ...]).

    With replicas it is set up for failover tests: cluster-node-timeout 1000 (a dead
    master is replaced within a few seconds), cluster-replica-validity-factor 0 (a
    replica however far behind still takes over, as a real one cut off would), and a
    password on every node (requirepass and masterauth, random unless given; `url`
    carries it), which is what lets cut_replica_off() stop the replication stream, and
    PROMPT_RESYNC. Without replicas: no password, node timeout 2000, as it always was.

    A failover of one master, as the tests stage it (see RedisSentinelGroup):

        master = cluster.node_for_key(key)
        replica = cluster.cut_replica_off(master)
        cluster.kill_master(master)
        cluster.restore_replica(master)
        cluster.wait_failover(master)    # returns the replica, now serving the slots"""

    def __init__(self, masters=3, aof=True, base_dir=None, replicas=0, password=None):
        self.dir, self._owns_dir = _make_base_dir(base_dir, "sk-cluster-")
        self.replicas = replicas
        failover = replicas > 0
        self.password = password or (secrets.token_hex(12) if failover else None)
        config = ["--cluster-replica-validity-factor", "0", *PROMPT_RESYNC] if failover else []

        def node(index):
            return RedisServer(aof=aof, cluster=True, password=self.password,
                               base_dir=os.path.join(self.dir, "node%d" % index),
                               cluster_node_timeout=1000 if failover else 2000,
                               config=config)

        self.nodes = [node(index) for index in range(masters * (1 + replicas))]
        # master -> its replica, for the failover helpers (the first one of each master);
        # wait_failover() turns a pair around.
        self._replica_of = {self.nodes[index]: self.nodes[masters + index * replicas]
                            for index in range(masters) if replicas}
        self._created = False

    def __repr__(self):
        return "RedisCluster(ports=%s, dir=%s)" % (self.ports, self.dir)

    @property
    def ports(self):
        return [node.port for node in self.nodes]

    @property
    def url(self):
        """redis://[:password@]HOST:PORT,... naming every node (masters first)."""
        credentials = ":%s@" % self.password if self.password else ""
        return "redis://" + credentials + ",".join(node.address for node in self.nodes)

    @property
    def pids(self):
        return [node.pid for node in self.nodes]

    def launch(self):
        for node in self.nodes:
            node.launch()
        _register(self)

    def start(self, timeout=START_TIMEOUT):
        """Start the nodes, create the cluster the first time, and wait until every node
        reports cluster_state:ok, knows every other and CLUSTER SLOTS covers all 16384
        slots, and every replica receives its master's stream."""
        self.launch()
        for node in self.nodes:
            node.start(timeout)  # waits; a fresh node retries on another port if needed
        if not self._created:
            masters = self.nodes[:len(self.nodes) // (1 + self.replicas)]
            result = subprocess.run(
                [REDIS_CLI] + _cli_auth(self.password) + ["--cluster", "create"]
                + [node.address for node in masters]
                + ["--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
            if result.returncode != 0 or "[OK] All 16384 slots covered" not in result.stdout:
                raise BackendError("redis-cli --cluster create: status %d\n%s%s\n%s" % (
                    result.returncode, result.stdout, result.stderr, self.logs()))
            for index, replica in enumerate(self.nodes[len(masters):]):
                self._attach(replica, masters[index // self.replicas], timeout)
            self._created = True
        _wait_until(self._ready, timeout, repr(self), logs=self.logs)
        return self

    def _attach(self, replica, master, timeout):
        master_id = master.command("CLUSTER", "MYID")
        replica.command("CLUSTER", "MEET", HOST, master.port, master.bus_port)
        # "ERR Unknown node" until the handshake is over
        _wait_until(lambda: replica.command("CLUSTER", "REPLICATE", master_id) == "OK",
                    timeout, "%r: %r replicating %r" % (self, replica, master), logs=self.logs)

    def _ready(self):
        for node in self.nodes:
            info = node.command("CLUSTER", "INFO", timeout=1.0)
            if "cluster_state:ok" not in info:
                return False
            if "cluster_known_nodes:%d" % len(self.nodes) not in info:
                return False
            covered = sum(int(entry[1]) - int(entry[0]) + 1
                          for entry in node.command("CLUSTER", "SLOTS", timeout=1.0))
            if covered != CLUSTER_SLOTS:
                return False
        return all(_link_up(replica) for replica in self._replica_of.values())

    def logs(self, lines=40):
        return "\n".join("--- %r\n%s" % (node, node.logs(lines)) for node in self.nodes)

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop every node; the data (AOF, nodes.conf) stays for start()."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)
                node.process.terminate()
        for node in self.nodes:
            node.stop(timeout)

    def kill(self):
        for node in self.nodes:
            node.kill()

    def restart(self, timeout=START_TIMEOUT):
        self.stop()
        return self.start(timeout)

    def close(self):
        self.stop()
        for node in self.nodes:
            node.close()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _open_servers:
            _open_servers.remove(self)

    def _live_node(self):
        for node in self.nodes:
            if node.running():
                return node
        raise BackendError("%r: no node is running" % self)

    def cli(self, *args, check=True):
        """Run `redis-cli -c` (follows MOVED/ASK) against the first running node; returns
        stdout."""
        return _run_cli(["-c", "-h", HOST, "-p", str(self._live_node().port)]
                        + _cli_auth(self.password), args, check)

    def slot_map(self, node=None):
        """{slot range (first, last): the RedisServer serving it} as `node` (default: the
        first running one) sees it in CLUSTER SLOTS."""
        by_port = {server.port: server for server in self.nodes}
        return {(int(entry[0]), int(entry[1])): by_port.get(int(entry[2][1]))
                for entry in (node or self._live_node()).command("CLUSTER", "SLOTS",
                                                                  timeout=2.0)}

    def node_for_key(self, key):
        """The RedisServer serving `key`'s slot."""
        slot = self._live_node().command("CLUSTER", "KEYSLOT", key)
        for (first, last), node in self.slot_map().items():
            if first <= slot <= last:
                return node
        raise BackendError("no node serves slot %d" % slot)

    def masters(self):
        """The running nodes that are masters now (ROLE)."""
        if not self.replicas:
            return list(self.nodes)
        return [node for node in self.nodes if node.running() and node.role() == "master"]

    # -- failover of one master (clusters with replicas) ------------------------------------

    def replica_of(self, master):
        """The replica the failover helpers use for `master`."""
        try:
            return self._replica_of[master]
        except KeyError:
            raise BackendError("%r: %r has no replica" % (self, master)) from None

    def cut_replica_off(self, master):
        """`master`'s replica stops receiving its writes (until restore_replica()); returns
        the replica."""
        replica = self.replica_of(master)
        _cut_off(master, replica, self.password)
        return replica

    def restore_replica(self, master):
        """The replica of `master` has the right password again."""
        _reconnect(self.replica_of(master), self.password)

    def kill_master(self, master):
        """kill -9 `master`."""
        master.kill()

    def wait_failover(self, master, timeout=30.0):
        """Wait until `master`'s replica says it is a master and every running node's slot
        map gives it the slots and nothing to `master`, with cluster_state:ok everywhere;
        returns the replica. The pair turns around: a restarted `master` rejoins as its
        replica."""
        replica = self.replica_of(master)

        def taken_over():
            if replica.role() != "master":
                return False
            for node in self.nodes:
                if not node.running():
                    continue
                if "cluster_state:ok" not in node.command("CLUSTER", "INFO", timeout=2.0):
                    return False
                owners = set(self.slot_map(node).values())
                if master in owners or replica not in owners:
                    return False
            return True

        _wait_until(taken_over, timeout, "%r: failover of %r" % (self, master),
                    logs=self.logs)
        del self._replica_of[master]
        self._replica_of[replica] = master
        return replica

    def revive(self, node, timeout=START_TIMEOUT):
        """Start a killed node again (with its data and nodes.conf) and wait until it has
        rejoined as a replica receiving the stream (a master replaced meanwhile learns it
        lost its slots and resyncs from the new one)."""
        node.start(timeout)
        _wait_until(lambda: (node.role() == "slave" and _link_up(node)
                             and "cluster_state:ok" in node.command("CLUSTER", "INFO")),
                    timeout, "%r: %r rejoining" % (self, node), node.process, self.logs)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------
# Redis Sentinel

def _sentinel_fields(entry):
    """A SENTINEL MASTER / REPLICAS entry (a flat list of names and values) as a dict."""
    return dict(zip(entry[0::2], entry[1::2]))


class RedisSentinel(RedisServer):
    """One Redis Sentinel (`redis-server sentinel.conf --sentinel`) on 127.0.0.1 that
    monitors `master` under `master_name`, with the given quorum, down-after and failover
    timeouts, and `master_password` as its auth-pass. It has no password of its own.
    Sentinel rewrites its configuration file (known replicas, epochs), so a restart keeps
    what it learnt."""

    def __init__(self, master, master_name, master_password=None, base_dir=None, quorum=1,
                 down_after_ms=1000, failover_timeout_ms=3000):
        super().__init__(aof=False, base_dir=base_dir)
        self.master = master
        self.master_name = master_name
        self.master_password = master_password
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.conf_path = os.path.join(self.dir, "sentinel.conf")
        self.log_path = os.path.join(self.dir, "sentinel.log")

    def __repr__(self):
        return "RedisSentinel(port=%s, dir=%s)" % (self.port, self.dir)

    def _argv(self):
        if self._fresh:  # a port of its own yet: (re)write the configuration
            name = self.master_name
            lines = ["port %d" % self.port, "bind %s" % HOST, "daemonize no",
                     "dir %s" % self.dir, "logfile %s" % self.log_path,
                     "sentinel monitor %s %s %d %d" % (name, HOST, self.master.port,
                                                       self.quorum),
                     "sentinel down-after-milliseconds %s %d" % (name, self.down_after_ms),
                     "sentinel failover-timeout %s %d" % (name, self.failover_timeout_ms),
                     "sentinel parallel-syncs %s 1" % name]
            if self.master_password:
                lines.append("sentinel auth-pass %s %s" % (name, self.master_password))
            with open(self.conf_path, "w") as conf:
                os.fchmod(conf.fileno(), 0o600)
                conf.write("\n".join(lines) + "\n")
        return [REDIS_SERVER, self.conf_path, "--sentinel"]

    def master_address(self):
        """(host, port) of the master as this Sentinel names it now."""
        host, port = self.command("SENTINEL", "get-master-addr-by-name", self.master_name,
                                  timeout=2.0)
        return host, int(port)

    def master_fields(self):
        """SENTINEL MASTER's fields (ip, port, flags, ...) as a dict. They name the new
        master only once the failover is over (+switch-master), whereas
        get-master-addr-by-name does from the promotion on."""
        return _sentinel_fields(self.command("SENTINEL", "master", self.master_name,
                                             timeout=2.0))

    def replicas(self):
        """The replicas this Sentinel knows, as dicts of SENTINEL REPLICAS' fields."""
        return [_sentinel_fields(entry) for entry in
                self.command("SENTINEL", "replicas", self.master_name, timeout=2.0)]


class RedisSentinelGroup:
    """A Redis master, one replica of it (replicaof) and one Sentinel watching them
    (quorum 1, down-after-milliseconds 1000, failover-timeout 3000): the smallest
    deployment with automatic failover. Both Redis servers run with AOF on (like
    RedisServer) and a password (requirepass and masterauth; Sentinel's auth-pass), which
    is what lets cut_replica_off() stop the replication stream, and PROMPT_RESYNC. Every
    process on a free loopback port, its data in a directory of its own under one temp dir.

    A failover as the tests stage it:

        group.cut_replica_off()   # the replica stops receiving the master's writes
        ...                       # writes acknowledged by the master alone
        group.kill_master()       # kill -9
        group.restore_replica()   # the right password again
        group.wait_failover()     # Sentinel promoted the replica: those writes are gone

    or by hand, with both servers up: group.failover(), then group.wait_demoted().
    `master` and `replica` are the RedisServers in those roles as last seen (swapped by
    wait_failover()); current_master() asks the Sentinel."""

    def __init__(self, aof=True, base_dir=None, master_name="seckill", password=None,
                 down_after_ms=1000, failover_timeout_ms=3000):
        self.dir, self._owns_dir = _make_base_dir(base_dir, "sk-sentinel-")
        self.master_name = master_name
        self.password = password or secrets.token_hex(12)
        self.master = RedisServer(aof=aof, base_dir=os.path.join(self.dir, "redis0"),
                                  password=self.password, config=PROMPT_RESYNC)
        self.replica = RedisServer(aof=aof, base_dir=os.path.join(self.dir, "redis1"),
                                   password=self.password, replica_of=self.master,
                                   config=PROMPT_RESYNC)
        self.servers = [self.master, self.replica]
        self.sentinel = RedisSentinel(self.master, master_name, self.password,
                                      base_dir=os.path.join(self.dir, "sentinel"),
                                      down_after_ms=down_after_ms,
                                      failover_timeout_ms=failover_timeout_ms)

    def __repr__(self):
        return "RedisSentinelGroup(master=%s, replica=%s, sentinel=%s, dir=%s)" % (
            self.master.port, self.replica.port, self.sentinel.port, self.dir)

    @property
    def url(self):
        """The service's URL: redis-sentinel://PASSWORD@127.0.0.1:PORT/0#MASTERNAME"""
        return "redis-sentinel://%s@%s:%d/0#%s" % (self.password, HOST, self.sentinel.port,
                                                  self.master_name)

    @property
    def master_url(self):
        """redis://:PASSWORD@127.0.0.1:PORT/0 of the master the Sentinel names now."""
        return self.current_master().url

    @property
    def pids(self):
        return [server.pid for server in self.servers + [self.sentinel]]

    def start(self, timeout=START_TIMEOUT):
        """Start the master, then the replica, then the Sentinel; wait until the replica
        receives the stream and the Sentinel knows both and finds its quorum."""
        _register(self)
        self.master.start(timeout)
        self.replica.start(timeout)
        _wait_until(lambda: _link_up(self.replica), timeout, "%r: replication" % self,
                    logs=self.logs)
        self.sentinel.start(timeout)
        _wait_until(self._watched, timeout, "%r: the Sentinel" % self, self.sentinel.process,
                    self.logs)
        return self

    def _watched(self):
        if self.sentinel.master_address() != (HOST, self.master.port):
            return False
        replicas = [fields for fields in self.sentinel.replicas()
                    if int(fields["port"]) == self.replica.port]
        if not replicas or replicas[0]["flags"] != "slave" \
                or replicas[0]["master-link-status"] != "ok":
            return False
        return self.sentinel.command("SENTINEL", "ckquorum", self.master_name).startswith("OK")

    def current_master(self):
        """The RedisServer the Sentinel names as master now."""
        host, port = self.sentinel.master_address()
        for server in self.servers:
            if (host, port) == (HOST, server.port):
                return server
        raise BackendError("%r: the Sentinel names %s:%d, not one of ours" % (self, host, port))

    def command(self, *args, timeout=5.0):
        """One command on the master (as last seen)."""
        return self.master.command(*args, timeout=timeout)

    def cut_replica_off(self):
        """The replica stops receiving the master's writes (until restore_replica()):
        everything the master acknowledges from now on exists on the master alone."""
        _cut_off(self.master, self.replica, self.password)

    def restore_replica(self):
        """The replica's password is right again."""
        _reconnect(self.replica, self.password)

    def kill_master(self):
        """kill -9 the master."""
        self.master.kill()

    def wait_failover(self, timeout=30.0):
        """Wait until the Sentinel has switched to the replica as master (+switch-master:
        the failover is over) and the replica says it is one (ROLE); swaps `master` and
        `replica`; returns the new master."""
        def promoted():
            fields = self.sentinel.master_fields()
            return (int(fields["port"]) == self.replica.port and fields["flags"] == "master"
                    and self.sentinel.master_address() == (HOST, self.replica.port)
                    and self.replica.role() == "master")

        _wait_until(promoted, timeout, "%r: failover" % self, logs=self.logs)
        self.master, self.replica = self.replica, self.master
        return self.master

    def failover(self, timeout=30.0):
        """A manual failover (SENTINEL FAILOVER): the Sentinel promotes the replica while
        the master stays up. Waits as wait_failover() does and returns the new master. The
        old master (`replica` from then on) goes on being a master, with no replica, until
        the Sentinel demotes it by itself (+convert-to-slave, at its first INFO more than
        8 s after the switch: about 10 s later; wait_demoted())."""
        reply = self.sentinel.command("SENTINEL", "FAILOVER", self.master_name, timeout=2.0)
        if reply != "OK":
            raise BackendError("%r: SENTINEL FAILOVER answered %r" % (self, reply))
        return self.wait_failover(timeout)

    def wait_demoted(self, timeout=30.0):
        """After failover(): waits until the old master is a replica of the new one and
        receives its stream (a full resync, which drops the writes it took after the
        promotion)."""
        def demoted():
            info = _replication(self.replica)
            return (_info_field(info, "role") == "slave"
                    and _info_field(info, "master_port") == str(self.master.port)
                    and _info_field(info, "master_link_status") == "up")

        _wait_until(demoted, timeout, "%r: the old master demoted" % self, logs=self.logs)

    def revive_replica(self, timeout=START_TIMEOUT):
        """Start the replica (after a failover: the killed old master) again, as a replica
        of the master (replicaof), and wait until it receives the stream: a full resync
        that drops what it alone had. The Sentinel finds it again by itself."""
        self.replica.replica_of = self.master
        self.replica.start(timeout)
        _wait_until(lambda: _link_up(self.replica), timeout, "%r: revived replica" % self,
                    self.replica.process, self.logs)

    def logs(self, lines=40):
        return "\n".join("--- %r\n%s" % (server, server.logs(lines))
                         for server in self.servers + [self.sentinel])

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop the Sentinel first (no failover while the servers go), then the servers."""
        self.sentinel.stop(timeout)
        for server in self.servers:
            server.stop(timeout)

    def kill(self):
        for server in [self.sentinel] + self.servers:
            server.kill()

    def close(self):
        self.stop()
        for server in [self.sentinel] + self.servers:
            server.close()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _open_servers:
            _open_servers.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------
# MariaDB

def _unescape_batch(field):
    """Undo the escaping of `mariadb --batch` (\\n \\t \\\\ \\0)."""
    if "\\" not in field:
        return field
    out, index = [], 0
    while index < len(field):
        char = field[index]
        if char == "\\" and index + 1 < len(field):
            following = field[index + 1]
            out.append({"n": "\n", "t": "\t", "0": "\0", "\\": "\\"}.get(
                following, "\\" + following))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


class MariaDB:
    """A mariadbd on 127.0.0.1 with a fresh data directory, a database `seckill_test` and
    a user (random password) with all privileges on it and on every database made by
    create_database()."""

    def __init__(self, base_dir=None, database="seckill_test", user="seckill_test"):
        self.dir, self._owns_dir = _make_base_dir(base_dir, "sk-mariadb-")
        self.data_dir = os.path.join(self.dir, "data")
        self.tmp_dir = os.path.join(self.dir, "tmp")
        self.log_path = os.path.join(self.dir, "mariadb.err")
        self.socket = os.path.join(self.dir, "mysql.sock")
        self._socket_dir = None
        if len(self.socket) > 100:  # sun_path holds 108 bytes
            self._socket_dir = tempfile.mkdtemp(prefix="sk-my-")
            self.socket = os.path.join(self._socket_dir, "mysql.sock")
        self.database = database
        self.user = user
        self.password = secrets.token_hex(12)
        self.port = None
        self.process = None
        self._fresh = True
        self._provisioned = False

    def __repr__(self):
        return "MariaDB(port=%s, dir=%s)" % (self.port, self.dir)

    @property
    def url(self):
        return self.url_for(self.database)

    def url_for(self, database):
        return "mysql://%s:%s@%s:%d/%s" % (self.user, self.password, HOST, self.port,
                                           database)

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def running(self):
        return self.process is not None and self.process.poll() is None

    def _install(self):
        if os.path.isdir(os.path.join(self.data_dir, "mysql")):
            return
        os.makedirs(self.data_dir, exist_ok=True)
        argv = [MARIADB_INSTALL_DB, "--no-defaults", "--datadir=" + self.data_dir,
                "--auth-root-authentication-method=normal", "--skip-test-db",
                "--skip-name-resolve", "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=16M"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        install_log = os.path.join(self.dir, "install.log")
        with open(install_log, "wb") as log:
            result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.dir, timeout=120)
        if result.returncode != 0:
            raise BackendError("mariadb-install-db: status %d\n%s"
                               % (result.returncode, _tail(install_log)))

    def _argv(self):
        argv = [MARIADBD, "--no-defaults",
                "--datadir=" + self.data_dir, "--tmpdir=" + self.tmp_dir,
                "--port=%d" % self.port, "--bind-address=" + HOST,
                "--socket=" + self.socket, "--pid-file=" + os.path.join(self.dir, "mysql.pid"),
                "--log-error=" + self.log_path, "--skip-name-resolve",
                "--performance-schema=OFF", "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=16M",
                # The log reaches the OS at every commit: a killed mariadbd loses nothing;
                # only a power loss could, which tests do not simulate.
                "--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0",
                "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
                "--max-connections=1000", "--max-allowed-packet=64M"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        return argv

    def launch(self):
        """Install the data directory if needed and start mariadbd, without waiting."""
        if self.running():
            return
        os.makedirs(self.tmp_dir, exist_ok=True)
        self._install()
        if self.port is None:
            self.port = free_port()
        self.process = _spawn(self._argv(), os.path.join(self.dir, "stdout.log"), self.dir)
        _register(self)

    def _root(self, sql, database=None, timeout=30.0):
        argv = [MARIADB, "--no-defaults", "--socket=" + self.socket, "--user=root",
                "--batch", "--skip-column-names"]
        if database:
            argv.append("--database=" + database)
        return self._client(argv, sql, None, timeout)

    @staticmethod
    def _client(argv, sql, password, timeout):
        env = dict(os.environ)
        env.pop("MYSQL_PWD", None)
        if password is not None:
            env["MYSQL_PWD"] = password
        result = subprocess.run(argv, input=sql, capture_output=True, text=True,
                                env=env, timeout=timeout)
        if result.returncode != 0:
            raise BackendError("mariadb: status %d: %s" % (result.returncode,
                                                           result.stderr.strip()))
        return [[_unescape_batch(field) for field in line.split("\t")]
                for line in result.stdout.splitlines()]

    def wait_ready(self, timeout=START_TIMEOUT):
        _wait_until(lambda: self._root("SELECT 1", timeout=5.0) == [["1"]], timeout,
                    repr(self), self.process, self.logs)
        if not self._provisioned:
            self._root("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s';\n"
                       "CREATE DATABASE IF NOT EXISTS `%s`;\n"
                       "GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%';\n"
                       % (self.user, self.password, self.database, self.database,
                          self.user))
            self._provisioned = True
        # The test user over TCP: the path the service takes.
        _wait_until(lambda: self.query("SELECT 1") == [["1"]], timeout, repr(self),
                    self.process, self.logs)

    def start(self, timeout=START_TIMEOUT):
        """Start (again, on the same port with the same data) and wait until the test
        user can query over TCP."""
        for attempt in range(3):
            self.launch()
            try:
                self.wait_ready(timeout)
                self._fresh = False
                return self
            except BackendError:
                if not (self._fresh and attempt < 2 and self.process.poll() is not None
                        and _address_in_use(self.log_path)):
                    raise
                self.port = None
        return self

    def stop(self, timeout=10.0):
        """SIGTERM (a clean InnoDB shutdown), SIGKILL after `timeout`. Keeps data."""
        if self.process is not None:
            _stop_process(self.process, timeout)

    def kill(self):
        if self.process is not None:
            _kill_process(self.process)

    def restart(self, timeout=START_TIMEOUT):
        self.stop()
        return self.start(timeout)

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def close(self):
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        if self in _open_servers:
            _open_servers.remove(self)

    def logs(self, lines=40):
        """The end of mariadbd's stdout and of its error log."""
        return _logs(self.dir, ("stdout.log", "mariadb.err"), lines)

    def query(self, sql, database=None, timeout=30.0):
        """Run `sql` (one or more statements) as the test user over TCP, in `database`
        (default: seckill_test); returns the rows as lists of strings (NULL is "NULL")."""
        argv = [MARIADB, "--no-defaults", "--protocol=TCP", "--host=" + HOST,
                "--port=%d" % self.port, "--user=" + self.user, "--batch",
                "--skip-column-names", "--database=" + (database or self.database)]
        return self._client(argv, sql, self.password, timeout)

    def admin(self, sql, database=None, timeout=30.0):
        """Run `sql` as root over the Unix socket; rows as lists of strings."""
        return self._root(sql, database, timeout)

    def create_database(self, name=None):
        """A fresh, empty database (dropped first if it exists) the test user owns;
        returns its mysql:// URL. `name` defaults to a unique one."""
        name = name or "sk_test_" + secrets.token_hex(4)
        self._root("DROP DATABASE IF EXISTS `%s`;\nCREATE DATABASE `%s`;\n"
                   "GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%';\n"
                   % (name, name, name, self.user))
        return self.url_for(name)

    def drop_database(self, name):
        self._root("DROP DATABASE IF EXISTS `%s`;" % name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------
# The command: start DIR / stop DIR

def _proc_is_ours(pid, directory):
    """True when PID is a redis-server or mariadbd whose working directory is inside
    `directory` (both servers run in their data directory)."""
    try:
        with open("/proc/%d/comm" % pid) as comm:
            name = comm.read().strip()
        cwd = os.readlink("/proc/%d/cwd" % pid)
    except OSError:
        return False
    root = os.path.realpath(directory)
    cwd = cwd.removesuffix(" (deleted)")
    return name in SERVER_NAMES and (cwd == root or cwd.startswith(root + os.sep))


def _proc_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def stop_recorded(directory, timeout=STOP_TIMEOUT):
    """Stop the servers DIR/pids records, if they are still ours; returns their count."""
    pids_path = os.path.join(directory, "pids")
    try:
        with open(pids_path) as pids_file:
            pids = [int(line.split()[0]) for line in pids_file if line.strip()]
    except FileNotFoundError:
        return 0
    ours = [pid for pid in pids if _proc_is_ours(pid, directory)]
    for pid in ours:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(_proc_alive(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in ours:
        if _proc_alive(pid) and _proc_is_ours(pid, directory):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    while any(_proc_alive(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.unlink(pids_path)
    return len(ours)


STATE_ENTRIES = ("redis", "redis-replicas", "cluster", "mariadb", "env", "env.tmp", "pids")


def _remove_state(directory):
    for entry in STATE_ENTRIES:
        path = os.path.join(directory, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)


class _RedisWithReplicas:
    """The `start` command's standalone Redis and its replicas, started in that order."""

    def __init__(self, master, replicas):
        self.master, self.replicas = master, replicas

    def start(self):
        self.master.start()
        for replica in self.replicas:
            replica.start()
        _wait_until(lambda: all(_link_up(replica) for replica in self.replicas),
                    START_TIMEOUT, "replication of %r" % self.master, logs=self.logs)

    def stop(self):
        for server in self.replicas + [self.master]:
            server.stop()

    def logs(self):
        return "\n".join(server.logs() for server in [self.master] + self.replicas)


def command_start(directory, redis_replicas=0):
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    stop_recorded(directory)
    _remove_state(directory)

    pids_lock = threading.Lock()
    pids_path = os.path.join(directory, "pids")

    def record(pid, name):
        with pids_lock, open(pids_path, "a") as pids_file:
            pids_file.write("%d\n" % pid)

    spawn_listeners.append(record)
    redis = RedisServer(aof=True, base_dir=os.path.join(directory, "redis"))
    replicas = [RedisServer(aof=True, replica_of=redis,
                            base_dir=os.path.join(directory, "redis-replicas", str(index)))
                for index in range(redis_replicas)]
    cluster = RedisCluster(masters=3, base_dir=os.path.join(directory, "cluster"))
    mariadb = MariaDB(base_dir=os.path.join(directory, "mariadb"))
    servers = [mariadb, cluster, _RedisWithReplicas(redis, replicas)]
    errors = []

    def start(server):
        try:
            server.start()
        except Exception as error:
            errors.append(str(error))

    started = time.monotonic()
    threads = [threading.Thread(target=start, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spawn_listeners.remove(record)

    if errors:
        print("backends: start failed:\n" + "\n".join(errors), file=sys.stderr)
        for server in servers:
            print(server.logs(), file=sys.stderr)
        for server in servers:
            server.stop()
        _remove_state(directory)
        return 1

    env_text = ("SK_TEST_REDIS_URL=%s\nSK_TEST_REDIS_CLUSTER_URL=%s\nSK_TEST_MYSQL_URL=%s\n"
                % (redis.url, cluster.url, mariadb.url))
    if replicas:
        env_text += "SK_TEST_REDIS_REPLICA_URLS=%s\n" % ",".join(replica.url
                                                                  for replica in replicas)
    env_tmp = os.path.join(directory, "env.tmp")
    with open(env_tmp, "w") as env_file:
        os.fchmod(env_file.fileno(), 0o600)  # holds the database password
        env_file.write(env_text)
    os.rename(env_tmp, os.path.join(directory, "env"))
    # The servers outlive this command: `stop DIR` ends them.
    _open_servers.clear()
    print("backends: ready in %.1f s (%s)" % (time.monotonic() - started,
                                              os.path.join(directory, "env")))
    sys.stdout.write(env_text.replace(mariadb.password, "***"))
    return 0


def command_stop(directory):
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        return 0
    count = stop_recorded(directory)
    _remove_state(directory)
    try:
        os.rmdir(directory)
    except OSError:
        pass  # not empty: something else lives there too
    print("backends: stopped %d servers" % count)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("dir")
    parser.add_argument("--redis-replicas", type=int, default=0, metavar="N",
                        help="start: N replicas of the standalone Redis")
    args = parser.parse_args(argv)
    if args.action == "start":
        return command_start(args.dir, args.redis_replicas)
    return command_stop(args.dir)


if __name__ == "__main__":
    sys.exit(main())
