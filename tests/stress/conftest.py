"""Fixtures for the stress tests: the same harness as tests/api."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from seckill_harness import client, server, start_server  # noqa: E402,F401  (fixtures)
from seckill_harness import pytest_collection_modifyitems, pytest_configure  # noqa: E402,F401

# Every answer checked against docs/openapi.json, as in tests/api.
import openapi_check  # noqa: E402
from openapi_check import (pytest_runtest_makereport, pytest_sessionfinish,  # noqa: E402,F401
                           pytest_terminal_summary)

openapi_check.install()
