"""Black-box harness for the seckill service: start the real binary, speak HTTP to it.

Shared by tests/api and tests/stress (tests/stress/conftest.py puts this folder on
sys.path). Nothing here knows how the service is built inside: it starts
`$SECKILL_BIN` (default build/seckill at the repo root) on a free loopback port with a
temporary data directory, waits for GET /healthz, and stops it with SIGTERM.

Helpers:
- Server: one service process (start, stop, kill -9, restart on the same data dir, read
  its SQLite database read-only once the copy caught up with the grant logs, read its logs).
- Client: register / login / create coupon / grab / list, one requests.Session.
- expect_json / expect_204: assert status, exact errMsg and the response conventions of
  API.md (Content-Type, Content-Length, errMsg key, empty 204).
- JWT helpers to decode a token and forge one (the tests know the secret).
- raw_request / read_response: speak HTTP/1.x over a plain socket.

With SECKILL_DEPLOYMENT=distributed the same tests run against the distributed
deployment: every data directory a test names becomes its own Redis (AOF on, started
here) and its own MariaDB database (one MariaDB per session, tests/backends), so that a
restart "on the same data dir" finds the same state. A test that wants another Redis
(a Cluster, with replicas or not; a Sentinel group) makes the data directory's
Deployment first: `Deployment.for_dir(data_dir, sentinel=True)`. The `server` fixture is then a Fleet
of two instances on one deployment, and each request goes to a random one of them.
`query()` reads MariaDB after the persisters have caught up. Tests marked
`embedded_only` (SQLite files, the data directory) are skipped there.
"""

import atexit
import base64
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTED = os.environ.get("SECKILL_DEPLOYMENT") == "distributed"
SECKILL_BIN = os.environ.get("SECKILL_BIN") or str(REPO_ROOT / "build" / "seckill")
SECRET = "test-secret-0123456789-abcdefghijklmnopq"  # 40 bytes
assert len(SECRET) == 40
JSON_CT = "application/json; charset=utf-8"
TIMEOUT = 10  # seconds, for every HTTP call of the tests: a hang fails, it never blocks

_live_processes = []


def _kill_leftovers():
    for proc in _live_processes:
        if proc.poll() is None:
            proc.kill()


atexit.register(_kill_leftovers)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_counter = itertools.count()
_run_tag = uuid.uuid4().hex[:6]


def uniq(prefix="u"):
    """A name no other test of this run uses (short: names are limited to 64 bytes)."""
    return f"{prefix}_{_run_tag}{next(_counter)}"


def require_binary():
    if not os.path.isfile(SECKILL_BIN) or not os.access(SECKILL_BIN, os.X_OK):
        pytest.fail(f"seckill binary not found at {SECKILL_BIN} (set SECKILL_BIN or build it)",
                    pytrace=False)


class ServerDied(Exception):
    pass


# -- the distributed deployment's backends ----------------------------------------------


class Deployment:
    """One Redis and one MariaDB database: the shared state of a group of instances.
    The Redis is a standalone server (AOF on unless `aof=False`), or with `cluster=True`
    a three-master Cluster (`replicas=1`: with a replica per master, backends.RedisCluster),
    or with `sentinel=True` a master, its replica and a Sentinel
    (backends.RedisSentinelGroup; the instances get its redis-sentinel:// URL)."""

    _mariadb = None
    _by_dir = {}
    _count = itertools.count()

    def __init__(self, key, cluster=False, aof=True, sentinel=False, replicas=0):
        import backends  # tests/backends, put on sys.path below

        assert not (cluster and sentinel), "a Cluster or a Sentinel group, not both"
        assert cluster or not replicas, "replicas are for the Cluster (Sentinel has one)"
        Deployment.mariadb()
        self.cluster = cluster
        self.sentinel = sentinel
        if cluster:
            self.redis = backends.RedisCluster(masters=3, replicas=replicas, aof=aof).start()
        elif sentinel:
            self.redis = backends.RedisSentinelGroup(aof=aof).start()
        else:
            self.redis = backends.RedisServer(aof=aof).start()
        atexit.register(self.redis.close)
        self.database = f"sk_{_run_tag}_{next(Deployment._count)}"
        self.mysql_url = Deployment._mariadb.create_database(self.database)
        self.key = key

    @classmethod
    def mariadb(cls):
        """The session's MariaDB (started on first use)."""
        import backends

        if cls._mariadb is None:
            cls._mariadb = backends.MariaDB().start()
            atexit.register(cls._mariadb.close)
        return cls._mariadb

    @classmethod
    def for_dir(cls, data_dir, **kwargs):
        """The deployment of `data_dir`, made (with kwargs: cluster, aof, sentinel,
        replicas) on first use."""
        key = str(Path(data_dir).resolve())
        if key not in cls._by_dir:
            cls._by_dir[key] = cls(key, **kwargs)
        return cls._by_dir[key]

    @property
    def redis_url(self):
        return self.redis.url

    @property
    def redis_nodes(self):
        """Every Redis server of the deployment that is a master now (the Cluster's, the
        one the Sentinel names, or the one)."""
        if self.cluster:
            return self.redis.masters()
        if self.sentinel:
            return [self.redis.current_master()]
        return [self.redis]

    def settle(self, timeout=25.0):
        """Waits until every grant in the Redis streams has reached SQL (the persisters
        delete what they have written). The default covers an instance that stopped with
        grants pending on its consumer (read while SQL was down): another persister claims
        them once they were idle CLAIM_IDLE_MS (10 s, store_redis.c) and it looks every
        2 s, so up to 12 s after that instance's last read, plus a MariaDB restart."""
        deadline = time.monotonic() + timeout
        while True:
            pending = 0
            for node in self.redis_nodes:
                for key in node.command("KEYS", "sk:{*}:g") or []:
                    pending += int(node.command("XLEN", key))
            if pending == 0 or time.monotonic() > deadline:
                return pending
            time.sleep(0.05)

    def query(self, sql, args=()):
        """Rows as dicts (numbers as int) from this deployment's database; `?` placeholders
        as in sqlite3."""
        self.settle()
        parts = sql.split("?")
        assert len(parts) == len(args) + 1, "one argument per ?"
        text = parts[0]
        for arg, part in zip(args, parts[1:]):
            if isinstance(arg, (int, float)):
                text += str(arg)
            else:
                text += "'" + str(arg).replace("\\", "\\\\").replace("'", "''") + "'"
            text += part
        db = Deployment._mariadb
        argv = ["mariadb", "--no-defaults", "--protocol=tcp", "-h", "127.0.0.1",
                "-P", str(db.port), "-u", db.user, "--batch", self.database]
        env = dict(os.environ, MYSQL_PWD=db.password)
        out = subprocess.run(argv, input=text, capture_output=True, text=True, env=env,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        if not lines:
            return []
        names = lines[0].split("\t")
        rows = []
        for line in lines[1:]:
            values = []
            for field in line.split("\t"):
                if field == "NULL":
                    values.append(None)
                elif field.lstrip("-").isdigit():
                    values.append(int(field))
                else:
                    values.append(field.replace("\\t", "\t").replace("\\n", "\n")
                                  .replace("\\\\", "\\"))
            rows.append(dict(zip(names, values)))
        return rows


if DISTRIBUTED:
    import sys as _sys

    _sys.path.insert(0, str(REPO_ROOT / "tests" / "backends"))


class Server:
    """One seckill process. Options are a dict so a test can override or drop a default."""

    def __init__(self, data_dir, log_dir, options=None, env=None, secret=SECRET, cwd=None):
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.options = {
            "--data-dir": str(self.data_dir),
            "--jwt-secret": secret,
            "--pwhash-cost": "min",
            "--threads": "2",
            "--log-level": "warn",
        }
        self.deployment = None
        if DISTRIBUTED:
            self.deployment = Deployment.for_dir(self.data_dir)
            self.options["--redis"] = self.deployment.redis_url
            self.options["--mysql"] = self.deployment.mysql_url
        for key, value in (options or {}).items():
            if value is None:
                self.options.pop(key, None)
            else:
                self.options[key] = str(value)
        self.secret = self.options.get("--jwt-secret")
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.port = None
        self.runs = 0
        self.log_paths = []

    # -- lifecycle --------------------------------------------------------------------

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self):
        return self.data_dir / "seckill.db"

    def command(self):
        cmd = [SECKILL_BIN, "--listen", f"127.0.0.1:{self.port}"]
        for key, value in self.options.items():
            cmd += [key, value]
        return cmd

    def start(self, timeout=10.0):
        require_binary()
        last_error = None
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            log_path = self.spawn()
            try:
                self._wait_healthy(timeout, log_path)
                return self
            except ServerDied as exc:
                last_error = exc
                if "address" not in str(exc).lower():
                    break
        pytest.fail(str(last_error), pytrace=False)

    def spawn(self, prefix=()):
        """Starts the process on self.port (behind a wrapper command such as unshare when
        `prefix` names one) without waiting for it to serve. Returns its log's path."""
        self.runs += 1
        log_path = self.log_dir / f"server-{self.port}-{self.runs}.log"
        self.log_paths.append(log_path)
        env = dict(os.environ)
        env.update(self.env or {})
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(list(prefix) + self.command(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=self.cwd)
        _live_processes.append(self.proc)
        return log_path

    def _wait_healthy(self, timeout, log_path):
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ServerDied(f"seckill exited with status {code} at start:\n"
                                 f"command: {' '.join(self.command())}\n{read_text(log_path)}")
            try:
                # The distributed deployment is ready once its backends and hot state are.
                r = requests.get(self.url + ("/readyz" if DISTRIBUTED else "/healthz"),
                                 timeout=1)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise ServerDied(f"seckill did not answer GET /healthz 200 within {timeout}s:\n"
                                 f"{read_text(log_path)}")
            time.sleep(0.05)

    def stop(self, timeout=10.0):
        """SIGTERM, wait; SIGKILL as a fallback. Returns the exit status (None if killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.dump_threads()
            self.proc.kill()
            self.proc.wait()
            return None

    def dump_threads(self):
        """Prints what every thread of a server that did not stop in time is doing (gdb's
        backtraces) and the end of its log, so that an intermittent hang explains itself."""
        print(f"\n==== seckill pid {self.proc.pid} did not exit: its threads ====", flush=True)
        try:
            out = subprocess.run(["gdb", "-batch", "-nx", "-p", str(self.proc.pid),
                                  "-ex", "thread apply all bt"],
                                 capture_output=True, text=True, timeout=60)
            print(out.stdout[-60000:], out.stderr[-4000:], sep="\n", flush=True)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"gdb failed: {exc}", flush=True)
        print(f"==== its log ====\n{self.logs()[-8000:]}\n==== end ====", flush=True)

    def kill(self):
        """kill -9 and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def restart(self, timeout=10.0):
        self.stop()
        return self.start(timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def logs(self):
        return "".join(read_text(p) for p in self.log_paths)

    # -- database -----------------------------------------------------------------------

    def settle(self, timeout=10.0):
        """Embedded: waits until the SQLite copy holds every change the grant logs hold
        (the applier runs behind the workers; /metrics' seckill_journal_backlog counts what
        it has still to apply, and counts a change before the change is answered). Returns
        the backlog left: 0, or what remained after `timeout`. A stopped server has none."""
        deadline = time.monotonic() + timeout
        while self.alive():
            try:
                text = requests.get(self.url + "/metrics", timeout=TIMEOUT).text
            except requests.RequestException:
                return None
            match = re.search(r"^seckill_journal_backlog (\d+)$", text, re.M)
            backlog = int(match.group(1)) if match else 0
            if backlog == 0 or time.monotonic() > deadline:
                return backlog
            time.sleep(0.02)
        return 0

    def query(self, sql, args=()):
        if self.deployment is not None:
            return self.deployment.query(sql, args)
        self.settle()
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, args).fetchall()]
        finally:
            conn.close()

    def grants(self):
        """Every grants row as (customer name, seller name, coupon name), whether the table
        stores names or ids."""
        users = {row["id"]: row["username"] for row in self.query("select id, username from users")}
        coupons = {row["id"]: (row["seller"], row["name"])
                   for row in self.query("select id, seller, name from coupons")}
        out = []
        for row in self.query("select customer, seller, coupon from grants"):
            customer, seller, coupon = row["customer"], row["seller"], row["coupon"]
            if isinstance(coupon, int) and coupon in coupons:
                cseller, coupon = coupons[coupon]
                if isinstance(seller, int) or seller is None:
                    seller = cseller
            if isinstance(customer, int):
                customer = users.get(customer, customer)
            if isinstance(seller, int):
                seller = users.get(seller, seller)
            out.append((customer, seller, coupon))
        return out

    def coupon_rows(self):
        """coupons rows keyed by (seller name, coupon name)."""
        users = {row["id"]: row["username"] for row in self.query("select id, username from users")}
        out = {}
        for row in self.query("select * from coupons"):
            seller = row["seller"]
            if isinstance(seller, int):
                seller = users.get(seller, seller)
            out[(seller, row["name"])] = row
        return out


def read_text(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


# -- fixtures (imported by both conftest.py files) ----------------------------------------


def stop_checked(srv):
    """Teardown: SIGTERM must end a running server with status 0 (API.md "Command line")."""
    if not srv.alive():
        return
    code = srv.stop()
    if code != 0:
        pytest.fail(f"seckill exited with status {code} on SIGTERM (None: still running after "
                    f"10 s, killed)\n{srv.logs()[-3000:]}", pytrace=False)


class Fleet:
    """Instances of one distributed deployment; each request goes to a random one (`url`).
    Everything else reads like a Server (the first instance's process and port)."""

    def __init__(self, servers):
        self.servers = servers
        self.first = servers[0]

    @property
    def url(self):
        return random.choice(self.servers).url

    def __getattr__(self, name):
        return getattr(self.first, name)


def start_fleet(start_server, count=2, **kwargs):
    """In the distributed runs, `count` instances on one deployment (a Fleet: requests go
    to a random one); in the embedded runs, the one server."""
    first = start_server(**kwargs)
    if not DISTRIBUTED:
        return first
    kwargs["data_dir"] = first.data_dir
    return Fleet([first] + [start_server(**kwargs) for _ in range(count - 1)])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server per test module, default options; in the distributed runs, two instances
    on one deployment."""
    base = tmp_path_factory.mktemp("seckill")
    srv = Server(base / "data", base / "logs").start()
    if not DISTRIBUTED:
        yield srv
        stop_checked(srv)
        return
    second = Server(base / "data", base / "logs2").start()
    yield Fleet([srv, second])
    stop_checked(second)
    stop_checked(srv)


@pytest.fixture(scope="module")
def client(server):
    return Client(server)


@pytest.fixture
def start_server(tmp_path_factory):
    """Factory: start_server(options={...}, data_dir=None, env=None, cwd=None) -> Server.
    Every server it started is stopped at the end of the test."""
    started = []

    def factory(options=None, data_dir=None, env=None, secret=SECRET, start=True, cwd=None):
        base = tmp_path_factory.mktemp("seckill")
        srv = Server(data_dir or (base / "data"), base / "logs", options=options, env=env,
                     secret=secret, cwd=cwd)
        started.append(srv)
        return srv.start() if start else srv

    yield factory
    failures = []
    for srv in started:
        try:
            stop_checked(srv)
        except pytest.fail.Exception as exc:
            failures.append(str(exc))
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


# -- HTTP client ---------------------------------------------------------------------------


_MISSING = object()


def seg(text):
    """One percent-encoded path segment. "." and ".." are encoded as %2E so that they are
    names, not dot segments."""
    if text in (".", ".."):
        return "%2E" * len(text)
    return quote(text, safe="")


def _has_dot_segment(path):
    segments = path.split("?", 1)[0].split("/")
    return any(s.upper() in (".", "..", "%2E", "%2E%2E", ".%2E", "%2E.") for s in segments)


def _verbatim_request(url, method, path, data, headers, timeout):
    """One request with the path sent byte for byte (requests/urllib3 would decode %2E and
    resolve dot segments), returned as a requests.Response."""
    import http.client
    from requests.structures import CaseInsensitiveDict

    host, port = url.split("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        body = data.encode() if isinstance(data, str) else data
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        raw = conn.getresponse()
        response = requests.Response()
        response.status_code = raw.status
        response.headers = CaseInsensitiveDict(raw.getheaders())
        response._content = raw.read()
        response.url = url + path
        response.request = requests.Request(method, url + path, headers=headers,
                                            data=body).prepare()
        # Not through requests.Session.send: checked against the OpenAPI document here.
        import openapi_check
        openapi_check.observe(response.request, response)
        return response
    finally:
        conn.close()


class Client:
    def __init__(self, server, session=None):
        self.server = server
        self.session = session or requests.Session()

    def request(self, method, path, token=None, json_body=_MISSING, data=None, headers=None,
                params=None, timeout=TIMEOUT):
        all_headers = {}
        if token is not None:
            all_headers["Authorization"] = token
        if json_body is not _MISSING:
            data = json.dumps(json_body)
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        if _has_dot_segment(path) and params is None:
            return _verbatim_request(self.server.url, method, path, data, all_headers, timeout)
        return self.session.request(method, self.server.url + path, data=data,
                                    headers=all_headers, params=params, timeout=timeout)

    def register(self, username, password="123456", kind="customer"):
        return self.request("POST", "/api/users",
                            json_body={"username": username, "password": password, "kind": kind})

    def login(self, username, password="123456"):
        return self.request("POST", "/api/auth",
                            json_body={"username": username, "password": password})

    def token(self, username, password="123456"):
        r = self.login(username, password)
        assert r.status_code == 200, describe(r)
        token = r.headers.get("Authorization")
        assert token, describe(r)
        return token

    def new_user(self, kind="customer", prefix=None, password="123456"):
        """Registers a fresh user and logs in: returns (name, token)."""
        name = uniq(prefix or ("c" if kind == "customer" else "s"))
        r = self.register(name, password, kind)
        assert r.status_code == 201, describe(r)
        return name, self.token(name, password)

    def create_coupon(self, token, seller, name, amount=20, stock=10, description="desc",
                      **extra):
        body = {"name": name, "amount": amount, "description": description, "stock": stock}
        body.update(extra)
        return self.request("POST", f"/api/users/{seg(seller)}/coupons", token=token,
                            json_body=body)

    def new_coupon(self, token, seller, name=None, **kwargs):
        name = name or uniq("cp")
        r = self.create_coupon(token, seller, name, **kwargs)
        assert r.status_code == 201, describe(r)
        return name

    def grab(self, token, seller, name):
        return self.request("PATCH", f"/api/users/{seg(seller)}/coupons/{seg(name)}", token=token)

    def list(self, token, user, page=None, query=None):
        path = f"/api/users/{seg(user)}/coupons"
        if query is not None:
            path += "?" + query
        elif page is not None:
            path += f"?page={page}"
        return self.request("GET", path, token=token)

    def list_all(self, token, user, max_pages=1000):
        """Every page until the empty one; asserts the page statuses."""
        items = []
        for page in range(1, max_pages):
            r = self.list(token, user, page=page)
            if r.status_code == 204:
                assert r.content == b"", describe(r)
                return items
            data = expect_json(r, 200, "")
            assert 1 <= len(data["data"]) <= 20, describe(r)
            items += data["data"]
        raise AssertionError("too many pages")


# -- assertions ----------------------------------------------------------------------------


def describe(r):
    """The request and the response, for assertion messages and bug reports."""
    req = r.request
    body = req.body
    if isinstance(body, str):
        body = body.encode()
    if body is not None and len(body) > 300:
        body = body[:300] + b"...(%d bytes)" % len(req.body)
    headers = {k: v for k, v in req.headers.items()
               if k.lower() in ("authorization", "content-type", "content-length")}
    if "Authorization" in headers and len(headers["Authorization"]) > 24:
        headers["Authorization"] = headers["Authorization"][:24] + "..."
    content = r.content
    if len(content) > 500:
        content = content[:500] + b"..."
    return (f"\n  request:  {req.method} {req.url} {headers} body={body!r}"
            f"\n  response: {r.status_code} {dict(r.headers)} {content!r}")


def expect_json(r, status, errMsg=None, body=None):
    """Asserts a JSON answer by API.md's conventions; returns the decoded body."""
    assert r.status_code == status, f"expected {status}" + describe(r)
    assert r.headers.get("Content-Type") == JSON_CT, "Content-Type" + describe(r)
    assert "Content-Length" in r.headers, "no Content-Length" + describe(r)
    assert int(r.headers["Content-Length"]) == len(r.content), describe(r)
    try:
        data = r.json()
    except ValueError:
        raise AssertionError("body is not JSON" + describe(r))
    assert isinstance(data, dict) and "errMsg" in data, "no errMsg key" + describe(r)
    if errMsg is not None:
        assert data["errMsg"] == errMsg, f"expected errMsg {errMsg!r}" + describe(r)
    if body is not None:
        assert data == body, f"expected body {body!r}" + describe(r)
    return data


def expect_204(r, reason=None):
    assert r.status_code == 204, "expected 204" + describe(r)
    assert r.content == b"", describe(r)
    assert "Content-Type" not in r.headers, "204 with a Content-Type" + describe(r)
    if reason is not None:
        assert r.headers.get("X-Seckill-Reason") == reason, \
            f"expected X-Seckill-Reason {reason}" + describe(r)


# -- JWT -----------------------------------------------------------------------------------


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def strip_bearer(token):
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    return token


def jwt_decode(token):
    """(header, payload) of a compact JWT, without checking anything."""
    parts = strip_bearer(token).split(".")
    assert len(parts) == 3, f"not a compact JWT: {token!r}"
    return json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))


def jwt_sign(header, payload, secret=SECRET, alg="HS256"):
    head = b64url(json.dumps(header, separators=(",", ":")))
    body = b64url(json.dumps(payload, separators=(",", ":")))
    signing_input = f"{head}.{body}".encode()
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode() if isinstance(secret, str) else secret, signing_input,
                   digest).digest()
    return f"{head}.{body}.{b64url(sig)}"


# -- raw sockets ---------------------------------------------------------------------------


def connect(server, timeout=5.0):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return sock


class RawResponse:
    def __init__(self, version, status, reason, headers, body):
        self.version, self.status, self.reason = version, status, reason
        self.headers = headers  # list of (name lower-cased, value)
        self.body = body

    def header(self, name):
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.version} {self.status} {self.headers} {self.body[:300]!r}>"


class SocketReader:
    """Reads HTTP/1.x responses off a socket, one after the other."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def _read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method="GET"):
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        status = int(status)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        hdict = dict(headers)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in hdict.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")
                    break
                body += self._read_exact(size)
                self._read_exact(2)
        elif "content-length" in hdict:
            body = self._read_exact(int(hdict["content-length"]))
        else:
            while True:
                try:
                    self._fill()
                except EOFError:
                    break
            body, self.buf = self.buf, b""
        return RawResponse(version, status, reason[0] if reason else "", headers, body)

    def closed_by_peer(self, timeout=3.0):
        """True when the peer closes the connection (EOF or reset) within `timeout` with
        nothing more to read."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def http_request(method, path, body=None, headers=None, version="HTTP/1.1", host="127.0.0.1"):
    """The bytes of one request."""
    lines = [f"{method} {path} {version}", f"Host: {host}"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body is not None:
        if isinstance(body, str):
            body = body.encode()
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


# -- load helpers --------------------------------------------------------------------------


def parallel(server, fn, items, threads=32):
    """fn(client, item) for every item on a pool of threads, one Client (and Session) per
    thread; returns the results in order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()

    def run(item):
        if not hasattr(local, "client"):
            local.client = Client(server, requests.Session())
        return fn(local.client, item)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, items))


def make_users(server, names, kind, password="123456", threads=32):
    """Registers every name (asserting 201) and returns {name: token}."""
    def register(client, name):
        r = client.register(name, password, kind)
        assert r.status_code == 201, describe(r)
        return name, client.token(name, password)

    return dict(parallel(server, register, names, threads))


# -- pytest hooks (re-exported by both conftest.py files) --------------------------------


def pytest_configure(config):
    config.addinivalue_line("markers", "embedded_only: checks SQLite files or the data "
                                       "directory; skipped against the distributed deployment")


def pytest_collection_modifyitems(config, items):
    if not DISTRIBUTED:
        return
    skip = pytest.mark.skip(reason="embedded deployment only (SQLite, data directory)")
    for item in items:
        if "embedded_only" in item.keywords:
            item.add_marker(skip)
