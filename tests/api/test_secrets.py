"""Secrets never on the command line (API.md "Command line"): the values of --jwt-secret and
the passwords of --redis / --mysql URLs are masked in /proc/PID/cmdline once parsed, and
--jwt-secret-file / --redis-file / --mysql-file (and their SECKILL_*_FILE variables) read
them from private files instead: mode 0600 accepted, anything group or others may touch
refused, the trailing newline dropped, a file twin together with its option refused.

The masking tests read the running process's /proc/PID/cmdline, which is what `ps` shows
other users. The Redis password is checked against a Redis that requires it (distributed
runs) and against unreachable backends, where the process waits and can be looked at (every
run)."""

import os
import secrets
import signal
import subprocess
import time

import pytest

from seckill_harness import (DISTRIBUTED, SECKILL_BIN, SECRET, Client, free_port,
                             require_binary)


def cmdline(pid):
    """The argument list of a live process, as `ps` reads it."""
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        return [arg.decode() for arg in file.read().split(b"\0")[:-1]]


def value_after(args, flag):
    return args[args.index(flag) + 1]


def secret_file(directory, name, content, mode=0o600):
    """A file holding `content` (str or bytes) with exactly `mode`."""
    path = directory / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    os.chmod(path, mode)
    return path


def refused(tmp_path, *args, env=None):
    """Runs seckill with `args`, expecting it to refuse them at start: returns stderr."""
    require_binary()
    full_env = {key: value for key, value in os.environ.items()
                if not key.startswith("SECKILL_") or key in ("SECKILL_BIN",
                                                             "SECKILL_DEPLOYMENT")}
    full_env.update(env or {})
    result = subprocess.run([SECKILL_BIN, "--listen", f"127.0.0.1:{free_port()}", "--data-dir",
                             str(tmp_path / "data"), "--pwhash-cost", "min"] + list(args),
                            capture_output=True, text=True, timeout=10, env=full_env,
                            stdin=subprocess.DEVNULL)
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stderr


def assert_works(srv):
    """Registration, login and a protected route: the secret the server kept is usable."""
    client = Client(srv)
    name, token = client.new_user("customer")
    r = client.list(token, name)
    assert r.status_code == 204, r.text  # a new customer holds nothing: an empty page


# -- masking in /proc/PID/cmdline -------------------------------------------------------


def test_jwt_secret_masked_in_cmdline(start_server):
    srv = start_server()  # the harness passes --jwt-secret SECRET (and the URLs) as flags
    args = cmdline(srv.proc.pid)
    joined = " ".join(args)
    assert SECRET not in joined
    assert value_after(args, "--jwt-secret") == "*" * len(SECRET)
    # Everything else is untouched.
    assert value_after(args, "--listen") == f"127.0.0.1:{srv.port}"
    assert value_after(args, "--data-dir") == str(srv.data_dir)
    assert value_after(args, "--pwhash-cost") == "min"
    # `ps` reads the same.
    ps = subprocess.run(["ps", "-o", "args=", "-p", str(srv.proc.pid)], capture_output=True,
                        text=True, timeout=10).stdout
    assert "--jwt-secret " + "*" * len(SECRET) in ps and SECRET not in ps
    assert_works(srv)


@pytest.mark.skipif(not DISTRIBUTED, reason="needs the distributed deployment's MariaDB")
def test_mysql_password_masked_in_cmdline(start_server):
    srv = start_server()
    url = srv.deployment.mysql_url
    user_part, host_part = url.rsplit("@", 1)
    scheme_user, password = user_part.rsplit(":", 1)
    assert len(password) >= 8
    args = cmdline(srv.proc.pid)
    assert password not in " ".join(args)
    assert value_after(args, "--mysql") == f"{scheme_user}:{'*' * len(password)}@{host_part}"
    assert_works(srv)  # the server connected with the copy it kept


@pytest.mark.skipif(not DISTRIBUTED, reason="needs the distributed deployment's Redis")
def test_redis_password_masked_and_used(start_server):
    srv = start_server(start=False)
    redis = srv.deployment.redis
    password = secrets.token_hex(12)
    redis.command("CONFIG", "SET", "requirepass", password)
    url = f"redis://:{password}@127.0.0.1:{redis.port}/0"
    srv.options["--redis"] = url
    srv.start()  # ready only once it authenticated to Redis
    args = cmdline(srv.proc.pid)
    assert password not in " ".join(args)
    masked = "*" * len(password)
    assert value_after(args, "--redis") == f"redis://:{masked}@127.0.0.1:{redis.port}/0"
    assert_works(srv)


def test_url_passwords_masked_while_waiting_for_backends(tmp_path):
    """Backends that do not answer keep the process waiting at start: long enough to look
    at its argument list, whatever the deployment the tests run against."""
    require_binary()
    redis_password = "redis-" + secrets.token_hex(8)
    mysql_password = "mysql-" + secrets.token_hex(8)
    redis_port, mysql_port = free_port(), free_port()
    argv = [SECKILL_BIN, "--listen", f"127.0.0.1:{free_port()}", "--log-level", "error",
            f"--jwt-secret={SECRET}",
            "--redis", f"redis://user:{redis_password}@127.0.0.1:{redis_port}/0",
            f"--mysql=mysql://seckill:{mysql_password}@127.0.0.1:{mysql_port}/seckill"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        expected = [
            SECKILL_BIN, "--listen", argv[2], "--log-level", "error",
            "--jwt-secret=" + "*" * len(SECRET),
            "--redis", f"redis://user:{'*' * len(redis_password)}@127.0.0.1:{redis_port}/0",
            f"--mysql=mysql://seckill:{'*' * len(mysql_password)}@127.0.0.1:{mysql_port}/seckill",
        ]
        deadline = time.monotonic() + 10
        args = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, "seckill exited instead of waiting for its backends"
            args = cmdline(proc.pid)
            if args == expected:
                break
            time.sleep(0.02)
        assert args == expected
        # A zombie's cmdline is empty: it was read from the live process.
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


# -- the file forms -----------------------------------------------------------------------


def test_files_accepted_and_nothing_secret_in_cmdline(start_server, tmp_path):
    secret_path = secret_file(tmp_path, "jwt-secret", SECRET + "\n")
    options = {"--jwt-secret": None, "--jwt-secret-file": secret_path}
    srv = start_server(options=options, start=False)
    if DISTRIBUTED:
        srv.options.pop("--redis")
        srv.options.pop("--mysql")
        srv.options["--redis-file"] = str(secret_file(tmp_path, "redis-url",
                                                      srv.deployment.redis_url + "\r\n"))
        srv.options["--mysql-file"] = str(secret_file(tmp_path, "mysql-url",
                                                      srv.deployment.mysql_url + "\n"))
    srv.start()
    args = cmdline(srv.proc.pid)
    assert value_after(args, "--jwt-secret-file") == str(secret_path)
    assert "--jwt-secret" not in args and "--redis" not in args and "--mysql" not in args
    assert not any("*" in arg for arg in args)
    if DISTRIBUTED:
        assert srv.deployment.mysql_url not in " ".join(args)
    assert_works(srv)


def test_env_file_form(start_server, tmp_path):
    secret_path = secret_file(tmp_path, "jwt-secret", SECRET + "\n", mode=0o400)
    srv = start_server(options={"--jwt-secret": None},
                       env={"SECKILL_JWT_SECRET_FILE": str(secret_path)})
    assert "--jwt-secret" not in cmdline(srv.proc.pid)
    assert_works(srv)


def test_trailing_newline_stripped(start_server, tmp_path):
    """A token issued with the secret read from "S\\r\\n" is valid with --jwt-secret S, and
    invalid with another secret: the file's value is S exactly."""
    secret = "file-" + secrets.token_hex(20)
    secret_path = secret_file(tmp_path, "jwt-secret", secret + "\r\n")
    srv = start_server(options={"--jwt-secret": None, "--jwt-secret-file": secret_path})
    client = Client(srv)
    name, token = client.new_user("customer")
    assert client.list(token, name).status_code == 204

    srv.stop()
    del srv.options["--jwt-secret-file"]
    srv.options["--jwt-secret"] = secret
    srv.start()
    r = client.list(token, name)
    assert r.status_code == 204, r.text  # a new customer holds nothing: an empty page

    # The check can fail: another secret refuses the same token.
    srv.stop()
    srv.options["--jwt-secret"] = secret + "x"
    srv.start()
    assert client.list(token, name).status_code == 401


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_loose_mode_refused(tmp_path, mode):
    path = secret_file(tmp_path, "jwt-secret", SECRET + "\n", mode=mode)
    stderr = refused(tmp_path, "--jwt-secret-file", str(path))
    assert str(path) in stderr and "mode %04o" % mode in stderr, stderr
    assert SECRET not in stderr
    # The same through the environment, naming the variable.
    stderr = refused(tmp_path, env={"SECKILL_JWT_SECRET_FILE": str(path)})
    assert "SECKILL_JWT_SECRET_FILE" in stderr and "mode %04o" % mode in stderr, stderr
    # And for the URL files.
    url_path = secret_file(tmp_path, "mysql-url", "mysql://u:pw-QZX@127.0.0.1:1/db\n", mode=mode)
    stderr = refused(tmp_path, "--redis", "redis://127.0.0.1:1/0", "--mysql-file", str(url_path))
    assert "--mysql-file" in stderr and "mode %04o" % mode in stderr, stderr
    assert "QZX" not in stderr


def test_mode_0600_accepted_0640_refused_same_content(tmp_path, start_server):
    path = secret_file(tmp_path, "jwt-secret", SECRET + "\n", mode=0o640)
    refused(tmp_path, "--jwt-secret-file", str(path))
    os.chmod(path, 0o600)
    srv = start_server(options={"--jwt-secret": None, "--jwt-secret-file": path})
    assert_works(srv)


def test_flag_and_file_together_refused(tmp_path):
    path = secret_file(tmp_path, "jwt-secret", SECRET + "\n")
    stderr = refused(tmp_path, "--jwt-secret", SECRET, "--jwt-secret-file", str(path))
    assert "not both" in stderr and SECRET not in stderr, stderr
    stderr = refused(tmp_path, env={"SECKILL_JWT_SECRET": SECRET,
                                    "SECKILL_JWT_SECRET_FILE": str(path)})
    assert "both set" in stderr and SECRET not in stderr, stderr


def test_bad_files_refused(tmp_path):
    missing = tmp_path / "missing"
    stderr = refused(tmp_path, "--jwt-secret-file", str(missing))
    assert str(missing) in stderr and "No such file" in stderr, stderr
    empty = secret_file(tmp_path, "empty", "\n")
    assert "is empty" in refused(tmp_path, "--jwt-secret-file", str(empty))
    two_lines = secret_file(tmp_path, "two", SECRET + "\n" + SECRET + "\n")
    stderr = refused(tmp_path, "--jwt-secret-file", str(two_lines))
    assert "more than one line" in stderr and SECRET not in stderr
    # A short secret from a file meets the same rule as one from the flag.
    short = secret_file(tmp_path, "short", "x" * 31 + "\n")
    assert "at least 32 bytes" in refused(tmp_path, "--jwt-secret-file", str(short))
