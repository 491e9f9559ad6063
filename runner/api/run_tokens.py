"""Per-run API tokens: what a script in any language uses to reach state and queues.

Each script run gets ``JR_API_URL`` (this server's ``/api``) and ``JR_API_TOKEN``,
a token made for that run: stored as its SHA-256 like every API token, accepted
only while the run is ``running``, only by the state and queue operations, and
deleted when the run ends. A run that dies without cleaning up leaves a row that
no longer authenticates (its run is no longer running) and goes with the run.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from runner.api.models import RunToken
from runner.api.tokens import hash_secret
from runner.models import Run, RunStatus

# Not "jr_": one lookup decides which table a presented secret belongs to.
RUN_TOKEN_PREFIX = "jrr_"


@contextmanager
def issued_for(run: Run) -> Iterator[dict[str, str]]:
    """Make the run's token; yield ``{"JR_API_URL", "JR_API_TOKEN"}``; revoke it on exit."""
    secret = RUN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    hashed = hash_secret(secret)
    # A run resumed after its worker died gets a new token; the old one goes. Plain
    # statements in one transaction: every script run pays for them (issue 12).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_REVOKE_RUN_SQL, [run.pk])
        cursor.execute(_ISSUE_SQL, [run.pk, hashed, *_now()])
    try:
        yield {"JR_API_URL": settings.RUN_API_URL, "JR_API_TOKEN": secret}
    finally:
        with connection.cursor() as cursor:
            cursor.execute(_REVOKE_SQL, [hashed])


_TABLE = RunToken._meta.db_table
_REVOKE_RUN_SQL = f"DELETE FROM {_TABLE} WHERE run_id = %s"
_REVOKE_SQL = f"DELETE FROM {_TABLE} WHERE secret_hash = %s"
_ISSUE_SQL = f"INSERT INTO {_TABLE} (run_id, secret_hash, created_at) VALUES (%s, %s, %s)"


def _now() -> list:
    return [connection.ops.adapt_datetimefield_value(timezone.now())]


def is_run_secret(secret: str) -> bool:
    """True when ``secret`` has the form of a run's token (it may still be invalid)."""
    return secret.startswith(RUN_TOKEN_PREFIX)


def authenticate(secret: str) -> RunToken | None:
    """The token with this secret while its run is running, else None."""
    if not is_run_secret(secret):
        return None
    return (
        RunToken.objects.select_related("run")
        .filter(secret_hash=hash_secret(secret), run__status=RunStatus.RUNNING)
        .first()
    )
