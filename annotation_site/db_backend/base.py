"""Django's PostgreSQL backend, with a health check of persistent connections that costs no round trip.

With CONN_HEALTH_CHECKS on (DB_CONN_HEALTH_CHECKS, the default), Django checks a reused connection
before each request's first query with a `SELECT 1`: a fourth round trip beside the three
statements of a rated item (docs/performance.md). A connection the server closed between
requests (a restart, an idle timeout, `pg_terminate_backend`) has the server's goodbye, an error
message and the end of the stream, waiting on its socket, while a healthy idle connection has
nothing to read: looking at the socket tells them apart without asking the server. A
connection that fails this check is replaced before the request uses it, as Django's check does.
After an error inside a request Django still runs its own `SELECT 1` (`is_usable`), unchanged.
"""
from __future__ import annotations

import select

import psycopg2
from django.db.backends.postgresql import base


def socket_has_been_closed(connection) -> bool:
    """Whether an idle psycopg2 connection was closed, by us or by the server (something to read)."""
    if connection.closed:
        return True
    try:
        if not hasattr(select, "poll"):  # Windows
            return bool(select.select([connection.fileno()], [], [], 0)[0])
        # poll, not select: select refuses descriptors above 1023.
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg2.Error):
        return True


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if self.connection is None or not self.health_check_enabled or self.health_check_done or self.pool:
            return
        if socket_has_been_closed(self.connection):
            self.close()
        self.health_check_done = True
