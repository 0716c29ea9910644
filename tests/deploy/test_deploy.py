"""The deploy/ folder: the compose file is valid and describes two seckill instances, a
Redis with AOF and a password, a MariaDB and a load balancer on 20080, every secret a
file mounted as a Docker secret (none inline); deploy/make-secrets makes files seckill
accepts; the Dockerfile builds from Debian packages only; the systemd unit has its key
settings (Type=notify, secrets by LoadCredential=) and passes systemd-analyze verify.
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
SECKILL_BIN = os.environ.get("SECKILL_BIN") or os.path.join(ROOT, "build", "seckill")


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
    # No variables needed: the secrets are files.
    result = compose_config({})
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


def secret_files(compose, service):
    """{target path in the container: source file on the host} of a service's secrets."""
    out = {}
    for entry in compose["services"][service].get("secrets", []):
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        out["/run/secrets/" + target] = compose["secrets"][source]["file"]
    return out


def test_compose_two_seckill_instances(compose):
    services = compose["services"]
    seckills = sorted(name for name in services if name.startswith("seckill"))
    assert seckills == ["seckill1", "seckill2"]
    for name in seckills:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert os.path.samefile(service["build"]["context"], ROOT)
        env = service["environment"]
        files = secret_files(compose, name)
        for variable, host_file in (("SECKILL_REDIS_FILE", "seckill-redis-url"),
                                    ("SECKILL_MYSQL_FILE", "seckill-mysql-url"),
                                    ("SECKILL_JWT_SECRET_FILE", "jwt-secret")):
            assert files[env[variable]] == os.path.join(DEPLOY, "secrets", host_file), variable
        for inline in ("SECKILL_REDIS", "SECKILL_MYSQL", "SECKILL_JWT_SECRET"):
            assert inline not in env
        assert env["SECKILL_LISTEN"] == "0.0.0.0:20080"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["depends_on"]["mysql"]["condition"] == "service_healthy"
    assert secret_files(compose, "seckill1") == secret_files(compose, "seckill2")


def test_compose_redis_with_aof_and_password(compose):
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    command = command if isinstance(command, list) else command.split()
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] in ("everysec", "always")
    # requirepass comes from a mounted file, never the command line.
    included = command[command.index("--include") + 1]
    assert secret_files(compose, "redis")[included] == os.path.join(DEPLOY, "secrets",
                                                                    "redis-auth.conf")
    assert "--requirepass" not in command
    health = " ".join(redis["healthcheck"]["test"])
    assert "REDISCLI_AUTH=" in health and included in health and " -a " not in health
    assert ("6379", "6379") in port_pairs(redis)
    assert any(volume.endswith(":/data:rw") or volume.endswith(":/data")
               for volume in redis["volumes"])


def test_compose_mysql(compose):
    mysql = compose["services"]["mysql"]
    assert mysql["image"].split(":")[0] in ("mysql", "mariadb")
    assert ("23306", "3306") in port_pairs(mysql)
    env = mysql["environment"]
    assert env.get("MARIADB_DATABASE", env.get("MYSQL_DATABASE")) == "seckill"
    password_file = env.get("MARIADB_PASSWORD_FILE", env.get("MYSQL_PASSWORD_FILE"))
    assert secret_files(compose, "mysql")[password_file] == os.path.join(DEPLOY, "secrets",
                                                                         "mysql-password")
    assert "healthcheck" in mysql


def test_compose_no_inline_secrets(compose):
    """Secrets are files: no service has a password, secret or credential-carrying URL in
    its environment or command, and every Docker secret comes from a file under
    deploy/secrets/ (git-ignored)."""
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|REDIS|MYSQL", key) and not key.endswith("_FILE"):
                assert key == "MARIADB_RANDOM_ROOT_PASSWORD" and value == "yes", (name, key)
            assert not re.search(r"://[^/@]*@", str(value)), (name, key)
        command = service.get("command", [])
        command = " ".join(command) if isinstance(command, list) else str(command)
        assert not re.search(r"requirepass|password|://[^/@]*@", command, re.I), name
    assert compose["secrets"]
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, name
        assert os.path.dirname(secret["file"]) == os.path.join(DEPLOY, "secrets"), name
    with open(os.path.join(DEPLOY, ".gitignore")) as file:
        assert "secrets/" in file.read().split()


def test_make_secrets(tmp_path):
    """deploy/make-secrets writes every file the compose file mounts, private, with the
    passwords matching between the servers' files and seckill's URLs; seckill accepts its
    three files; a second run changes nothing."""
    directory = tmp_path / "secrets"
    result = subprocess.run([os.path.join(DEPLOY, "make-secrets"), str(directory)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    compose_text = read("docker-compose.yml")
    names = re.findall(r"file: \./secrets/(\S+)", compose_text)
    assert sorted(names) == sorted(os.listdir(directory))
    assert os.stat(directory).st_mode & 0o777 == 0o700
    content = {}
    for name in names:
        path = directory / name
        assert os.stat(path).st_mode & 0o777 == 0o600, name
        content[name] = path.read_text()
        assert content[name].endswith("\n") and content[name].count("\n") == 1, name
    assert re.fullmatch(r"[0-9a-f]{64}\n", content["jwt-secret"])
    mysql_password = content["mysql-password"].strip()
    assert content["seckill-mysql-url"] == (
        "mysql://seckill:%s@mysql:3306/seckill\n" % mysql_password)
    redis_password = re.fullmatch(r"requirepass ([0-9a-f]{32})\n",
                                  content["redis-auth.conf"]).group(1)
    assert content["seckill-redis-url"] == "redis://:%s@redis:6379/0\n" % redis_password
    assert len({mysql_password, redis_password, content["jwt-secret"].strip()}) == 3
    if os.geteuid() == 0:
        assert os.stat(directory / "jwt-secret").st_uid == 10001
        assert os.stat(directory / "redis-auth.conf").st_uid == 999
    # seckill reads all three (mode, one line) before it handles --version.
    if os.access(SECKILL_BIN, os.X_OK) and os.geteuid() in (0, 10001):
        check = subprocess.run(
            [SECKILL_BIN, "--jwt-secret-file", str(directory / "jwt-secret"),
             "--redis-file", str(directory / "seckill-redis-url"),
             "--mysql-file", str(directory / "seckill-mysql-url"), "--version"],
            capture_output=True, text=True, timeout=30,
            env={key: value for key, value in os.environ.items()
                 if not key.startswith("SECKILL_")})
        assert check.returncode == 0, check.stderr
    again = subprocess.run([os.path.join(DEPLOY, "make-secrets"), str(directory)],
                           capture_output=True, text=True, timeout=30)
    assert again.returncode != 0 and "exists" in again.stderr
    assert (directory / "jwt-secret").read_text() == content["jwt-secret"]


def test_dockerfile_user_has_the_uid_of_the_secrets():
    runs = " ".join(line for line in dockerfile_instructions() if line.upper().startswith("RUN "))
    assert re.search(r"useradd [^&]*--uid 10001\b[^&]* seckill", runs)
    assert "10001" in read("make-secrets")


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
        "Type": "notify", "NotifyAccess": "main", "User": "seckill",
        "EnvironmentFile": "/etc/seckill/seckill.env", "Restart": "on-failure",
        "KillSignal": "SIGTERM", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "PrivateTmp": "yes", "ReadWritePaths": "/var/lib/seckill",
    }
    for key, value in expected.items():
        assert settings.get(key) == [value], key
    assert int(settings["TimeoutStopSec"][0]) >= 10
    env_example = read("seckill.env.example")
    for variable in ("SECKILL_LISTEN", "SECKILL_DATA_DIR"):
        assert re.search(r"^%s=" % variable, env_example, re.M), variable


def test_systemd_unit_secrets_are_credentials():
    """The secrets reach the service as credentials read with the --*-file options: none
    on the command line, none in the environment file."""
    settings = unit_settings()
    credentials = dict(value.split(":", 1) for value in settings["LoadCredential"])
    assert credentials == {"jwt-secret": "/etc/seckill/jwt-secret",
                           "redis-url": "/etc/seckill/redis-url",
                           "mysql-url": "/etc/seckill/mysql-url"}
    exec_start = settings["ExecStart"][0].split()
    assert exec_start[0] == "/usr/local/bin/seckill"
    assert sorted(exec_start[1:]) == sorted([
        "--jwt-secret-file=%d/jwt-secret", "--redis-file=%d/redis-url",
        "--mysql-file=%d/mysql-url"])
    assert not any(key in settings for key in ("Environment", "SetCredential"))
    env_example = read("seckill.env.example")
    for variable in ("SECKILL_JWT_SECRET", "SECKILL_REDIS", "SECKILL_MYSQL"):
        assert not re.search(r"^#?%s=" % variable, env_example, re.M), variable


def test_systemd_unit_documentation_is_installed():
    """Every file:// page Documentation= names is one the install steps put there."""
    unit = read("seckill.service")
    pages = [value[len("file://"):] for value in unit_settings()["Documentation"]]
    assert pages
    installs = re.findall(r"^#\s+install -D -m 0644 (\S+) (\S+)$", unit, re.M)
    readme = read("README.md")
    for page in pages:
        sources = [source for source, target in installs if target == page]
        assert sources, page
        assert os.path.isfile(os.path.join(ROOT, sources[0])), sources[0]
        assert "install -D -m 0644 %s %s" % (sources[0], page) in readme, page


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


def test_dockerfile_build_stage_has_what_the_build_reads():
    """No Docker engine here to build the image, so this is checked by reading: every file
    CMakeLists.txt compiles in (sk_embed) is copied into the build stage and let through
    the dockerignore, and every library package the Makefile's `make run` installs is
    installed there too (a new dependency once reached the Makefile and not the image)."""
    instructions = dockerfile_instructions()
    copies = [line.split()[1:-1] for line in instructions if line.upper().startswith("COPY ")
              and "--from" not in line]
    copied = [path.rstrip("/") for sources in copies for path in sources]
    ignore = read("Dockerfile.dockerignore").splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    cmake = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    embedded = re.findall(r"^sk_embed\((\S+)", cmake, re.M)
    assert embedded, "no sk_embed() calls found: the check is out of date"
    for path in embedded:
        assert any(path == c or path.startswith(c + "/") for c in copied), \
            f"{path} is compiled in but not copied into the image"
        assert any(path == a or path.startswith(a + "/") for a in allowed), \
            f"{path} is compiled in but the dockerignore keeps it out"
    makefile = open(os.path.join(ROOT, "Makefile")).read().replace("\\\n", " ")
    packages = re.search(r"^BUILD_PACKAGES := (.*)$", makefile, re.M).group(1).split()
    runs = " ".join(line for line in instructions if line.upper().startswith("RUN "))
    for package in packages:
        if package.endswith("-dev"):
            assert re.search(rf"(^|\s){re.escape(package)}(\s|$)", runs), \
                f"{package} (BUILD_PACKAGES) is not installed in the image's build stage"
