"""The API object: its routers, its authentication and its error handling."""

from __future__ import annotations

from ninja import NinjaAPI

from runner.api import config, errors, incidents, jobs, queues, runs, state, status
from runner.api.auth import BearerToken, StaffSession, operators_only

api = NinjaAPI(
    title="jeeves-runner API",
    version="1",
    description=(
        "Jobs, runs, state and queues of the jeeves-runner. Authenticate with "
        "`Authorization: Bearer <token>` (`manage.py create_api_token NAME --user USERNAME`) "
        "or the admin "
        "session of a staff user (writes then need the X-CSRFToken header)."
    ),
    auth=[BearerToken(), StaffSession()],
    docs_decorator=operators_only,
    urls_namespace="api",
)
errors.install(api)
api.add_router("", status.router)
api.add_router("", jobs.router)
api.add_router("", runs.router)
api.add_router("", queues.router)
api.add_router("", state.router)
api.add_router("", config.router)
api.add_router("", incidents.router)
