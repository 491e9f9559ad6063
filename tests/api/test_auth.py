"""Who may use the API: bearer tokens, staff sessions with CSRF, nobody else (R9)."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import User
from django.test import Client

from runner.api.models import ApiToken
from runner.api.site import api as ninja_api
from runner.api.tokens import revoke_token
from tests.api.conftest import ApiClient, make_user
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def test_a_request_without_a_token_gets_401_with_a_bearer_challenge(anonymous):
    response = anonymous.get("/status")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "create_api_token" in response.json()["error"]


def _every_operation() -> list[tuple[str, str]]:
    paths = ninja_api.get_openapi_schema()["paths"]
    return [(method, path) for path, methods in paths.items() for method in methods]


@pytest.mark.parametrize(("method", "path"), _every_operation())
def test_every_endpoint_refuses_an_anonymous_request(client, method, path):
    url = path.replace("{job_id}", "inbox").replace("{run_id}", "1").replace("{item_id}", "1")
    for name in ("{name}", "{namespace}", "{key}", "{item_key}"):
        url = url.replace(name, "x")
    body = {} if method == "get" else {"data": b"{}", "content_type": "application/json"}
    assert getattr(client, method)(url, **body).status_code == 401


def test_a_wrong_token_gets_401(token):
    response = ApiClient(token[:-4] + "abcd").get("/status")
    assert response.status_code == 401
    assert response.json() == {"error": "the API token is not valid or has been revoked"}


def test_a_revoked_token_gets_401(api):
    revoke_token("tests")
    assert api.get("/status").status_code == 401


def test_an_authorization_header_that_is_not_bearer_gets_401(anonymous, token):
    response = anonymous.get("/status", headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 401


def test_a_valid_token_is_accepted(api):
    assert api.get("/status").status_code == 200


def test_using_a_token_records_when_it_was_last_used(api):
    api.get("/status")
    assert ApiToken.objects.get(name="tests").last_used_at is not None


def test_a_staff_session_may_read(admin_client):
    assert admin_client.get("/api/status").status_code == 200


def test_a_logged_in_user_who_is_not_staff_is_refused(client):
    client.force_login(User.objects.create_user("visitor", password="x"))
    assert client.get("/api/status").status_code == 403


def _staff_client() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("operator", "runner.change_job"))
    return client


def test_a_staff_session_write_without_the_csrf_token_is_refused():
    JobFactory(id="inbox", enabled=True)
    response = _staff_client().post("/api/jobs/inbox/disable")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]


def test_a_staff_session_write_with_the_csrf_token_is_accepted():
    JobFactory(id="inbox", enabled=True)
    client = _staff_client()
    client.get("/admin/")  # sets the csrftoken cookie, as the browser would have it
    csrf = client.cookies["csrftoken"].value
    response = client.post("/api/jobs/inbox/disable", headers={"X-CSRFToken": csrf})
    assert response.status_code == 200


def test_a_token_write_needs_no_csrf_token(token):
    JobFactory(id="inbox", enabled=True)
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/jobs/inbox/disable", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_the_openapi_schema_loads_for_staff(admin_client):
    schema = admin_client.get("/api/openapi.json").json()
    assert "/api/jobs/{job_id}/run" in schema["paths"]
    assert {"BearerToken", "StaffSession"} <= set(schema["components"]["securitySchemes"])


def test_the_openapi_schema_loads_with_a_token(api):
    assert api.get("/openapi.json").json()["info"]["title"] == "jeeves-runner API"


def test_the_openapi_schema_refuses_a_wrong_token(token):
    assert ApiClient(token + "x").get("/openapi.json").status_code == 401


def test_the_docs_send_anonymous_users_to_log_in(client):
    response = client.get("/api/docs")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_docs_answer_staff(admin_client):
    assert admin_client.get("/api/docs").status_code == 200


def test_no_response_echoes_the_token_or_a_wrong_one(api, token):
    JobFactory(id="inbox")
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    responses = [
        api.get("/status"),
        api.get("/jobs"),
        api.get("/jobs/missing"),
        api.get("/jobs/inbox/runs?limit=-1"),
        api.post("/jobs", raw=b"{not json"),
        api.get("/openapi.json"),
        ApiClient(wrong).get("/status"),
        ApiClient(wrong).get("/openapi.json"),
    ]
    for response in responses:
        assert token.encode() not in response.content
        assert wrong.encode() not in response.content


def test_tokens_never_reach_the_logs(api, token, caplog, settings):
    settings.DEBUG = True  # where ninja's own bearer class would log the header
    caplog.set_level(logging.DEBUG)
    api.get("/status")
    ApiClient(token + "x").get("/status")
    api.get("/status", headers={"Authorization": f"Token {token}"})
    assert caplog.records  # the refusals were logged, without the secrets
    assert token not in caplog.text
