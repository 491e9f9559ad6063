"""Fixtures for the HTTP API: a token, and clients that send it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from runner.api.tokens import create_token


class ApiClient:
    """Django's test client speaking JSON to /api/ with a bearer token (or none)."""

    def __init__(self, token: str | None = None, prefix: str = "/api", **client_kw) -> None:
        self.client = Client(**client_kw)
        self.prefix = prefix
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None, **kw):
        """Send ``body`` as JSON (or ``raw`` bytes as they are) to ``{prefix}{path}``."""
        data = raw if raw is not None else (b"" if body is None else json.dumps(body))
        send = getattr(self.client, method)
        headers = {**self.headers, **kw.pop("headers", {})}
        if method in ("get", "delete") and raw is None and body is None:
            return send(f"{self.prefix}{path}", headers=headers, **kw)
        return send(
            f"{self.prefix}{path}",
            data=data,
            content_type="application/json",
            headers=headers,
            **kw,
        )

    def get(self, path: str, **kw):
        return self.request("get", path, **kw)

    def post(self, path: str, body: Any = None, **kw):
        return self.request("post", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw):
        return self.request("put", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw):
        return self.request("patch", path, body, **kw)

    def delete(self, path: str, **kw):
        return self.request("delete", path, **kw)


def make_user(username: str, *perms: str, superuser: bool = False, **fields: Any):
    """A staff user holding ``perms`` (``"app.codename"``), or a superuser."""
    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(username, password="x", **fields)
    user = User.objects.create_user(username, password="x", **{"is_staff": True, **fields})
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def token_owner(db):
    """The superuser the ``token`` fixture's token acts as."""
    return make_user("token-owner", superuser=True)


@pytest.fixture
def token(token_owner) -> str:
    """The secret of a fresh, active API token of a superuser."""
    return create_token("tests", token_owner)[1]


@pytest.fixture
def api(token) -> ApiClient:
    """A client authenticated with ``token``."""
    return ApiClient(token)


@pytest.fixture
def anonymous(db) -> ApiClient:
    """A client that sends no credentials."""
    return ApiClient()
