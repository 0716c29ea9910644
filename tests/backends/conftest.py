"""Fixtures for test_backends.py (fixtures.py serves every other suite too)."""

from fixtures import mariadb, mysql_database, redis_cluster, redis_server  # noqa: F401
