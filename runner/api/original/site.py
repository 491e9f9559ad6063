"""The root dialect's API object: the original's routes, its ``{error}`` refusals.

No OpenAPI here: ``/api/`` is the documented API; this one answers as the original
did, for the clients written against it.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.renderers import JSONRenderer

from runner.api.errors import ApiError, invalid
from runner.api.original import inspect, jobs
from runner.api.original.access import root_auth, why_no_credentials


class CompactJSON(JSONRenderer):
    """JSON without spaces, as the original's server (Fastify) wrote it: clients that
    show an error body as text (the plugin does) show the same text."""

    json_dumps_params = {"separators": (",", ":")}


root_api = NinjaAPI(
    title="jeeves-runner (original dialect)",
    auth=root_auth(),
    urls_namespace="original",
    docs_url=None,
    openapi_url=None,
    renderer=CompactJSON(),
)


def _error(request: HttpRequest, status: int, message: str) -> HttpResponse:
    response = root_api.create_response(request, {"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="jeeves-runner"'
    return response


@root_api.exception_handler(ApiError)
def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return _error(request, exc.status, exc.message)


@root_api.exception_handler(DjangoValidationError)
def on_validation(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    return on_api_error(request, invalid(exc))


@root_api.exception_handler(NinjaValidationError)
def on_parameters(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    names = {str(error.get("loc", ("request",))[-1]): error["msg"] for error in exc.errors}
    return _error(request, 400, "; ".join(f"{name}: {text}" for name, text in names.items()))


@root_api.exception_handler(AuthenticationError)
def on_authentication(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    unsent = exc.message == "Unauthorized"  # ninja's word: no credentials it could use
    return _error(request, 401, why_no_credentials(request) if unsent else exc.message)


@root_api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, exc.message)


@root_api.exception_handler(ObjectDoesNotExist)
def on_missing(request: HttpRequest, exc: ObjectDoesNotExist) -> HttpResponse:
    return _error(request, 404, str(exc) or "not found")


@root_api.exception_handler(Http404)
def on_404(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, str(exc) or "not found")


root_api.add_router("", inspect.status_router)
root_api.add_router("", jobs.router)
root_api.add_router("", inspect.data_router)
