"""API tokens: created and revoked by command and in the admin, stored only hashed."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import CommandError, call_command

from runner.api.models import ApiToken
from runner.api.tokens import authenticate, create_token

pytestmark = pytest.mark.django_db


def _create(name: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", name, stdout=out, stderr=err)
    return out.getvalue().strip()


def test_create_api_token_prints_a_token_that_authenticates():
    secret = _create("dashboard")
    assert secret.startswith("jr_") and len(secret) > 40
    assert authenticate(secret).name == "dashboard"


def test_a_token_is_stored_only_as_its_sha256_and_a_short_prefix():
    secret = _create("dashboard")
    row = ApiToken.objects.values().get(name="dashboard")
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert row["prefix"] == secret[:10]
    assert not any(secret in str(value) for value in row.values())


def test_create_api_token_refuses_a_name_an_active_token_has():
    _create("dashboard")
    with pytest.raises(CommandError, match="already called 'dashboard'"):
        _create("dashboard")


def test_create_api_token_refuses_an_empty_name():
    with pytest.raises(CommandError, match="name: This field cannot be blank"):
        _create("  ")


def test_revoke_api_token_stops_the_token_at_once():
    secret = _create("dashboard")
    call_command("revoke_api_token", "dashboard", stdout=io.StringIO())
    assert authenticate(secret) is None


def test_revoke_api_token_refuses_an_unknown_name():
    with pytest.raises(CommandError, match="no active API token is called 'ghost'"):
        call_command("revoke_api_token", "ghost", stdout=io.StringIO())


def test_a_revoked_tokens_name_can_be_given_to_a_new_token():
    old = _create("dashboard")
    call_command("revoke_api_token", "dashboard", stdout=io.StringIO())
    new = _create("dashboard")
    assert authenticate(old) is None and authenticate(new) is not None


def test_the_admin_shows_a_new_token_once_and_never_again(admin_client):
    response = admin_client.post("/admin/api/apitoken/add/", {"name": "dashboard"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(name="dashboard")
    secret = response.context["secret"]
    assert authenticate(secret) == token
    for page in ("/admin/api/apitoken/", f"/admin/api/apitoken/{token.pk}/change/"):
        assert secret.encode() not in admin_client.get(page).content
    assert not response.cookies.get("messages")


def test_the_admin_refuses_a_second_active_token_with_the_same_name(admin_client):
    create_token("dashboard")
    response = admin_client.post("/admin/api/apitoken/add/", {"name": "dashboard"})
    assert response.status_code == 200
    assert ApiToken.objects.filter(name="dashboard").count() == 1
    assert response.context["adminform"].form.errors


def test_the_admin_revoke_action_stops_the_selected_tokens(admin_client):
    token, secret = create_token("dashboard")
    admin_client.post("/admin/api/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert authenticate(secret) is None


@pytest.mark.parametrize("page", ["", "add/"])
def test_the_token_pages_answer_staff(admin_client, page):
    assert admin_client.get(f"/admin/api/apitoken/{page}").status_code == 200


def test_the_token_change_page_answers_staff(admin_client):
    token, _ = create_token("dashboard")
    assert admin_client.get(f"/admin/api/apitoken/{token.pk}/change/").status_code == 200


def test_the_token_pages_send_anonymous_users_to_log_in(client):
    response = client.get("/admin/api/apitoken/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
