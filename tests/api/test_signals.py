"""Signals (API.md "Command line"): SIGTERM or SIGINT end the service promptly with exit 0
at any moment, start-up included, also as process 1; SIGHUP is logged and ignored.

The start/stop loop is how issue 14's intermittent failure was found: a thread started
before the signal mask was set took SIGTERM's default action (the process died with -15).
SECKILL_SIGNAL_ROUNDS sets how many starts and stops it makes (hundreds to hunt a flake);
every round prints its SIGTERM-to-exit time, and the worst must stay under STOP_BOUND_S.
"""

import os
import signal
import statistics
import subprocess
import time

import pytest
import requests

from seckill_harness import DISTRIBUTED, Client, Server, expect_json, free_port, uniq

ROUNDS = int(os.environ.get("SECKILL_SIGNAL_ROUNDS", "8"))
# README "Signals": every thread observes a stop within 2 s; a sanitized build is slower.
STOP_BOUND_S = 6.0 if os.environ.get("SECKILL_SANITIZED") else 3.0


def sigterm_and_time(srv, sig=signal.SIGTERM):
    start = time.monotonic()
    srv.proc.send_signal(sig)
    try:
        code = srv.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.dump_threads()
        srv.proc.kill()
        srv.proc.wait()
        code = None
    return code, time.monotonic() - start


def test_stop_loop_exits_zero_within_bound(tmp_path):
    """Start, do a little work (the threads are all busy or blocked somewhere), stop;
    again and again on the same data directory (distributed: the same deployment)."""
    srv = Server(tmp_path / "data", tmp_path / "logs")
    times = []
    failures = []
    for round_number in range(ROUNDS):
        srv.start()
        client = Client(srv)
        name, token = client.new_user("saler")
        if round_number % 2:
            # Half the rounds stop at once after the work, half after a pause in which
            # every background thread has settled into its blocking wait.
            time.sleep(0.3)
        code, seconds = sigterm_and_time(srv, signal.SIGINT if round_number % 4 == 3
                                         else signal.SIGTERM)
        times.append(seconds)
        if code != 0 or seconds > STOP_BOUND_S:
            failures.append(f"round {round_number}: status {code} after {seconds:.2f} s\n"
                            f"{srv.logs()[-2000:]}")
            break
    times.sort()
    print(f"\nSIGTERM to exit over {len(times)} stops: median {statistics.median(times):.3f} s, "
          f"p90 {times[int(len(times) * 0.9)]:.3f} s, max {times[-1]:.3f} s")
    assert not failures, "\n".join(failures)


def test_sighup_is_logged_and_ignored(start_server):
    srv = start_server()
    client = Client(srv)
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert srv.alive(), "SIGHUP ended the service\n" + srv.logs()[-2000:]
    name, token = client.new_user("saler")
    expect_json(client.request("GET", "/healthz"), 200)
    deadline = time.monotonic() + 5
    while "SIGHUP" not in srv.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "SIGHUP" in srv.logs(), "SIGHUP was not logged:\n" + srv.logs()[-2000:]


def _spawn(srv, prefix=()):
    """Starts `srv` (optionally behind a wrapper such as unshare) without waiting for it to
    serve; returns the Popen."""
    srv.port = srv.port or free_port()
    srv.spawn(prefix)
    return srv.proc


def _wait_for_log(srv, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in srv.logs():
            return True
        if srv.proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def _fill_database(srv, customers=150_000, coupons=10):
    """Makes the embedded database hold customers x coupons grants (written with SQLite
    directly: the service's own schema, made by one start and stop), so that loading it
    at start takes a while."""
    import sqlite3

    srv.start()
    assert srv.stop() == 0
    conn = sqlite3.connect(srv.db_path)
    with conn:
        conn.executemany("INSERT INTO users (id, username, kind, password_hash, created_at) "
                         "VALUES (?, ?, 'customer', 'x', 0)",
                         ((i, f"c{i}") for i in range(1, customers + 1)))
        conn.execute("INSERT INTO users (id, username, kind, password_hash, created_at) "
                     "VALUES (?, 'shop', 'saler', 'x', 0)", (customers + 1,))
        conn.executemany("INSERT INTO coupons (id, seller, name, amount, remaining, stock, "
                         "description, created_at) VALUES (?, 'shop', ?, ?, 0, 1, '', 0)",
                         ((k, f"k{k}", customers) for k in range(1, coupons + 1)))
        conn.executemany("INSERT INTO grants (id, customer, seller, coupon, granted_at) "
                         "VALUES (?, ?, 'shop', ?, 0)",
                         ((k * customers + i, f"c{i}", f"k{k}")
                          for k in range(1, coupons + 1) for i in range(1, customers + 1)))
    conn.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_start_up_exits_zero(tmp_path, sig):
    """A stop that arrives while the store is still starting (embedded: loading 1.5M
    grants; distributed: waiting for backends that are not there) ends the process with
    0, promptly, without serving first."""
    options = {"--log-level": "info"}
    if not DISTRIBUTED:
        _fill_database(Server(tmp_path / "data", tmp_path / "fill"))
    if DISTRIBUTED:
        # Nothing listens on these ports: the store waits for its backends at start.
        dead = free_port()
        options["--redis"] = f"redis://127.0.0.1:{dead}/0"
        options["--mysql"] = f"mysql://seckill:pw@127.0.0.1:{dead}/seckill"
    srv = Server(tmp_path / "data", tmp_path / "logs", options=options)
    proc = _spawn(srv)
    try:
        # The signal mask is in place before the first thread starts; the first log line
        # comes after that.
        assert _wait_for_log(srv, "starting"), srv.logs()
        code, seconds = sigterm_and_time(srv, sig)
        assert code == 0, f"status {code} on a stop during start-up\n{srv.logs()}"
        assert seconds < STOP_BOUND_S, f"{seconds:.2f} s to stop during start-up"
        assert "stopped during start-up" in srv.logs(), srv.logs()
        assert "serving on" not in srv.logs(), srv.logs()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("when,sig", [("start-up", signal.SIGTERM), ("serving", signal.SIGTERM),
                                      ("serving", signal.SIGINT), ("serving", signal.SIGHUP)])
def test_signals_as_process_1(tmp_path, when, sig):
    """As PID 1 (a container's init) the kernel drops signals that have no handler: the
    service must still stop on SIGTERM or SIGINT with 0, and still ignore SIGHUP."""
    if subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                      capture_output=True).returncode != 0:
        pytest.skip("unshare --pid is not permitted here")
    srv = Server(tmp_path / "data", tmp_path / "logs", options={"--log-level": "info"})
    srv.port = free_port()
    # --kill-child: unshare passes no signal on, so it is sent to the service by its
    # PID outside the namespace (the child of unshare).
    # --mount-proc: a /proc of its own namespace, as in a container (LeakSanitizer reads it).
    proc = _spawn(srv, prefix=["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"])
    try:
        child = None
        deadline = time.monotonic() + 10
        while child is None and time.monotonic() < deadline:
            try:
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as children:
                    pids = children.read().split()
                child = int(pids[0]) if pids else None
            except OSError:
                pass
            time.sleep(0.01)
        assert child is not None, "unshare started no child"
        with open(f"/proc/{child}/status") as status:
            nspid = [line for line in status if line.startswith("NSpid:")][0].split()
        assert nspid[-1] == "1", f"the service is not process 1 in its namespace: {nspid}"
        if when == "serving":
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    if requests.get(srv.url + "/healthz", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.05)
            else:
                pytest.fail("never served:\n" + srv.logs())
        else:
            assert _wait_for_log(srv, "starting"), srv.logs()
        if sig == signal.SIGHUP:
            os.kill(child, signal.SIGHUP)
            time.sleep(0.3)
            assert proc.poll() is None, "SIGHUP ended process 1\n" + srv.logs()
            assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200
            assert _wait_for_log(srv, "SIGHUP"), srv.logs()
        start = time.monotonic()
        os.kill(child, signal.SIGINT if sig == signal.SIGINT else signal.SIGTERM)
        code = proc.wait(timeout=10)
        seconds = time.monotonic() - start
        assert code == 0, f"unshare reported status {code} for the service\n{srv.logs()}"
        assert seconds < STOP_BOUND_S
        if when == "serving":
            assert "stopped cleanly" in srv.logs(), srv.logs()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_under_grab_load_answers_what_it_received(start_server):
    """A stop while grabs are in flight: every answered 201 is kept (the crash tests cover
    this in depth; here only that the stop is prompt and clean under load)."""
    srv = start_server()
    client = Client(srv)
    seller, seller_token = client.new_user("saler")
    coupon = uniq("c")
    expect_json(client.create_coupon(seller_token, seller, coupon, amount=100000), 201)
    import threading

    stop = threading.Event()

    def grabber():
        session = Client(srv)
        _, token = session.new_user("customer")
        while not stop.is_set():
            try:
                session.grab(token, seller, coupon)
            except requests.RequestException:
                return

    threads = [threading.Thread(target=grabber) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    code, seconds = sigterm_and_time(srv)
    stop.set()
    for thread in threads:
        thread.join()
    assert code == 0, srv.logs()[-2000:]
    assert seconds < STOP_BOUND_S, f"{seconds:.2f} s"


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_ready_and_stopping(tmp_path, abstract):
    """Under systemd's Type=notify: READY=1 once it serves, STOPPING=1 when it drains."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"@seckill-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name[1:])
    else:
        name = str(tmp_path / "notify.sock")
        sock.bind(name)
    sock.settimeout(15)
    srv = Server(tmp_path / "data", tmp_path / "logs", env={"NOTIFY_SOCKET": name})
    try:
        srv.start()
        ready = sock.recv(4096).decode()
        assert "READY=1" in ready.split("\n"), ready
        # It says READY only once it serves.
        expect_json(Client(srv).request("GET", "/healthz"), 200)
        srv.proc.send_signal(signal.SIGTERM)
        stopping = sock.recv(4096).decode()
        assert "STOPPING=1" in stopping.split("\n"), stopping
        assert srv.proc.wait(timeout=10) == 0
    finally:
        sock.close()
        srv.kill()
