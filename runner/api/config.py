"""``GET /config`` and ``POST /config/apply``, under ``/api/`` and at the root.

One implementation (``jeeves_site.config_apply``) answers both: ``/api/config``
is ours (behind the API's authentication, in the OpenAPI schema), ``/config`` and
``/config/apply`` are the original runner's paths, where its CLI (``jeeves-runner
config``, ``config apply``) and its OpenClaw plugin (``runner_config``,
``runner_config_apply``) call them. Both need an authenticated caller allowed to
see or change the configuration: a superuser, or a user with the permission
``api.view_config`` (reading) or ``api.change_config`` (applying). An API token
that belongs to no user acts with the API's full powers, as for every route.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from ninja import Router
from ninja.errors import AuthenticationError, HttpError

from jeeves_site.config_apply import apply_config, query_config
from runner.api.body import json_body, raw_body
from runner.api.errors import ApiError
from runner.api.original.access import root_auth, why_no_credentials

router = Router(tags=["config"])

VIEW_PERMISSION = "api.view_config"
CHANGE_PERMISSION = "api.change_config"


def allowed(principal: Any, permission: str) -> bool:
    """Whether the authenticated caller (a user, or an API token) holds ``permission``."""
    user = (
        principal if isinstance(principal, AbstractBaseUser) else getattr(principal, "user", None)
    )
    if user is None:
        return principal is not None
    return user.is_active and (user.is_superuser or user.has_perm(permission))


def _refuse(permission: str) -> HttpError:
    return HttpError(
        403, f"only a superuser or a user with the permission {permission} may do this"
    )


@router.get("/config", summary="The effective configuration, or a JSONPath query of it")
def get_config(request: HttpRequest, path: str | None = None) -> JsonResponse:
    """The settings in effect (camelCase keys, secrets redacted); with ``path``,
    ``{result, count}``."""
    if not allowed(request.auth, VIEW_PERMISSION):
        raise _refuse(VIEW_PERMISSION)
    status, body = query_config(path)
    return JsonResponse(body, status=status, safe=False)


@router.post("/config/apply", summary="Validate, merge, write and apply a config patch")
def post_config_apply(request: HttpRequest) -> JsonResponse:
    """``{patch, replace?}`` → ``{applied: true, config, restartRequired}``, or 400
    with ``issues``."""
    if not allowed(request.auth, CHANGE_PERMISSION):
        raise _refuse(CHANGE_PERMISSION)
    status, body = apply_config(json_body(request))
    return JsonResponse(body, status=status)


# --- the original's root paths ------------------------------------------------------


def _root_principal(request: HttpRequest) -> tuple[Any, JsonResponse | None]:
    """The caller, by the root dialect's authentication (``root_auth``: a token, a staff
    session, or the loopback opening); or the ``{error}`` answer refusing it."""
    try:
        principal = next(filter(None, (auth(request) for auth in root_auth())), None)
    except AuthenticationError as exc:
        return None, JsonResponse({"error": exc.message}, status=401)
    except HttpError as exc:
        return None, JsonResponse({"error": exc.message}, status=exc.status_code)
    if principal is None:
        return None, JsonResponse({"error": why_no_credentials(request)}, status=401)
    return principal, None


def _forbidden(permission: str) -> JsonResponse:
    return JsonResponse({"error": _refuse(permission).message}, status=403)


@csrf_exempt  # StaffSession checks CSRF for a session; a bearer token needs none
@require_GET
def root_config(request: HttpRequest) -> JsonResponse:
    """``GET /config[?path=]``, the original's path and shapes."""
    principal, refusal = _root_principal(request)
    if refusal is not None:
        return refusal
    if not allowed(principal, VIEW_PERMISSION):
        return _forbidden(VIEW_PERMISSION)
    status, body = query_config(request.GET.get("path"))
    return JsonResponse(body, status=status, safe=False)


@csrf_exempt
@require_POST
def root_config_apply(request: HttpRequest) -> JsonResponse:
    """``POST /config/apply {patch, replace?}``, the original's path and shapes."""
    principal, refusal = _root_principal(request)
    if refusal is not None:
        return refusal
    if not allowed(principal, CHANGE_PERMISSION):
        return _forbidden(CHANGE_PERMISSION)
    try:
        body = json.loads(raw_body(request) or b"null")
    except ApiError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status)
    except ValueError:
        return JsonResponse({"error": "the body is not valid JSON"}, status=400)
    status, answer = apply_config(body)
    return JsonResponse(answer, status=status)
