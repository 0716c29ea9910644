"""What an operator watches (README "Operations"): log lines under the systemd journal
(the `<N>` priority prefix when stderr is the stream JOURNAL_STREAM names), repeated
warnings counted instead of written, and the /metrics series of the process, the build and
the connections, read with a strict parser of the Prometheus text format 0.0.4."""

import math
import os
import re
import resource
import subprocess
import time

import pytest

from seckill_harness import (DISTRIBUTED, SECKILL_BIN, SocketReader, _live_processes, connect,
                             free_port, http_request)

LINE = re.compile(r"(<(\d)>)?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) "
                  r"[a-z_]+: .*")
PRIORITY = {"error": "3", "warn": "4", "info": "6", "debug": "7"}


def spawn(srv, log_path, env=None, nofile=None, wait=True):
    """Starts `srv` with stdout and stderr on `log_path` (made by the caller, so that its
    inode is known before the start) and `env` on top of ours without JOURNAL_STREAM;
    `nofile`: (soft, hard) RLIMIT_NOFILE for the child."""
    srv.port = free_port()
    child_env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    child_env.update(env or {})

    def limit():
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    with open(log_path, "ab") as log:
        srv.proc = subprocess.Popen(srv.command(), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=child_env, preexec_fn=limit)
    _live_processes.append(srv.proc)
    srv.log_paths.append(log_path)
    if wait:
        srv._wait_healthy(10.0, log_path)
    return srv


def journal_stream_of(path):
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def log_lines(path):
    return [line for line in path.read_text(errors="replace").split("\n") if line]


def run_and_stop(start_server, tmp_path, env_for_log):
    """A server whose fd limit makes it warn (--max-connections above it) and log at info,
    stopped with SIGTERM: its log lines."""
    srv = start_server(options={"--log-level": "info", "--max-connections": "5000"},
                       start=False)
    log_path = tmp_path / "server.log"
    log_path.touch()
    spawn(srv, log_path, env=env_for_log(log_path), nofile=(1024, 1024))
    assert srv.stop() == 0, srv.logs()[-3000:]
    lines = log_lines(log_path)
    assert any(" warn http: --max-connections 5000 exceeds" in line for line in lines), lines
    assert any(" info " in line for line in lines), lines
    return lines


def test_journal_lines_carry_priority(start_server, tmp_path):
    lines = run_and_stop(start_server, tmp_path,
                         lambda log_path: {"JOURNAL_STREAM": journal_stream_of(log_path)})
    for line in lines:
        m = LINE.fullmatch(line)
        assert m and m.group(1), f"not a journal line with a priority: {line!r}"
        assert m.group(2) == PRIORITY[m.group(3)], line


def test_plain_lines_without_journal(start_server, tmp_path):
    lines = run_and_stop(start_server, tmp_path, lambda log_path: {})
    for line in lines:
        m = LINE.fullmatch(line)
        assert m and not m.group(1), f"not a plain log line: {line!r}"


def test_journal_stream_of_another_file_is_not_ours(start_server, tmp_path):
    """JOURNAL_STREAM inherited from a parent whose stderr was the journal, with ours
    redirected to a file: no prefix."""
    other = tmp_path / "other"
    other.touch()
    lines = run_and_stop(start_server, tmp_path,
                         lambda log_path: {"JOURNAL_STREAM": journal_stream_of(other)})
    for line in lines:
        m = LINE.fullmatch(line)
        assert m and not m.group(1), f"not a plain log line: {line!r}"


@pytest.mark.skipif(DISTRIBUTED, reason="uses no deployment: the embedded run covers it")
def test_repeated_warnings_counted(start_server, tmp_path):
    """Backends that refuse connections: the service retries every 200 ms and would log
    about 15 lines a second. Over 11 s, each warning is written at the start and again once
    its 10 s window has passed, the second time after a line counting the ones between."""
    dead_redis, dead_sql = free_port(), free_port()
    srv = start_server(options={"--redis": f"redis://127.0.0.1:{dead_redis}",
                                "--mysql": f"mysql://u:p@127.0.0.1:{dead_sql}/db",
                                }, start=False)
    log_path = tmp_path / "server.log"
    spawn(srv, log_path, wait=False)
    time.sleep(11)
    assert srv.alive(), read_log(log_path)
    srv.kill()  # counts pending at exit would be written at exit: keep to the windows
    text = read_log(log_path)
    refused = f"warn redis: connect to 127.0.0.1:{dead_redis} failed: Connection refused"
    written = [line for line in text.splitlines() if line.endswith(refused)]
    counts = [re.search(r"\(repeated (\d+) times in the last (\d+) s\)$", line)
              for line in text.splitlines() if refused + " (repeated" in line]
    assert len(written) == 2, text
    assert len(counts) == 1 and counts[0], text
    assert int(counts[0].group(1)) >= 20, text  # 5 a second at least, for 10 s
    assert counts[0].group(2) == "10", text
    # Every other line is written at most twice in 11 s, with at most one count.
    lines = text.splitlines()
    assert len(lines) <= 12, text
    for line in lines:
        message = re.sub(r"^\S+ ", "", line)
        message = re.sub(r" \(repeated \d+ times? in the last \d+ s\)$", "", message)
        assert sum(1 for other in lines if other.endswith(message)) <= 2, text


def read_log(path):
    return path.read_text(errors="replace")


# -- /metrics --------------------------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"((?:[^"\\\n]|\\[\\"n])*)"'
_LABEL = rf"{LABEL_NAME}={LABEL_VALUE.replace('(', '(?:', 1)}"
SAMPLE = re.compile(rf"({NAME})(?:\{{((?:{_LABEL}(?:,{_LABEL})*,?)?)\}})? (\S+)( -?\d+)?")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_value(text):
    """A Go ParseFloat value, as Prometheus reads it."""
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    assert re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text), f"bad value {text!r}"
    return float(text)


def parse_exposition(text):
    """Strictly parses Prometheus text format 0.0.4: every line a HELP, a TYPE or a sample;
    each family's TYPE before its samples, HELP and TYPE at most once, its samples in one
    group, no series twice, histograms complete and cumulative. Returns
    {family: {"type", "help", "samples": [(name, labels, value)]}}."""
    assert text.endswith("\n"), "the text must end with a newline"
    families, seen, finished = {}, set(), set()
    current = None
    for line in text[:-1].split("\n"):
        assert line, "empty line"
        if line.startswith("#"):
            m = re.fullmatch(rf"# (HELP|TYPE) ({NAME}) (.*)", line)
            assert m, f"not a HELP or TYPE line: {line!r}"
            kind, name, rest = m.groups()
            family = families.setdefault(name, {"type": None, "help": None, "samples": []})
            assert name not in finished and not family["samples"], \
                f"{kind} for {name} after its samples: {line!r}"
            key = kind.lower()
            assert family[key] is None, f"second {kind} for {name}"
            if kind == "TYPE":
                assert rest in TYPES, line
            else:
                assert re.fullmatch(r"(?:[^\\]|\\[\\n])*", rest), f"bad escape in {line!r}"
            family[key] = rest
            if current is not None and current != name:
                finished.add(current)
            current = name
            continue
        m = SAMPLE.fullmatch(line)
        assert m, f"not a sample line: {line!r}"
        name, label_text, value_text, _ = m.groups()
        labels = {}
        for label, value in re.findall(rf"({LABEL_NAME})={LABEL_VALUE}", label_text or ""):
            assert label not in labels, f"label {label} twice: {line!r}"
            labels[label] = value
        family_name = name
        if name not in families:
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and families.get(name[:-len(suffix)], {}).get(
                        "type") in ("histogram", "summary"):
                    family_name = name[:-len(suffix)]
        family = families.get(family_name)
        assert family is not None and family["type"] is not None, \
            f"sample before (or without) a TYPE line: {line!r}"
        assert family_name not in finished, f"samples of {family_name} not in one group"
        if current is not None and current != family_name:
            finished.add(current)
        current = family_name
        series = (name, tuple(sorted(labels.items())))
        assert series not in seen, f"series twice: {line!r}"
        seen.add(series)
        value = parse_value(value_text)
        if family["type"] == "counter":
            assert name == family_name and value >= 0, line
        if family["type"] == "histogram" and name.endswith("_bucket"):
            assert "le" in labels, line
        family["samples"].append((name, labels, value))
    for name, family in families.items():
        assert family["type"] is not None, f"HELP without TYPE: {name}"
        if family["type"] == "histogram":
            check_histogram(name, family["samples"])
    return families


def check_histogram(name, samples):
    groups = {}
    for sample, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        group = groups[rest]
        if sample == name + "_bucket":
            group["buckets"].append((parse_value(labels["le"]), value))
        elif sample == name + "_sum":
            group["sum"] = value
        elif sample == name + "_count":
            group["count"] = value
        else:
            raise AssertionError(f"{sample} in histogram {name}")
    for rest, group in groups.items():
        bounds = [b for b, _ in group["buckets"]]
        counts = [c for _, c in group["buckets"]]
        assert bounds == sorted(bounds) and bounds and bounds[-1] == math.inf, (name, rest)
        assert counts == sorted(counts), f"{name}{rest}: buckets not cumulative"
        assert group["sum"] is not None and group["count"] == counts[-1], (name, rest)


def value_of(families, name, **labels):
    family = families[name]
    found = [v for n, l, v in family["samples"] if n == name and l == labels]
    assert len(found) == 1, (name, labels, family["samples"])
    return found[0]


def metrics_over(sock_reader, sock):
    """GET /metrics on a connection the test holds (keep-alive)."""
    sock.sendall(http_request("GET", "/metrics"))
    r = sock_reader.read_response()
    assert r.status == 200, r
    assert r.header("content-type").startswith("text/plain; version=0.0.4"), r
    return parse_exposition(r.body.decode())


def test_parser_is_strict():
    good = ("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\n"
            "h_count 2\n")
    assert value_of(parse_exposition(good), "a_total", x="1") == 2
    bad = [
        good[:-1],                                           # no final newline
        good.replace("# TYPE a_total counter\n", ""),        # sample without TYPE
        good + "a_total{x=\"1\"} 3\n",                       # series twice, not grouped
        good.replace("2\n# TYPE h", "2\n\n# TYPE h"),        # empty line
        good.replace("a_total{x=\"1\"} 2", "a_total{x=1} 2"),  # unquoted label value
        good.replace("a_total{x=\"1\"} 2", "a_total 2 3 4"),  # junk
        good.replace("h_count 2", "h_count 3"),              # +Inf bucket != count
        good.replace("le=\"1\"} 1", "le=\"1\"} 5"),           # not cumulative
        good.replace("counter", "countr"),
        good.replace("{x=\"1\"}", "{x=\"1\"y=\"2\"}"),         # no comma between labels
        good.replace("{x=\"1\"}", "{x=\"1\",x=\"2\"}"),        # label twice
        good + "# TYPE a_total counter\n",                   # TYPE twice
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            parse_exposition(text)


def test_build_and_process_metrics(start_server):
    before = time.time()
    srv = start_server()
    version = subprocess.run([SECKILL_BIN, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[-1]
    sock = connect(srv)
    reader = SocketReader(sock)
    families = metrics_over(reader, sock)
    pid = srv.proc.pid

    deployment = "distributed" if DISTRIBUTED else "embedded"
    assert families["seckill_build_info"]["type"] == "gauge"
    assert value_of(families, "seckill_build_info", version=version,
                    deployment=deployment) == 1

    types = {"process_cpu_seconds_total": "counter", "process_resident_memory_bytes": "gauge",
             "process_virtual_memory_bytes": "gauge", "process_open_fds": "gauge",
             "process_max_fds": "gauge", "process_start_time_seconds": "gauge"}
    for name, kind in types.items():
        assert families[name]["type"] == kind, name
        assert families[name]["help"], name
    cpu = value_of(families, "process_cpu_seconds_total")
    rss = value_of(families, "process_resident_memory_bytes")
    fds = value_of(families, "process_open_fds")
    start = value_of(families, "process_start_time_seconds")
    assert 0 <= cpu < 60
    assert 1 << 20 < rss <= value_of(families, "process_virtual_memory_bytes")
    with open(f"/proc/{pid}/status") as status:
        vm_rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS"))
    assert 0.5 * vm_rss < rss < 2 * vm_rss, (rss, vm_rss)
    actual_fds = len(os.listdir(f"/proc/{pid}/fd"))
    assert 0 < fds and abs(fds - actual_fds) <= 4, (fds, actual_fds)
    with open(f"/proc/{pid}/limits") as limits:
        soft = next(line.split()[3] for line in limits if line.startswith("Max open files"))
    assert value_of(families, "process_max_fds") == int(soft)
    # btime has a resolution of one second.
    assert before - 1.5 <= start <= time.time() + 0.5, (before, start)

    # CPU time only grows.
    for _ in range(20):
        metrics_over(reader, sock)
    assert value_of(metrics_over(reader, sock), "process_cpu_seconds_total") >= cpu
    sock.close()


def hold_connection(srv):
    """A keep-alive connection the server has accepted (one request answered on it);
    returns (socket, reader, refusals seen first: slots still held by connections closing
    on the server's side)."""
    refusals = 0
    for _ in range(100):
        sock = connect(srv)
        reader = SocketReader(sock)
        sock.sendall(http_request("GET", "/healthz"))
        r = reader.read_response()
        if r.status == 200:
            return sock, reader, refusals
        assert r.status == 503 and r.json()["errMsg"] == "Too many connections.", r
        sock.close()
        refusals += 1
        time.sleep(0.05)
    raise AssertionError("the server kept refusing connections")


def test_connection_metrics(start_server):
    srv = start_server(options={"--max-connections": "2"})
    first, first_reader, refusals_a = hold_connection(srv)
    second, _, refusals_b = hold_connection(srv)
    families = metrics_over(first_reader, first)
    assert families["seckill_connections_open"]["type"] == "gauge"
    assert families["seckill_connections_refused_total"]["type"] == "counter"
    assert value_of(families, "seckill_connections_open") == 2
    assert value_of(families, "seckill_connections_max") == 2
    refused = value_of(families, "seckill_connections_refused_total")
    assert refused == refusals_a + refusals_b

    for _ in range(3):
        with connect(srv) as extra:
            reader = SocketReader(extra)
            extra.sendall(http_request("GET", "/healthz"))
            r = reader.read_response()
            assert r.status == 503 and r.json()["errMsg"] == "Too many connections.", r
    families = metrics_over(first_reader, first)
    assert value_of(families, "seckill_connections_refused_total") == refused + 3
    assert value_of(families, "seckill_connections_open") == 2

    second.close()
    deadline = time.monotonic() + 5
    while value_of(metrics_over(first_reader, first), "seckill_connections_open") != 1:
        assert time.monotonic() < deadline, "a closed connection still counted as open"
        time.sleep(0.05)
    first.close()
