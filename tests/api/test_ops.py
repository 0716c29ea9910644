"""Operations (API.md "Operations", "Command line"): /healthz, /readyz, /metrics, the
command line, secrets, the data directory, signals."""

import json
import os
import re
import signal
import stat
import subprocess
import time

import pytest
import requests

from seckill_harness import (SECKILL_BIN, SECRET, Client, SocketReader, connect, describe,
                             expect_204, expect_json, jwt_sign,
                             free_port, jwt_decode, require_binary, strip_bearer, uniq)


def test_healthz(client):
    r = client.request("GET", "/healthz")
    expect_json(r, 200, body={"errMsg": "", "status": "ok"})


def test_readyz(client):
    r = client.request("GET", "/readyz")
    expect_json(r, 200, "")


def parse_metrics(text):
    """{family: type} and a list of (name, {label: value}, float value)."""
    types, samples = {}, []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
            continue
        if line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?', line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return types, samples


def status_total(types, samples, status):
    counters = {name for name, kind in types.items() if kind == "counter"}
    total = 0.0
    for name, labels, value in samples:
        family = name[:-6] if name.endswith("_total") and name not in counters else name
        if (name in counters or family in counters) and status in labels.values():
            total += value
    return total


def test_metrics(start_server):
    srv = start_server()
    client = Client(srv)
    r = client.request("GET", "/metrics")
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"), describe(r)
    assert "Content-Length" in r.headers or r.headers.get("Transfer-Encoding") == "chunked"
    types, samples = parse_metrics(r.text)
    assert "counter" in types.values(), r.text
    before_404 = status_total(types, samples, "404")
    before_201 = status_total(types, samples, "201")

    seller, stoken = client.new_user("saler")                       # 201 (+200 login)
    coupon = client.new_coupon(stoken, seller, amount=1)           # 201
    _, c1 = client.new_user("customer")
    _, c2 = client.new_user("customer")
    expect_json(client.grab(c1, seller, coupon), 201, "")
    expect_204(client.grab(c2, seller, coupon), "sold-out")
    for _ in range(5):
        client.request("GET", "/no/such/path")

    text = client.request("GET", "/metrics").text
    types, samples = parse_metrics(text)
    assert status_total(types, samples, "404") >= before_404 + 5, text
    assert status_total(types, samples, "201") >= before_201 + 5, text
    assert any(name.endswith("_bucket") and "le" in labels for name, labels, _ in samples), \
        "no latency histogram"
    assert re.search(r"sold[-_]?out", text), "no grab outcome sold-out in /metrics"
    assert any("route" in labels for _, labels, _ in samples), "requests not by route"
    names = " ".join(types)
    assert re.search(r"backlog|pending|queue", names), "no persistence backlog metric"
    assert re.search(r"error|fail", names), "no backend error metric"
    for secret in (SECRET, strip_bearer(stoken).split(".")[2], "123456"):
        assert secret not in text


def test_version_and_help():
    require_binary()
    out = subprocess.run([SECKILL_BIN, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out
    assert re.search(r"\d+\.\d+\.\d+", out.stdout + out.stderr), out
    out = subprocess.run([SECKILL_BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out
    text = out.stdout + out.stderr
    for option in ("--listen", "--data-dir", "--threads", "--jwt-secret", "--token-ttl",
                   "--redis", "--mysql", "--max-amount", "--max-body", "--log-level"):
        assert option in text, f"--help does not list {option}"


def run_briefly(args, env=None, timeout=10):
    """Runs the binary expecting it to exit by itself; kills it if it does not."""
    require_binary()
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen([SECKILL_BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=full_env, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, out
    return proc.returncode, out


def test_short_secret_refused(tmp_path):
    port = free_port()
    code, out = run_briefly(["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d1"),
                             "--jwt-secret", "s" * 31, "--pwhash-cost", "min"])
    assert code not in (None, 0), f"started with a 31-byte secret: {out}"
    assert "secret" in out.lower(), f"no clear message: {out!r}"
    assert "s" * 31 not in out, "the secret was printed"
    code, out = run_briefly(["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d2"),
                             "--pwhash-cost", "min"], env={"SECKILL_JWT_SECRET": "e" * 20})
    assert code not in (None, 0), f"started with a 20-byte secret from the environment: {out}"
    assert "secret" in out.lower(), f"no clear message: {out!r}"


def test_32_byte_secret_accepted(start_server):
    srv = start_server(options={"--jwt-secret": "k" * 32})
    client = Client(srv)
    name, token = client.new_user("saler")
    expect_204(client.list(token, name))


@pytest.mark.embedded_only
def test_options_from_environment(start_server, tmp_path):
    srv = start_server(start=False, options={"--data-dir": None, "--jwt-secret": None,
                                             "--max-amount": None},
                       env={"SECKILL_DATA_DIR": str(tmp_path / "envdata"),
                            "SECKILL_JWT_SECRET": "v" * 40,
                            "SECKILL_MAX_AMOUNT": "5"})
    srv.data_dir = tmp_path / "envdata"
    srv.start()
    client = Client(srv)
    name, token = client.new_user("saler")
    assert (tmp_path / "envdata" / "seckill.db").exists()
    expect_json(client.create_coupon(token, name, uniq("e"), amount=6), 400,
                body={"errMsg": "Amount field wrong format."})
    expect_json(client.create_coupon(token, name, uniq("e"), amount=5), 201, "")
    header, payload = jwt_decode(token)
    now = int(time.time())
    payload.update(iat=now, nbf=now, exp=now + 60)
    expect_json(client.list(jwt_sign(header, payload, secret="v" * 40), name), 200, "")


@pytest.mark.embedded_only
def test_generated_secret_and_private_data_dir(start_server, tmp_path):
    data_dir = tmp_path / "fresh" / "data"
    (tmp_path / "fresh").mkdir()
    srv = start_server(data_dir=data_dir, options={"--jwt-secret": None})
    mode = stat.S_IMODE(os.stat(data_dir).st_mode)
    assert mode == 0o700, f"data dir mode {oct(mode)}"
    client = Client(srv)
    name, token = client.new_user("saler")
    coupon = client.new_coupon(token, name)
    assert srv.stop() == 0
    others = [p for p in data_dir.iterdir()
              if p.is_file() and not p.name.startswith("seckill.db")]
    assert others, f"no generated secret file in {list(data_dir.iterdir())}"
    for path in others:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o600, f"{path.name} mode {oct(mode)}"
    assert SECRET not in "".join(p.read_text(errors="replace") for p in others)
    # the database holds password hashes: its files are private too, and so are the grant
    # logs (seckill.db-log/, whose records hold them as well)
    databases = [p for p in data_dir.iterdir() if p.name.startswith("seckill.db")]
    assert databases
    for path in databases:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path.name} mode {oct(mode)}"
        for inner in path.iterdir() if path.is_dir() else ():
            mode = stat.S_IMODE(os.stat(inner).st_mode)
            assert mode == 0o600, f"{path.name}/{inner.name} mode {oct(mode)}"
    # the generated secret is kept: a token of the first run is valid after a restart
    srv.start()
    assert [c["name"] for c in client.list_all(token, name)] == [coupon]
    # and it is long enough and not a constant: another data dir signs differently
    other = start_server(options={"--jwt-secret": None})
    expect_json(Client(other).list(token, name), 401, body={"errMsg": "Token is invalid."})


def test_sigterm_exits_zero(start_server):
    srv = start_server()
    client = Client(srv)
    client.new_user("customer")
    assert srv.stop() == 0, srv.logs()


def test_sigterm_finishes_a_request_in_flight(start_server, tmp_path):
    """A request half received when SIGTERM arrives is read to its end and answered."""
    srv = start_server(data_dir=tmp_path / "data")
    name = uniq("late")
    body = json.dumps({"username": name, "password": "pw", "kind": "customer"}).encode()
    sock = connect(srv)
    try:
        sock.sendall(b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.1)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        sock.sendall(body[10:])
        response = SocketReader(sock).read_response("POST")
        assert response.status == 201, response
    finally:
        sock.close()
    assert srv.proc.wait(10) == 0, srv.logs()
    srv.start()
    expect_json(Client(srv).login(name, "pw"), 200, "")


def test_sigint_exits_zero_and_keeps_grants(start_server, tmp_path):
    srv = start_server(data_dir=tmp_path / "data")
    client = Client(srv)
    seller, stoken = client.new_user("saler")
    coupon = client.new_coupon(stoken, seller, amount=2)
    cust, ctoken = client.new_user("customer")
    expect_json(client.grab(ctoken, seller, coupon), 201, "")
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(10) == 0, srv.logs()
    srv.start()
    assert [c["name"] for c in client.list_all(ctoken, cust)] == [coupon]
    assert client.list_all(stoken, seller)[0]["left"] == 1


@pytest.mark.embedded_only
def test_default_data_dir(start_server, tmp_path):
    """Without --data-dir the database is ./seckill-data/seckill.db."""
    srv = start_server(start=False, cwd=tmp_path, options={"--data-dir": None})
    srv.data_dir = tmp_path / "seckill-data"
    srv.start()
    client = Client(srv)
    name, _ = client.new_user("customer")
    assert (tmp_path / "seckill-data" / "seckill.db").exists()
    assert srv.query("select kind from users where username = ?", (name,)) == [
        {"kind": "customer"}]


def test_secrets_never_logged(start_server):
    secret = "Q" * 20 + "-very-secret-signing-key"
    srv = start_server(options={"--log-level": "debug", "--jwt-secret": secret})
    client = Client(srv)
    password = "Pa55-word-" + uniq("pw")
    seller = uniq("s")
    expect_json(client.register(seller, password, "saler"), 201, "")
    token = client.token(seller, password)
    coupon = client.new_coupon(token, seller, amount=1)
    cust = uniq("c")
    expect_json(client.register(cust, password, "customer"), 201, "")
    ctoken = client.token(cust, password)
    expect_json(client.grab(ctoken, seller, coupon), 201, "")
    client.login(cust, password + "-wrong")
    client.list(strip_bearer(ctoken) + "x", cust)
    client.request("POST", "/api/auth/logout", token=ctoken)
    metrics = client.request("GET", "/metrics").text
    assert srv.stop() == 0
    logs = srv.logs()
    for value in (secret, password, strip_bearer(token), strip_bearer(ctoken),
                  strip_bearer(ctoken).split(".")[2], password + "-wrong"):
        assert value not in logs, f"{value[:12]}... appears in the log"
        assert value not in metrics, f"{value[:12]}... appears in /metrics"


def test_serves_after_many_connections(client):
    """Connections opened and closed one after the other do not exhaust anything."""
    for _ in range(300):
        r = requests.get(client.server.url + "/healthz", timeout=5)
        assert r.status_code == 200


@pytest.mark.embedded_only
def test_sql_schema(server, client):
    """The tables and keys of API.md "Storage", which operators query with plain SQL."""
    expected = {
        "users": ({"id", "username", "kind", "password_hash", "created_at"}, [{"username"}]),
        "coupons": ({"id", "seller", "name", "amount", "remaining", "stock", "description",
                     "start_at", "end_at", "created_at"}, [{"seller", "name"}]),
        "grants": ({"id", "customer", "seller", "coupon", "granted_at"},
                   [{"customer", "seller", "coupon"}]),
        "revoked_tokens": ({"jti", "expires_at"}, [{"jti"}]),
    }
    for table, (columns, unique_keys) in expected.items():
        info = server.query(f"pragma table_info({table})")
        assert columns <= {row["name"] for row in info}, (table, info)
        uniques = []
        for index in server.query(f"pragma index_list({table})"):
            if index["unique"]:
                cols = server.query(f"pragma index_info('{index['name']}')")
                uniques.append({c["name"] for c in cols})
        uniques += [{row["name"]} for row in info if row["pk"] and
                    sum(1 for r in info if r["pk"]) == 1]
        for key in unique_keys:
            assert key in uniques, f"{table}: no unique key on {key} (have {uniques})"
