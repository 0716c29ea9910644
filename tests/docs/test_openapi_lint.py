"""docs/openapi.json passes Redocly's OpenAPI linter (`redocly lint`) with docs/redocly.yaml:
the recommended rules with their warnings as errors, plus a few more (see the file).

@redocly/cli comes from the npm registry, pinned (REDOCLY_VERSION), installed once into
build/tools/redocly (npm install --prefix) and reused while that version is there. It needs
node >= 18.17 and npm: Debian 12's nodejs 18.20 and npm 9.2 (`make test` installs them,
npm only when no `npm` command exists, since a nodesource nodejs brings its own) or a newer
node. Without node or npm the tests are skipped, saying why. Telemetry and update checks
are off.
"""

import fcntl
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENT = REPO / "docs" / "openapi.json"
CONFIG = REPO / "docs" / "redocly.yaml"
TOOLS = REPO / "build" / "tools" / "redocly"
# The last 1.x: 2.x needs node >= 20.19, which Debian 12 does not have.
REDOCLY_VERSION = "1.34.20"
MIN_NODE = (18, 17)
ENV = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true",
           NO_UPDATE_NOTIFIER="1", npm_config_update_notifier="false")


def node_version():
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    match = re.match(r"v(\d+)\.(\d+)", out.stdout.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def installed_version():
    try:
        package = TOOLS / "node_modules" / "@redocly" / "cli" / "package.json"
        return json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def redocly():
    version = node_version()
    if version is None:
        pytest.skip("node is not installed (Debian: apt-get install nodejs npm; `make test` "
                    "does): redocly lint not run")
    if version < MIN_NODE:
        pytest.skip(f"node {version[0]}.{version[1]} is older than @redocly/cli "
                    f"{REDOCLY_VERSION} needs (18.17): redocly lint not run")
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (Debian: apt-get install npm; `make test` does): "
                    "redocly lint not run")
    TOOLS.mkdir(parents=True, exist_ok=True)
    with open(TOOLS.parent / "redocly.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time
        if installed_version() != REDOCLY_VERSION:
            out = subprocess.run(
                ["npm", "install", "--prefix", str(TOOLS), "--no-audit", "--no-fund",
                 "--loglevel=error", f"@redocly/cli@{REDOCLY_VERSION}"],
                capture_output=True, text=True, timeout=600, env=ENV)
            assert out.returncode == 0, f"npm install failed:\n{out.stdout}\n{out.stderr}"
            assert installed_version() == REDOCLY_VERSION
    binary = TOOLS / "node_modules" / ".bin" / "redocly"
    assert binary.exists(), binary
    return binary


def lint(redocly, document):
    return subprocess.run([str(redocly), "lint", "--config", str(CONFIG), str(document)],
                          capture_output=True, text=True, timeout=120, env=ENV, cwd=REPO)


def test_document_passes_the_linter(redocly):
    out = lint(redocly, DOCUMENT)
    print(out.stdout + out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name, spoil", [
    # struct: an operation without responses
    ("no-responses", lambda d: d["paths"]["/healthz"]["get"].pop("responses")),
    # no-unresolved-refs
    ("bad-ref", lambda d: d["paths"]["/healthz"]["get"]["responses"].update(
        {"418": {"$ref": "#/components/responses/Nothing"}})),
    # recommended warnings made errors: an unused component, a tag without description
    ("unused-component", lambda d: d["components"]["schemas"].update({"Unused": {}})),
    ("tag-description", lambda d: d["tags"].append({"name": "spare"})),
    # operation-summary
    ("no-summary", lambda d: d["paths"]["/readyz"]["get"].pop("summary")),
])
def test_linter_refuses_a_spoilt_document(redocly, tmp_path, name, spoil):
    """The lint can fail: each change breaks one rule."""
    document = json.loads(DOCUMENT.read_text())
    spoil(document)
    spoilt = tmp_path / f"{name}.json"
    spoilt.write_text(json.dumps(document, indent=2))
    out = lint(redocly, spoilt)
    assert out.returncode != 0, f"{name}: the linter accepted it:\n{out.stdout}{out.stderr}"
