"""The deploy/ folder: the compose file is valid and describes two seckill instances, a
Redis with AOF, a MariaDB and a load balancer on 20080; the Dockerfile builds from Debian
packages only; the systemd unit has its key settings and passes systemd-analyze verify.
No Docker engine is needed."""

import json
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
COMPOSE_FILE = os.path.join(DEPLOY, "docker-compose.yml")
SECRET = "0123456789abcdef0123456789abcdef-test"
MYSQL_PASSWORD = "0badc0ffee"


def read(name):
    with open(os.path.join(DEPLOY, name)) as file:
        return file.read()


def compose_config(env_overrides, *extra):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SECKILL_", "COMPOSE_", "DOCKER_"))}
    env.update(env_overrides)
    # --project-directory elsewhere: a developer's deploy/.env must not change the result.
    return subprocess.run(["docker-compose", "-f", COMPOSE_FILE, "--project-directory",
                           DEPLOY, "config"] + list(extra),
                          capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)


@pytest.fixture(scope="module")
def compose():
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    result = compose_config({"SECKILL_JWT_SECRET": SECRET,
                             "SECKILL_MYSQL_PASSWORD": MYSQL_PASSWORD})
    assert result.returncode == 0, result.stderr
    # `config` prints YAML (compose v1 has no JSON output); PyYAML is sure to be there
    # for the Python that runs docker-compose, whatever runs this test.
    return parse_yaml(result.stdout)


def parse_yaml(text):
    python = shebang_python(shutil.which("docker-compose"))
    result = subprocess.run(
        [python, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def shebang_python(script):
    with open(script) as file:
        first = file.readline()
    return first[2:].strip().split()[0] if first.startswith("#!") else "python3"


def port_pairs(service):
    """(published, target) of each port mapping, short or long syntax."""
    pairs = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            pairs.add((str(port["published"]), str(port["target"])))
        else:
            parts = str(port).split("/")[0].split(":")
            pairs.add((parts[-2], parts[-1]))
    return pairs


def test_compose_two_seckill_instances(compose):
    services = compose["services"]
    seckills = sorted(name for name in services if name.startswith("seckill"))
    assert seckills == ["seckill1", "seckill2"]
    for name in seckills:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert os.path.samefile(service["build"]["context"], ROOT)
        env = service["environment"]
        assert env["SECKILL_REDIS"] == "redis://redis:6379/0"
        assert env["SECKILL_MYSQL"] == "mysql://seckill:%s@mysql:3306/seckill" % MYSQL_PASSWORD
        assert env["SECKILL_JWT_SECRET"] == SECRET
        assert env["SECKILL_LISTEN"] == "0.0.0.0:20080"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["depends_on"]["mysql"]["condition"] == "service_healthy"
    assert (services["seckill1"]["environment"]["SECKILL_JWT_SECRET"]
            == services["seckill2"]["environment"]["SECKILL_JWT_SECRET"])


def test_compose_redis_with_aof(compose):
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    command = command if isinstance(command, list) else command.split()
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] in ("everysec", "always")
    assert ("6379", "6379") in port_pairs(redis)
    assert any(volume.endswith(":/data:rw") or volume.endswith(":/data")
               for volume in redis["volumes"])


def test_compose_mysql(compose):
    mysql = compose["services"]["mysql"]
    assert mysql["image"].split(":")[0] in ("mysql", "mariadb")
    assert ("23306", "3306") in port_pairs(mysql)
    env = mysql["environment"]
    assert env.get("MARIADB_DATABASE", env.get("MYSQL_DATABASE")) == "seckill"
    assert env.get("MARIADB_PASSWORD", env.get("MYSQL_PASSWORD")) == MYSQL_PASSWORD
    assert "healthcheck" in mysql


def test_compose_load_balancer_on_20080(compose):
    lb = compose["services"]["lb"]
    assert lb["image"].startswith("nginx")
    assert ("20080", "20080") in port_pairs(lb)
    assert set(lb["depends_on"]) == {"seckill1", "seckill2"}
    nginx = read("nginx.conf")
    upstream = re.search(r"upstream\s+seckill\s*\{(.*?)\}", nginx, re.S).group(1)
    assert re.findall(r"server\s+(\S+?):20080", upstream) == ["seckill1", "seckill2"]
    assert re.search(r"listen\s+20080;", nginx)
    assert "proxy_pass http://seckill;" in nginx


def test_compose_refuses_a_missing_secret():
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed")
    result = compose_config({"SECKILL_MYSQL_PASSWORD": MYSQL_PASSWORD})
    assert result.returncode != 0
    assert "SECKILL_JWT_SECRET" in result.stderr


def dockerfile_instructions():
    text = read("Dockerfile").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_dockerfile_debian_packages_only():
    instructions = dockerfile_instructions()
    bases = [line.split()[1] for line in instructions if line.upper().startswith("FROM ")]
    assert bases and all(base == "debian:12" for base in bases)
    runs = " ".join(line for line in instructions if line.upper().startswith("RUN "))
    for forbidden in ("curl", "wget", "pip", "git clone", "ADD http"):
        assert forbidden not in runs
    assert not any(line.upper().startswith("ADD ") for line in instructions)
    for package in ("libh2o-evloop-dev", "libhiredis-dev", "libmariadb-dev", "libsodium-dev",
                    "libjansson-dev", "libsqlite3-dev", "libssl-dev"):
        assert package in runs
    assert "cmake --preset release" in runs and "cmake --build --preset release" in runs


def test_dockerfile_runtime_stage():
    instructions = dockerfile_instructions()
    last_from = max(index for index, line in enumerate(instructions)
                    if line.upper().startswith("FROM "))
    runtime = instructions[last_from:]
    runtime_text = " ".join(runtime)
    assert "-dev" not in runtime_text  # only the shared libraries
    for package in ("libh2o-evloop0.13", "libsodium23", "libsqlite3-0", "libjansson4",
                    "libhiredis0.14", "libmariadb3", "libssl3"):
        assert package in runtime_text
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.upper() == "EXPOSE 20080" for line in runtime)
    assert any(line.upper().startswith("HEALTHCHECK ") and "/healthz" in line
               for line in runtime)
    assert any(line.startswith("ENTRYPOINT") and "seckill" in line for line in runtime)


def unit_settings():
    settings = {}
    for line in read("seckill.service").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_unit_key_lines():
    settings = unit_settings()
    expected = {
        "Type": "simple", "User": "seckill", "EnvironmentFile": "/etc/seckill/seckill.env",
        "ExecStart": "/usr/local/bin/seckill", "Restart": "on-failure",
        "KillSignal": "SIGTERM", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "PrivateTmp": "yes", "ReadWritePaths": "/var/lib/seckill",
    }
    for key, value in expected.items():
        assert settings.get(key) == [value], key
    assert int(settings["TimeoutStopSec"][0]) >= 10
    env_example = read("seckill.env.example")
    for variable in ("SECKILL_LISTEN", "SECKILL_REDIS", "SECKILL_MYSQL",
                     "SECKILL_JWT_SECRET", "SECKILL_DATA_DIR"):
        assert re.search(r"^%s=" % variable, env_example, re.M), variable


def test_systemd_unit_verifies(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists that ExecStart exists: check a copy that runs /bin/true.
    unit = tmp_path / "seckill.service"
    unit.write_text(re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true",
                           read("seckill.service")))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr
