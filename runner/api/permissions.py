"""Which Django permission each API operation needs, declared once, and the one check.

The API enforces the admin's own model permissions (``app.action_model``), so a
user sees and changes through the API exactly what the admin lets them see and
change; a bearer token acts as its user. Every route calls ``require(request,
OPERATION)`` first; any other entrance (a second API dialect, a view) does the
same with the same operation names. A user needs every permission listed for an
operation; superusers have them all.

Writes that may create or replace (a state value, an item) need both ``add`` and
``change``; deleting a job deletes its runs, so it needs ``delete`` on both, as the
admin asks when a job has runs. Starting a run needs the custom ``runner.run_job``,
which "change" does not imply: editing a job and running it are separate rights.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from runner.api.errors import ApiError
from runner.api.run_tokens import RunAccess

# operation -> the permissions it needs (all of them). ``status`` (health counts, no
# rows) needs only a working credential.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "status": (),
    "jobs.list": ("runner.view_job",),
    "jobs.detail": ("runner.view_job",),
    "jobs.create": ("runner.add_job",),
    "jobs.update": ("runner.change_job",),
    "jobs.enable": ("runner.change_job",),
    "jobs.disable": ("runner.change_job",),
    "jobs.script": ("runner.change_job",),
    "jobs.delete": ("runner.delete_job", "runner.delete_run"),
    "jobs.run": ("runner.run_job",),
    "runs.list": ("runner.view_run",),
    "runs.detail": ("runner.view_run",),
    "incidents.list": ("runner.view_incident",),
    "queues.list": ("queues.view_queue",),
    "queues.status": ("queues.view_queue",),
    "queues.peek": ("queues.view_queueitem",),
    "queues.enqueue": ("queues.add_queueitem",),
    "queues.dequeue": ("queues.change_queueitem",),
    "queues.done": ("queues.change_queueitem",),
    "queues.fail": ("queues.change_queueitem",),
    "state.namespaces": ("statestore.view_stateentry",),
    "state.values": ("statestore.view_stateentry",),
    "state.key": ("statestore.view_stateentry", "statestore.view_stateitem"),
    "state.set": ("statestore.add_stateentry", "statestore.change_stateentry"),
    "state.delete": ("statestore.delete_stateentry",),
    "state.item": ("statestore.view_stateitem",),
    "state.set_item": (
        "statestore.add_stateitem",
        "statestore.change_stateitem",
        "statestore.add_stateentry",  # an item creates its key's (empty) value row
    ),
    "state.delete_item": ("statestore.delete_stateitem",),
}

# A run's own token (JR_API_TOKEN, ``runner.api.run_tokens``) reaches these groups only.
RUN_TOKEN_GROUPS = frozenset({"state", "queues"})
RUN_TOKEN_SCOPE = (
    "a run's token (JR_API_TOKEN) may use only the state and queue operations, not this one"
)

# An enqueue into a queue that does not exist yet defines it (as the script client
# does); that also needs the right to add queues.
DEFINE_QUEUE = ("queues.add_queue",)


class Forbidden(ApiError):
    """403: the credential works, but its user lacks a permission the operation needs."""

    status = 403


def acting_user(request: HttpRequest) -> AbstractBaseUser:
    """The user a request acts as: the bearer token's owner, else the session's user.

    Call only after authentication (ninja's ``auth`` sets ``request.auth``).
    """
    auth: Any = getattr(request, "auth", None)
    if isinstance(auth, AbstractBaseUser):  # a staff session, or the loopback service user
        return auth
    user = getattr(auth, "user", None) if auth is not None else None
    return user if user is not None else request.user


def missing(user: AbstractBaseUser, operation: str) -> list[str]:
    """The permissions ``operation`` needs that ``user`` lacks (empty: allowed).

    KeyError for an operation the map does not declare, so a new route cannot
    forget to declare what it needs.
    """
    needed = OPERATIONS[operation]
    if not (user.is_active and user.is_staff):
        return list(needed) or ["staff status"]
    return [name for name in needed if not user.has_perm(name)]


def require(request: HttpRequest, operation: str, *extra: str) -> None:
    """Raise Forbidden (403) unless the acting user holds every permission ``operation``
    needs, plus ``extra`` ones (e.g. ``DEFINE_QUEUE``).

    A run's token is not a user: it may do the state and queue operations (creating
    a queue by its first enqueue included, as a script could through the client) and
    nothing else.
    """
    if isinstance(getattr(request, "auth", None), RunAccess):
        if operation.partition(".")[0] not in RUN_TOKEN_GROUPS:
            raise Forbidden(RUN_TOKEN_SCOPE)
        return
    user = acting_user(request)
    lacking = missing(user, operation)
    lacking += [name for name in extra if not user.has_perm(name) and name not in lacking]
    if lacking:
        raise Forbidden(
            f"permission denied: {operation} needs {', '.join(lacking)} "
            f"(user {user.get_username()!r} lacks it)"
        )
