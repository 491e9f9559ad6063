"""API tokens: created and revoked by command and in the admin, stored only hashed."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from django.core.management import CommandError, call_command

from runner.api.models import ApiToken
from runner.api.tokens import authenticate, create_token
from tests.api.conftest import ApiClient, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def owner(token_owner):
    return token_owner


def _create(name: str, user: str = "token-owner") -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", name, "--user", user, stdout=out, stderr=err)
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


@pytest.mark.parametrize(
    "name, shown",
    [("ci\nINFO token revoked", "\\x0a"), ("ci\x1b[2Jx", "\\x1b"), ("ci\tbot", "\\x09")],
)
def test_create_api_token_refuses_a_name_with_control_characters(name, shown):
    """A token's name is shown in the admin, the command's output and logs: a line
    break or a terminal escape in it would forge or garble what an operator reads."""
    expected = f"name: must not contain control characters (found {shown})"
    with pytest.raises(CommandError, match=re.escape(expected)):
        _create(name)
    assert not ApiToken.objects.exists()


def test_the_admin_refuses_a_token_name_with_control_characters(admin_client, owner):
    response = admin_client.post(
        "/admin/api/apitoken/add/", {"name": "dash\x1b[31mboard", "user": owner.pk}
    )
    assert response.status_code == 200 and not ApiToken.objects.exists()
    assert "control characters" in str(response.context["adminform"].form.errors["name"])


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


def test_the_admin_refuses_a_second_active_token_with_the_same_name(admin_client, owner):
    create_token("dashboard", owner)
    response = admin_client.post("/admin/api/apitoken/add/", {"name": "dashboard"})
    assert response.status_code == 200
    assert ApiToken.objects.filter(name="dashboard").count() == 1
    assert response.context["adminform"].form.errors


def test_the_admin_revoke_action_stops_the_selected_tokens(admin_client, owner):
    token, secret = create_token("dashboard", owner)
    admin_client.post("/admin/api/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert authenticate(secret) is None


@pytest.mark.parametrize("page", ["", "add/"])
def test_the_token_pages_answer_staff(admin_client, page):
    assert admin_client.get(f"/admin/api/apitoken/{page}").status_code == 200


def test_the_token_change_page_answers_staff(admin_client, owner):
    token, _ = create_token("dashboard", owner)
    assert admin_client.get(f"/admin/api/apitoken/{token.pk}/change/").status_code == 200


def test_the_token_pages_send_anonymous_users_to_log_in(client):
    response = client.get("/admin/api/apitoken/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_create_api_token_records_the_user_the_token_acts_as(owner):
    secret = _create("dashboard")
    assert authenticate(secret).user == owner


def test_create_api_token_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="no user is called 'ghost'"):
        _create("dashboard", user="ghost")


@pytest.mark.parametrize(
    ("fields", "problem"),
    [({"is_staff": False}, "is not staff"), ({"is_active": False}, "is deactivated")],
)
def test_create_api_token_refuses_a_user_whose_token_could_not_work(fields, problem):
    make_user("visitor", **fields)
    with pytest.raises(CommandError, match=f"user: 'visitor' {problem}"):
        _create("dashboard", user="visitor")
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"is_staff": False}, "is not staff"), ({"is_active": False}, "is deactivated")],
)
def test_a_token_stops_working_when_its_user_loses_staff_status_or_is_deactivated(
    owner, change, reason
):
    secret = _create("dashboard")
    type(owner).objects.filter(pk=owner.pk).update(**change)
    response = ApiClient(secret).get("/jobs")
    assert response.status_code == 401
    assert response.json() == {"error": f"the API token cannot be used: its user {reason}"}


def test_a_token_made_before_tokens_had_owners_no_longer_works():
    token, secret = create_token("dashboard", make_user("someone", superuser=True))
    ApiToken.objects.filter(pk=token.pk).update(user=None)
    response = ApiClient(secret).get("/status")
    assert response.status_code == 401
    assert "belongs to no user" in response.json()["error"]


def test_a_token_goes_with_its_user_when_the_user_is_deleted(owner):
    _create("dashboard")
    owner.delete()
    assert not ApiToken.objects.exists()


def test_a_staff_user_makes_tokens_only_for_themselves_in_the_admin(client, owner):
    staff = make_user("operator", "api.add_apitoken", "api.view_apitoken")
    client.force_login(staff)
    # The form has no user field for them; a forged one is ignored.
    response = client.post("/admin/api/apitoken/add/", {"name": "mine", "user": owner.pk})
    assert response.status_code == 200
    assert ApiToken.objects.get(name="mine").user == staff


def test_a_superuser_may_make_a_token_for_another_user_in_the_admin(admin_client):
    staff = make_user("operator")
    admin_client.post("/admin/api/apitoken/add/", {"name": "theirs", "user": staff.pk})
    assert ApiToken.objects.get(name="theirs").user == staff


def test_the_admin_lists_only_a_staff_users_own_tokens(client, owner):
    create_token("not-mine", owner)
    staff = make_user("operator", "api.view_apitoken")
    create_token("mine", staff)
    client.force_login(staff)
    listed = client.get("/admin/api/apitoken/").context["cl"].result_list
    assert [token.name for token in listed] == ["mine"]


def test_the_admin_refuses_a_token_for_a_user_who_is_not_staff(admin_client):
    visitor = make_user("visitor", is_staff=False)
    response = admin_client.post("/admin/api/apitoken/add/", {"name": "x", "user": visitor.pk})
    assert "not an active staff user" in " ".join(response.context["adminform"].form.errors["user"])
    assert not ApiToken.objects.exists()
