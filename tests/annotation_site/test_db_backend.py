"""Persistent PostgreSQL connections are checked before each request without a round trip."""
import select

import psycopg2
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)  # in autocommit, as between requests


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.fixture
def no_select_1(monkeypatch):
    """Fails the test if the check asks the server (Django's own check runs `SELECT 1` in is_usable)."""

    def asked():
        raise AssertionError("the health check sent a query")

    monkeypatch.setattr(connection, "is_usable", asked)


def start_of_a_request():
    # What Django does when a request starts (close_old_connections) and before its first query.
    connection.close_if_unusable_or_obsolete()
    connection.close_if_health_check_failed()


def test_a_live_connection_is_kept_without_a_query(postgres, no_select_1):
    assert connection.health_check_enabled
    pid = backend_pid()
    start_of_a_request()
    assert connection.connection is not None and backend_pid() == pid


def test_a_connection_the_server_closed_between_requests_is_replaced_before_the_next_query(postgres, no_select_1):
    pid = backend_pid()
    other = psycopg2.connect(**connection.get_connection_params())
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    assert select.select([connection.connection.fileno()], [], [], 5)[0]  # the server's goodbye has arrived
    start_of_a_request()
    assert connection.connection is None  # closed before any query could fail on it
    assert backend_pid() != pid
