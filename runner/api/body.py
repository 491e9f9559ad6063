"""Reading a request's JSON body, refusing what is too big or not JSON.

Bodies are read here rather than by ninja's schemas so that each field is checked
once, by the domain's own validation (``Job.full_clean``, the state and queue
operations), and refused with the same words as in the admin and the commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from runner.api.errors import ApiError, PayloadTooLarge, bad_input
from statestore.values import MAX_JSON_DEPTH, json_loads, json_problem


class UnsupportedMediaType(ApiError):
    status = 415


# Bodies are read as JSON whatever the Content-Type says (curl -d sends a form type),
# except these, which Django would parse as form uploads first.
_REFUSED_TYPES = ("multipart/",)


def raw_body(request: HttpRequest) -> bytes:
    """The request's bytes; 413 above ``DATA_UPLOAD_MAX_MEMORY_SIZE``."""
    try:
        return request.body
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raise PayloadTooLarge(
            f"the request body is larger than the limit of {limit} bytes (JEEVES_MAX_REQUEST_BYTES)"
        ) from None


def json_body(request: HttpRequest) -> Any:
    """The request's body as JSON; 413 when too big, 415 for a multipart upload, 400 when
    empty, not UTF-8, not JSON, or nested past the recursion limit."""
    if request.content_type.startswith(_REFUSED_TYPES):
        raise UnsupportedMediaType(
            f"the body must be JSON (Content-Type: application/json), not {request.content_type}"
        )
    raw = raw_body(request)
    if not raw.strip():
        raise bad_input({"body": "is empty; send a JSON object"})
    try:
        return json_loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise bad_input({"body": "is not UTF-8 text"}) from None
    except json.JSONDecodeError as exc:
        raise bad_input(
            {"body": f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"}
        ) from None
    except RecursionError:
        raise bad_input({"body": f"is nested more than {MAX_JSON_DEPTH} levels deep"}) from None
    except ValueError as exc:  # NaN or Infinity
        raise bad_input({"body": f"is not valid JSON: {exc}"}) from None


def json_object(
    request: HttpRequest, allowed: Iterable[str] | None = None, required: bool = True
) -> dict[str, Any]:
    """The body as a JSON object; with ``allowed``, any other key is refused by name.

    With ``required=False`` an empty body reads as ``{}``.
    """
    if not required and not raw_body(request).strip():
        return {}
    data = json_body(request)
    if not isinstance(data, dict):
        raise bad_input({"body": f"must be a JSON object, not {_json_type(data)}"})
    if allowed is not None:
        known = set(allowed)
        unknown = sorted(set(data) - known)
        if unknown:
            hint = f"unknown field (known: {', '.join(sorted(known))})"
            raise bad_input(dict.fromkeys(unknown, hint))
    problems = {name: json_problem(value) for name, value in data.items()}
    problems = {name: problem for name, problem in problems.items() if problem}
    if problems:
        raise bad_input(problems)
    return data


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
