"""Fixtures for the black-box API tests: see seckill_harness.py.

`server` starts one seckill per test module (default options); `client` talks to it;
`start_server(options=..., data_dir=...)` starts extra servers with custom options.
"""

from seckill_harness import client, server, start_server  # noqa: F401  (fixtures)
from seckill_harness import pytest_collection_modifyitems, pytest_configure  # noqa: F401,E402
