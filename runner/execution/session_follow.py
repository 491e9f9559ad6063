"""Follow an agent session to its end: spawn it (or resume it), poll the gateway with
backoff until it ends or the job's timeout passes, and say how it ended. Never raises
for gateway trouble: every failure is a ``SessionOutcome`` with a specific error."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from runner.execution.gateway import (
    NO_STATUS,
    GatewayClient,
    GatewayError,
    SessionStatus,
    SpawnedSession,
    one_line,
    transcript_complete,
)

logger = logging.getLogger("runner.gateway")

FIRST_POLL_S = 2.5
BACKOFF_FACTOR = 1.6
MAX_POLL_INTERVAL_S = 15.0

Status = Literal["ok", "error", "timeout"]
# Session states that end a session, and the run status each gives; others are live.
_ENDINGS: dict[str, Status] = {"done": "ok", "error": "error", "timeout": "timeout"}


@dataclass(frozen=True)
class SessionOutcome:
    """How a session run ended; every field is safe to store and show."""

    status: Status
    tokens: int | None
    session_key: str | None
    summary: str
    error: str | None
    model: str | None = None


def run_session(
    client: GatewayClient,
    *,
    task: str,
    label: str,
    thinking: str | None,
    timeout_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    on_spawned: Callable[[str, str | None], None] | None = None,
    session_key: str | None = None,
    elapsed_s: float = 0.0,
) -> SessionOutcome:
    """Spawn a session (or resume ``session_key``) and follow it until it ends.

    Never raises for gateway trouble: every failure becomes a ``SessionOutcome`` with a
    specific ``error``. ``on_spawned(key, run_id)`` lets the caller persist the key so a
    restarted scheduler can resume by passing it back as ``session_key``, with
    ``elapsed_s`` (the time the run has already taken) so it keeps its deadline.
    """
    follower = _Follower(client, clock, sleep, timeout_s, elapsed_s)
    if session_key is None:
        spawned = follower.spawn(task, label, thinking)
        if isinstance(spawned, SessionOutcome):
            return spawned
        session_key = spawned.session_key
        logger.info("spawned session %s (run %s) for %s", session_key, spawned.run_id, label)
        if on_spawned is not None:
            on_spawned(session_key, spawned.run_id)
    else:
        logger.info("resuming session %s for %s", session_key, label)
    return follower.follow(session_key)


class _Follower:
    """The polling half of ``run_session``: one deadline, one backoff schedule."""

    def __init__(
        self,
        client: GatewayClient,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        timeout_s: float,
        elapsed_s: float = 0.0,
    ) -> None:
        self.client = client
        self.clock = clock
        self.sleep = sleep
        self.timeout_s = timeout_s
        self.started = clock() - elapsed_s
        self.last_seen: SessionStatus | None = None
        self.last_error: str | None = None
        self.deadline = self.started + timeout_s

    def spawn(self, task: str, label: str, thinking: str | None) -> SpawnedSession | SessionOutcome:
        while True:
            try:
                return self.client.spawn(task, label, thinking, self.timeout_s)
            except GatewayError as exc:
                # Only a 429 is retried: after a timeout or 5xx the gateway may already
                # have started the session, and a second spawn would run the task twice.
                failure = self._rate_limit_failure(exc) if exc.status_code == 429 else str(exc)
                if failure is not None:
                    return _failed(None, f"could not start the session: {failure}")

    def follow(self, key: str) -> SessionOutcome:
        interval = wait = FIRST_POLL_S
        while (remaining := self.deadline - self.clock()) > 0:
            self.sleep(min(wait, remaining))
            interval = wait = min(interval * BACKOFF_FACTOR, MAX_POLL_INTERVAL_S)
            try:
                outcome = self._check(key)
            except GatewayError as exc:
                outcome, wait = self._after_poll_error(key, exc, wait)
            if outcome is not None:
                return outcome
        return self._deadline_passed(key)

    def _after_poll_error(
        self, key: str, exc: GatewayError, wait: float
    ) -> tuple[SessionOutcome | None, float]:
        """End the run, or keep polling after ``wait`` seconds (longer for a 429)."""
        if exc.status_code == 429:
            failure = self._rate_limit_failure(exc, sleep=False)
            if failure is not None:
                return _failed(key, failure), wait
            return None, exc.retry_after if exc.retry_after is not None else wait
        if not exc.transient:
            return _failed(key, str(exc)), wait
        # The session runs on in the gateway; a blip while watching it is no reason to
        # fail the run, so keep trying until the deadline and report the error then.
        self.last_error = str(exc)
        logger.warning("polling session %s failed, will retry: %s", key, exc)
        return None, wait

    def _rate_limit_failure(self, exc: GatewayError, *, sleep: bool = True) -> str | None:
        """Wait out a 429 when the deadline allows (None), else say why not."""
        wait = exc.retry_after if exc.retry_after is not None else FIRST_POLL_S
        if self.clock() + wait > self.deadline:
            return f"{exc}, which is past the job's timeout of {self.timeout_s:g} s"
        logger.warning("gateway rate limit: waiting %g s", wait)
        if sleep:
            self.sleep(wait)
        return None

    def _check(self, key: str) -> SessionOutcome | None:
        active_minutes = math.ceil((self.clock() - self.started) / 60) + 1
        row = self.client.find_session(key, active_minutes=active_minutes)
        self.last_error = None
        if row is not None:
            logger.debug("session %s is %s", key, row.status)
            self.last_seen = row
        # OpenClaw's own docs list rows without a status; such a row (or none at all)
        # leaves the transcript as the only word on whether the session is done.
        if row is None or row.status == NO_STATUS:
            return self._from_transcript(key, row)
        return self._from_status(row)

    def _from_status(self, row: SessionStatus) -> SessionOutcome | None:
        if row.status not in _ENDINGS:
            return None
        key = row.session_key
        error = {
            "done": None,
            "error": f"session {key} ended with an error: {row.error or 'no detail given'}",
            "timeout": f"session {key} hit its run timeout on the gateway",
        }[row.status]
        summary = _summary(key, row.status, self._took(), row.total_tokens, row.model)
        return SessionOutcome(
            _ENDINGS[row.status], row.total_tokens, key, summary, error, row.model
        )

    def _from_transcript(self, key: str, row: SessionStatus | None) -> SessionOutcome | None:
        messages = self.client.history(key)
        if not transcript_complete(messages):
            logger.debug("session %s has no end state and an unfinished transcript", key)
            return None
        tokens, model = (row.total_tokens, row.model) if row else (None, None)
        summary = _summary(key, "complete (from its transcript)", self._took(), tokens, model)
        last = messages[-1]
        if last.get("stopReason") in ("error", "aborted"):
            error = f"session {key} ended: {last.get('errorMessage') or last['stopReason']}"
            return SessionOutcome("error", tokens, key, summary, error, model)
        return SessionOutcome("ok", tokens, key, summary, None, model)

    def _deadline_passed(self, key: str) -> SessionOutcome:
        limit = f"the job's timeout of {self.timeout_s:g} s passed"
        if self.last_error is not None:
            error = f"{self.last_error}; gave up when {limit} (session {key} may still be running)"
            return _failed(key, error)
        error = f"session {key} was still running when {limit}; the runner stopped waiting"
        seen = self.last_seen or SessionStatus(key, NO_STATUS)
        summary = _summary(key, "timed out", self._took(), seen.total_tokens, seen.model)
        return SessionOutcome("timeout", seen.total_tokens, key, summary, error, seen.model)

    def _took(self) -> float:
        return self.clock() - self.started


def _failed(key: str | None, error: str) -> SessionOutcome:
    return SessionOutcome("error", None, key, one_line(f"session failed: {error}"), error)


def _summary(key: str, how: str, took: float, tokens: int | None, model: str | None) -> str:
    used = f"{tokens} tokens" if tokens is not None else "tokens unknown"
    on = f" on {model}" if model else ""
    return f"session {key} {how} after {took:.0f} s, {used}{on}"
