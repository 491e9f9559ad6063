"""Admin sessions and logins: sessions are signed cookies, never database rows, and
repeated failed logins lock that username out from that address for a while."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings

from tests.moments import NOW

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "correct horse battery"


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_superuser("operator", password=PASSWORD)


def log_in(client: Client, password: str = PASSWORD, address: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": "operator", "password": password}, REMOTE_ADDR=address)


# Sessions


def test_a_login_leaves_no_session_in_the_database(operator):
    client = Client()
    assert log_in(client).status_code == 302
    assert client.get("/admin/").status_code == 200
    tables = connection.introspection.table_names()
    assert "django_session" not in tables  # nothing a copy of the database could replay


def test_the_session_cookie_is_http_only_same_site_and_short_lived(operator):
    client = Client()
    log_in(client)
    cookie = client.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert cookie["max-age"] == 12 * 3600


def test_a_session_cookie_signed_with_another_key_is_anonymous(operator):
    forger = Client()
    with override_settings(SECRET_KEY="what a copy of the database does not hold"):
        forger.force_login(operator)
    assert forger.get("/admin/").status_code == 302  # to the login page


def test_the_api_takes_the_signed_session_of_a_form_login(operator):
    client = Client()
    log_in(client)
    assert client.get("/api/status").status_code == 200


# Throttling


def test_five_failed_logins_lock_that_username_out_from_that_address(operator):
    client = Client()
    answers = [log_in(client, "wrong").status_code for _ in range(5)]
    assert answers == [200, 200, 200, 200, 429]
    assert log_in(client).status_code == 429  # even with the right password
    assert log_in(Client(), address="10.0.0.2").status_code == 302  # another address


def test_a_lock_ends_fifteen_minutes_after_the_last_attempt(operator):
    with time_machine.travel(NOW, tick=False) as clock:
        for _ in range(5):
            log_in(Client(), "wrong")
        clock.shift(timedelta(minutes=14))
        assert log_in(Client()).status_code == 429  # and the fifteen minutes start again
        clock.shift(timedelta(minutes=14))
        assert log_in(Client()).status_code == 429
        clock.shift(timedelta(minutes=16))
        assert log_in(Client()).status_code == 302


def test_axes_reset_username_lets_a_locked_out_operator_back_in(operator):
    for _ in range(5):
        log_in(Client(), "wrong")
    call_command("axes_reset_username", "operator", stdout=StringIO())
    assert log_in(Client()).status_code == 302


def test_a_successful_login_clears_the_failures_before_it(operator):
    for _ in range(4):
        log_in(Client(), "wrong")
    assert log_in(Client()).status_code == 302
    assert [log_in(Client(), "wrong").status_code for _ in range(4)] == [200] * 4


def test_a_login_without_a_request_is_not_throttled(operator):
    for _ in range(5):
        log_in(Client(), "wrong")
    assert Client().login(username="operator", password=PASSWORD)  # tests, commands
