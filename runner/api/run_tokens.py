"""Per-run API tokens: what a script in any language uses to reach state and queues.

Each script run gets ``JR_API_URL`` (this server's ``/api``) and ``JR_API_TOKEN``,
``jrr_<run id>.<mac>``: an HMAC-SHA256, keyed by ``SECRET_KEY``, of the run's id and
the worker holding it. Nothing is stored: issuing is pure computation and there is
nothing to revoke, because every script run would otherwise pay for two writes, and
on SQLite those take the write lock a burst of starts needs too (issue 12). A token
is accepted only while its run is ``running`` for that same worker, so it stops
working when the run ends or another worker takes the run over, and a new
``SECRET_KEY`` invalidates every token of the runs running at that moment.
"""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from runner.api import own_listener
from runner.models import Run, RunStatus

# Not "jr_": one lookup decides which kind of token a presented secret is.
RUN_TOKEN_PREFIX = "jrr_"
_SALT = "jeeves-runner.run-token"
# A run id as it is written (no sign, no leading zero, ASCII digits, fits a bigint),
# a dot, and the unpadded URL-safe base64 of a SHA-256 MAC (43 characters).
_TOKEN = re.compile(r"jrr_([1-9][0-9]{0,18})\.([A-Za-z0-9_-]{43})")
_MAX_RUN_ID = 2**63 - 1


@dataclass(frozen=True)
class RunAccess:
    """``request.auth`` for a run's own token: the run it belongs to, and no user."""

    run_id: int


def token_for(run_id: int, worker: str) -> str:
    """The token of run ``run_id`` while ``worker`` (host:pid) holds it. No query."""
    return f"{RUN_TOKEN_PREFIX}{run_id}.{_mac(run_id, worker)}"


def environment_for(run: Run) -> dict[str, str]:
    """``{"JR_API_URL", "JR_API_TOKEN"}`` for a script of ``run``, which must have been
    started (``Run.start`` sets its ``worker``). No query, nothing to revoke."""
    return environment(run.pk, run.worker)


def environment(run_id: int, worker: str) -> dict[str, str]:
    """``environment_for`` the run ``run_id`` while ``worker`` holds it: what a worker
    can make ahead of the start for a run it is about to start. Empty while the URL is
    a loopback address not served by this user alone (``own_listener``): another user
    listening there would collect the token."""
    if not _served(settings.RUN_API_URL):
        return {}
    return {"JR_API_URL": settings.RUN_API_URL, "JR_API_TOKEN": token_for(run_id, worker)}


_served = own_listener.Cached()


def is_run_secret(secret: str) -> bool:
    """True when ``secret`` has the form of a run's token (it may still be invalid)."""
    return secret.startswith(RUN_TOKEN_PREFIX)


def authenticate(secret: str) -> RunAccess | None:
    """The run's access while the run ``secret`` names is running for the worker the
    token was made for; else None. A malformed secret costs no query, a well-formed one
    one small query (the run's status and worker)."""
    match = _TOKEN.fullmatch(secret)
    if match is None or int(match[1]) > _MAX_RUN_ID:
        return None
    run_id = int(match[1])
    row = Run.objects.filter(pk=run_id).values_list("status", "worker").first()
    if row is None or row[0] != RunStatus.RUNNING:
        return None
    if not constant_time_compare(match[2], _mac(run_id, row[1])):
        return None
    return RunAccess(run_id)


def _mac(run_id: int, worker: str) -> str:
    # The id has no ":", so "<id>:<worker>" names exactly one (run, worker) pair.
    mac = _keyed(_SALT, settings.SECRET_KEY).copy()
    mac.update(f"{run_id}:{worker}".encode())
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


@lru_cache(maxsize=4)
def _keyed(salt: str, secret: str) -> hmac.HMAC:
    """Django's ``salted_hmac(salt, …, secret, algorithm="sha256")`` before its message,
    keyed once per secret: deriving the key for every run was a tenth of the CPU of
    preparing one (issue 12)."""
    return salted_hmac(salt, b"", secret, algorithm="sha256")
