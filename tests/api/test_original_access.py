"""Who may use the root dialect: the same credentials and permissions as /api/, the
/t/<token>/ URL prefix, and loopback callers without a token when the operator says so."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.core import checks
from django.test import Client

from runner.api.checks import check_loopback_anonymous
from runner.api.original.access import loopback_user
from runner.models import Job
from tests.api.conftest import ApiClient
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

JOB = {"id": "inbox", "name": "Inbox", "schedule": "* * * * *", "script": "echo"}


@pytest.fixture
def loopback_on(settings):
    settings.API_LOOPBACK_ANONYMOUS = True


def root_client(token: str | None = None, remote: str = "127.0.0.1") -> ApiClient:
    return ApiClient(token, prefix="", REMOTE_ADDR=remote)


def test_without_credentials_every_root_route_is_401_by_default():
    client = root_client()
    for path in ("/status", "/jobs", "/queues", "/state", "/jobs/x/runs"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "token" in response.json()["error"]


def test_a_bearer_token_opens_the_root_dialect(token):
    assert root_client(token).get("/jobs").json() == {"jobs": []}


def test_a_wrong_token_is_401_even_from_loopback_with_the_opening_on(loopback_on):
    assert root_client("jr_wrong").get("/jobs").status_code == 401


def test_a_token_in_the_url_prefix_opens_both_dialects(token):
    JobFactory(id="inbox")
    client = Client()
    assert client.get(f"/t/{token}/jobs/inbox").json()["job"]["id"] == "inbox"
    assert client.get(f"/t/{token}/api/jobs/inbox").json()["job"]["id"] == "inbox"
    response = client.patch(f"/t/{token}/jobs/inbox/disable")
    assert (response.status_code, Job.objects.get().enabled) == (200, False)


def test_a_wrong_token_in_the_url_is_401():
    assert Client().get("/t/jr_wrong/jobs").status_code == 401
    assert Client().get("/t/jr_wrong/api/jobs").status_code == 401


def test_a_token_in_both_url_and_header_is_refused_and_logged_without_it(token, caplog):
    response = Client().get(f"/t/{token}/jobs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert "/t/***/jobs" in caplog.text and token not in caplog.text


def test_a_staff_session_opens_the_root_dialect_with_that_users_permissions():
    user = User.objects.create_user("op", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get("/jobs").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    assert client.get("/jobs").status_code == 200
    # Writes over a session need the CSRF token, as on /api/.
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post("/jobs", JOB, content_type="application/json").status_code == 403


@pytest.mark.parametrize("remote", ["127.0.0.1", "::1"])
def test_loopback_callers_need_no_token_when_the_opening_is_on(loopback_on, remote):
    client = root_client(remote=remote)
    response = client.post("/jobs", {**JOB, "source_type": "inline"})
    assert response.status_code == 201
    assert client.get("/jobs/inbox").json()["job"]["id"] == "inbox"


def test_the_opening_acts_as_a_service_user_the_operator_can_narrow(loopback_on):
    client = root_client()
    assert client.get("/jobs").status_code == 200
    user = User.objects.get(username="jeeves-loopback")
    assert user.is_staff and not (user.is_superuser or user.has_usable_password())
    user.user_permissions.remove(Permission.objects.get(codename="add_job"))
    response = client.post("/jobs", {**JOB, "source_type": "inline"})
    assert response.status_code == 403
    assert "runner.add_job" in response.json()["error"]
    assert not Job.objects.exists()


def test_the_service_user_is_created_once():
    assert loopback_user().pk == loopback_user().pk
    assert User.objects.filter(username="jeeves-loopback").count() == 1


def test_the_opening_is_off_for_other_addresses(loopback_on):
    response = root_client(remote="10.0.0.5").get("/jobs")
    assert response.status_code == 401
    assert "admits callers on this host only" in response.json()["error"]


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_the_opening_is_off_for_requests_relayed_by_a_proxy(loopback_on, header):
    response = root_client().get("/jobs", headers={header: "203.0.113.9"})
    assert response.status_code == 401
    # Not told to turn on what is on (newcomer probe): told why it did not admit this one.
    error = response.json()["error"]
    assert "set JEEVES_API_LOOPBACK_ANONYMOUS=1" not in error
    assert f"this one carries {header}".lower() in error.lower()


@pytest.mark.parametrize(
    "headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}]
)
def test_the_opening_is_off_for_browsers_so_no_web_page_can_post_jobs(loopback_on, headers):
    response = root_client().post("/jobs", {**JOB, "source_type": "inline"}, headers=headers)
    assert response.status_code == 401
    assert not Job.objects.exists()


def test_the_opening_is_for_the_root_dialect_only(loopback_on):
    assert ApiClient(REMOTE_ADDR="127.0.0.1").get("/jobs").status_code == 401


def test_check_warns_while_the_opening_is_on(settings):
    assert check_loopback_anonymous() == []
    settings.API_LOOPBACK_ANONYMOUS = True
    [warning] = check_loopback_anonymous()
    assert (warning.id, warning.level) == ("api.W001", checks.WARNING)
    assert "run commands as the runner's user" in warning.msg
