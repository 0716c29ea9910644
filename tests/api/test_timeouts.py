"""Slow and idle clients (issue: "idle and slow-client timeouts").

A request's head and body must arrive within --idle-timeout; a client that trickles bytes
(slowloris) or sits idle on a keep-alive connection is disconnected, and meanwhile other
clients are answered as usual.
"""

import socket
import time

import pytest


def _connect(server):
    host, port = server.url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _closed_within(sock, seconds):
    """True when the peer closes the connection within `seconds` (reads until EOF)."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
        if data == b"":
            return True
    return False


@pytest.fixture
def quick_server(start_server):
    return start_server(options={"--idle-timeout": "1"})


def test_slowloris_head_is_cut_off(quick_server):
    from seckill_harness import Client

    sock = _connect(quick_server)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
    started = time.monotonic()
    closed = False
    for byte in request:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        # Meanwhile an honest client is served at once.
        if byte == ord("X"):
            t0 = time.monotonic()
            r = Client(quick_server).request("GET", "/healthz")
            assert r.status_code == 200
            assert time.monotonic() - t0 < 0.5
        time.sleep(0.1)
        if time.monotonic() - started > 4:
            break
    closed = closed or _closed_within(sock, 2)
    sock.close()
    assert closed, "a client trickling its request head was never disconnected"
    assert time.monotonic() - started < 5


def test_slow_body_is_cut_off(quick_server):
    sock = _connect(quick_server)
    sock.sendall(b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"user")
    assert _closed_within(sock, 3), "a client that never finished its body was not disconnected"
    sock.close()


def test_idle_keep_alive_connection_is_closed(quick_server):
    sock = _connect(quick_server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(2)
    first = sock.recv(4096)
    assert first.startswith(b"HTTP/1.1 200"), first
    assert _closed_within(sock, 3), "an idle keep-alive connection was kept past the timeout"
    sock.close()
