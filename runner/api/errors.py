"""How the API says no: one JSON shape for every refusal.

``{"error": "<one line>", "fields": {"<field>": ["<reason>", ...]}}`` where
``fields`` appears only when the request itself was bad (400). The messages come
from the same validation layer the admin and the commands use.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from runner.validation import field_messages, summarize

# Where ninja says a bad parameter came from; the field name is what follows.
_PARAM_SOURCES = {"query", "path", "body", "header", "cookie"}


class ApiError(Exception):
    """A refusal with an HTTP status, a one-line message and, for bad input, the fields."""

    status = 400

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


def bad_input(fields: dict[str, str | list[str]]) -> ApiError:
    """A 400 naming each field and what is wrong with it."""
    listed = {
        name: [text] if isinstance(text, str) else list(text) for name, text in fields.items()
    }
    return ApiError(summarize(listed), listed)


def invalid(error: DjangoValidationError, model: type[models.Model] | None = None) -> ApiError:
    """The 400 for a domain ValidationError; with ``model``, refused choices list the valid."""
    return bad_input(field_messages(error, model))


def error_body(message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The JSON body of a refusal."""
    return {"error": message} if fields is None else {"error": message, "fields": fields}


def install(api: NinjaAPI) -> None:
    """Route every exception the API expects to its status and the one error shape."""

    def respond(request: HttpRequest, status: int, message: str, fields=None) -> HttpResponse:
        response = api.create_response(request, error_body(message, fields), status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="jeeves-runner"'
        return response

    @api.exception_handler(ApiError)
    def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return respond(request, exc.status, exc.message, exc.fields)

    @api.exception_handler(DjangoValidationError)
    def on_validation(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
        return on_api_error(request, invalid(exc))

    @api.exception_handler(NinjaValidationError)
    def on_parameters(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        fields: dict[str, list[str]] = {}
        for error in exc.errors:
            fields.setdefault(_parameter_name(error.get("loc", ())), []).append(error["msg"])
        return on_api_error(request, bad_input(fields))

    @api.exception_handler(AuthenticationError)
    def on_authentication(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        message = exc.message if exc.message != "Unauthorized" else _NO_CREDENTIALS
        return respond(request, 401, message)

    @api.exception_handler(HttpError)
    def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return respond(request, exc.status_code, exc.message)

    @api.exception_handler(ObjectDoesNotExist)
    def on_missing_object(request: HttpRequest, exc: ObjectDoesNotExist) -> HttpResponse:
        return respond(request, 404, str(exc) or "not found")

    @api.exception_handler(Http404)
    def on_404(request: HttpRequest, exc: Http404) -> HttpResponse:
        return respond(request, 404, str(exc) or "not found")


_NO_CREDENTIALS = (
    "authentication required: send 'Authorization: Bearer <token>' "
    "(create one with manage.py create_api_token NAME --user USERNAME) "
    "or log in to the admin as staff"
)
NO_CREDENTIALS = _NO_CREDENTIALS


def _parameter_name(location: tuple | list) -> str:
    names = [str(part) for part in location if str(part) not in _PARAM_SOURCES]
    return ".".join(names) or "request"
