"""A NUL (``%00``) in a URL's path or query string is one answer on SQLite and
PostgreSQL, in the admin and both API dialects: 400, before any lookup (PostgreSQL cannot
take a NUL in text and answered 500)."""

from __future__ import annotations

import pytest
from django.test import Client

from runner.api.nul_in_url import REFUSAL
from tests.api.conftest import ApiClient
from tests.factories import JobFactory, QueueFactory

pytestmark = pytest.mark.django_db

ADMIN = [
    ("get", "/admin/runner/job/%00/change/"),
    ("get", "/admin/runner/job/a%00b/change/"),
    ("get", "/admin/queues/queue/%00/change/"),
    ("post", "/admin/runner/job/%00/run/"),
    ("get", "/admin/runner/run/?job=%00"),
    ("get", "/admin/runner/run/?job__id__exact=%00"),
    ("get", "/admin/runner/job/?q=a%00"),
    ("get", "/admin/runner/run/?a%00=1"),
]
API = [
    ("get", "/api/jobs/a%00b"),
    ("delete", "/api/jobs/a%00b"),
    ("post", "/api/jobs/a%00b/run"),
    ("get", "/api/incidents?job_id=a%00b"),
    ("get", "/api/state/a%00b"),
    ("put", "/api/state/ns/k/items/a%00"),
    ("post", "/api/queues/a%00/enqueue"),
    ("get", "/api/jobs?x=%00"),
    ("get", "/jobs/a%00b"),
    ("post", "/jobs/a%00b/run"),
    ("get", "/queues/a%00/status"),
    ("get", "/state/ns/k?path=%24.a%00"),
]


@pytest.fixture(autouse=True)
def rows():
    JobFactory(id="abc")
    QueueFactory(id="q")


@pytest.mark.parametrize(("method", "url"), ADMIN)
@pytest.mark.parametrize("who", ["staff", "anonymous"])
def test_the_admin_refuses_a_nul_in_the_url_with_400(admin_client, method, url, who):
    client = admin_client if who == "staff" else Client()
    response = getattr(client, method)(url)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == REFUSAL


@pytest.mark.parametrize(("method", "url"), API)
@pytest.mark.parametrize("who", ["token", "anonymous"])
def test_the_api_refuses_a_nul_in_the_url_with_400_in_json(token, method, url, who):
    client = ApiClient(token if who == "token" else None, prefix="")
    response = client.request(method, url)
    assert response.status_code == 400, response.content
    assert response.json() == {"error": REFUSAL}


def test_a_nul_after_a_token_in_the_url_is_refused_too(token):
    response = Client().get(f"/t/{token}/api/jobs/a%00b")
    assert response.status_code == 400 and response.json() == {"error": REFUSAL}


def test_an_escaped_percent_is_not_a_nul(api):
    assert api.get("/jobs/a%2500b").status_code == 404
    assert api.get("/incidents?job_id=a%2500b").status_code == 200
