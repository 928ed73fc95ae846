"""Servers of one test alone, that it may stop, restart or hang (SIGSTOP) without touching the
shared MariaDB on 3306 and Redis on 6379 that every other test (and engineer) uses. They live in
the package (``animehot_dagster.stack.private_servers``) since the chaos harness uses them too."""

from animehot_dagster.stack.private_servers import PrivateMariaDB, PrivateRedis

__all__ = ["PrivateMariaDB", "PrivateRedis"]
