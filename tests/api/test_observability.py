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
