"""The script client API: state, collections and queues for Python scripts.

::

    from runner.client import get_runner_client

    with get_runner_client() as jr:
        cursor = jr.get_state("inbox", "cursor")
        for item in jr.dequeue("emails", count=10, lease="5m"):
            handle(item.payload)
            jr.done(item.id)

It needs no set-up inside a script the runner starts (the environment carries the
database), and works from any Python process given ``DATABASE_URL``. Bad input
raises ``django.core.exceptions.ValidationError`` naming the argument, an unknown
item id raises ``ObjectDoesNotExist``, and ``done``/``fail`` for an item this
client no longer holds raise ``ClaimLost``; nothing is written in any of those cases.

Only this module's top level may be imported before Django is set up, so the
apps' modules are imported when the client is made.
"""

from __future__ import annotations

import os
import secrets
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Literal

from django.core.exceptions import ObjectDoesNotExist, ValidationError

from queues.exceptions import ClaimLost

if TYPE_CHECKING:
    from queues.operations import ClaimedItem

__all__ = [
    "ClaimLost",
    "ObjectDoesNotExist",
    "RunnerClient",
    "ValidationError",
    "get_runner_client",
]

SETTINGS_MODULE = "jeeves_site.settings"


def get_runner_client() -> RunnerClient:
    """A client on the runner's database, setting Django up first when the process has not."""
    setup_django()
    return RunnerClient()


def setup_django() -> None:
    """Configure Django from the environment unless this process already did."""
    from django.apps import apps

    if apps.ready:
        return
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
    # The client signs nothing, so a script needs no secret key; the settings
    # insist on one for PostgreSQL, so a throwaway one stands in while they load.
    borrowed = not (os.environ.get("DJANGO_SECRET_KEY") or os.environ.get("DJANGO_SECRET_KEY_FILE"))
    if borrowed:
        os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    try:
        django.setup()
    finally:
        if borrowed:
            os.environ.pop("DJANGO_SECRET_KEY", None)


class RunnerClient:
    """State, collections and queues on the runner's database, for one thread."""

    def __init__(self) -> None:
        from queues import operations as queues
        from statestore import operations as state

        self._state: ModuleType = state
        self._queues: ModuleType = queues
        self._claims: dict[int, str] = {}
        self._closed = False

    # -- state -------------------------------------------------------------------------------

    def get_state(self, namespace: str, key: str) -> Any:
        """The JSON value at (namespace, key); None when absent or expired."""
        return self._open()._state.get_state(namespace, key)

    def set_state(self, namespace: str, key: str, value: Any, ttl: str | None = None) -> None:
        """Store a JSON value; ``ttl`` (``90s``, ``60m``, ``24h``, ``30d``) makes it expire."""
        self._open()._state.set_state(namespace, key, value, ttl)

    def delete_state(self, namespace: str, key: str) -> None:
        """Remove the value at (namespace, key)."""
        self._open()._state.delete_state(namespace, key)

    # -- collections -------------------------------------------------------------------------

    def has_item(self, namespace: str, key: str, item_key: str) -> bool:
        """Whether the collection at (namespace, key) holds ``item_key``."""
        return self._open()._state.has_item(namespace, key, item_key)

    def get_item(self, namespace: str, key: str, item_key: str) -> Any:
        """The item's JSON value; None when absent, expired or stored without a value."""
        return self._open()._state.get_item(namespace, key, item_key)

    def set_item(
        self, namespace: str, key: str, item_key: str, value: Any = None, ttl: str | None = None
    ) -> None:
        """Add or replace an item (value optional, e.g. for "already seen" sets)."""
        self._open()._state.set_item(namespace, key, item_key, value, ttl)

    def delete_item(self, namespace: str, key: str, item_key: str) -> None:
        """Remove one item."""
        self._open()._state.delete_item(namespace, key, item_key)

    def count_items(self, namespace: str, key: str) -> int:
        """How many items the collection holds."""
        return self._open()._state.count_items(namespace, key)

    def prune_items(self, namespace: str, key: str, keep: int) -> int:
        """Keep the ``keep`` most recently updated items; return how many were deleted."""
        return self._open()._state.prune_items(namespace, key, keep)

    def list_item_keys(
        self,
        namespace: str,
        key: str,
        limit: int | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> list[str]:
        """Item keys by last update, newest first unless ``order="asc"``."""
        return self._open()._state.list_item_keys(namespace, key, limit, order)

    # -- queues ------------------------------------------------------------------------------

    def enqueue(
        self, queue: str, payload: Any, priority: int = 0, max_attempts: int | None = None
    ) -> int | None:
        """Add a JSON payload; its id, or None when the queue de-duplicated it."""
        return self._open()._queues.enqueue(queue, payload, priority, max_attempts)

    def dequeue(self, queue: str, count: int = 1, lease: int | float | str | None = None):
        """Claim up to ``count`` items (``.id``, ``.payload``, ``.attempts``) for ``lease``.

        ``lease`` is seconds or a duration string (default five minutes); an item
        neither done nor failed by then goes back to the queue.
        """
        items: list[ClaimedItem] = self._open()._queues.dequeue(queue, count, lease)
        self._claims.update((item.id, item.token) for item in items)
        return items

    def done(self, item_id: int) -> None:
        """Mark an item this client claimed as completed."""
        token = self._open()._token(item_id)
        try:
            self._queues.complete(item_id, token)
        finally:
            self._claims.pop(item_id, None)

    def fail(self, item_id: int, error: str | None = None) -> None:
        """Give an item back with ``error``: it is retried while attempts remain, else failed."""
        token = self._open()._token(item_id)
        try:
            self._queues.fail(item_id, token, error)
        finally:
            self._claims.pop(item_id, None)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release this thread's database connection; the client cannot be used afterwards."""
        from django.db import connection

        self._closed = True
        self._claims.clear()
        # Inside a transaction (a caller's atomic block) the connection is not ours to end.
        if not connection.in_atomic_block:
            connection.close()

    def __enter__(self) -> RunnerClient:
        return self._open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _token(self, item_id: int) -> str:
        # An item this client never claimed gets a token no claim has, so the
        # operation refuses it with the reason (unknown id, or held by no one here).
        return self._claims.get(self._queues.check_item_id(item_id), "")

    def _open(self) -> RunnerClient:
        if self._closed:
            raise RuntimeError("this runner client is closed; get a new one")
        return self
