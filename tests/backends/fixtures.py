"""pytest fixtures for real backends of the distributed deployment (see backends.py).

Use from a conftest.py:

    sys.path.insert(0, str(Path(__file__).parents[1] / "backends"))
    from fixtures import redis_server, redis_cluster, mariadb, mysql_database  # noqa: F401

Each server starts the first time a test asks for it and stops at the end of the session
(and at exit, whatever happens). Tests that restart or kill a server should start their
own (`RedisServer().start()`, ...) rather than disturb the shared one, or restart it and
leave it running.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import MariaDB, RedisCluster, RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_server():
    """A standalone RedisServer (AOF on, appendfsync everysec); `.url`, `.command()`."""
    server = RedisServer(aof=True).start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_cluster():
    """A three-master RedisCluster (AOF on, no replicas); `.url` lists the three nodes."""
    cluster = RedisCluster(masters=3).start()
    yield cluster
    cluster.close()


@pytest.fixture(scope="session")
def mariadb():
    """A MariaDB with the database `seckill_test`; `.url`, `.query(sql)`."""
    server = MariaDB().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def mysql_database(mariadb):
    """The mysql:// URL of a fresh database for one test module, dropped after it."""
    url = mariadb.create_database()
    yield url
    mariadb.drop_database(url.rsplit("/", 1)[1])
