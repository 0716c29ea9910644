"""Fixtures for the black-box API tests: see seckill_harness.py.

`server` starts one seckill per test module (default options); `client` talks to it;
`start_server(options=..., data_dir=...)` starts extra servers with custom options.
Every answer a test gets through `requests` is checked against docs/openapi.json
(openapi_check.py).
"""

import openapi_check
from openapi_check import (pytest_runtest_makereport, pytest_sessionfinish,  # noqa: F401
                           pytest_terminal_summary)

from seckill_harness import client, server, start_server  # noqa: F401  (fixtures)
from seckill_harness import pytest_collection_modifyitems, pytest_configure  # noqa: F401,E402

openapi_check.install()
