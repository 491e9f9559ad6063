"""Session jobs: hand the job's prompt to the OpenClaw Gateway and follow the session.

The protocol is ``runner.execution.gateway``'s; this module adds what the runner knows: the
job's prompt, thinking level and timeout, the configured gateway and token, the run's
cancel flag, and the session key recorded on the run the moment the session exists,
so that a restarted scheduler can pick the run up again (``resume_session_run``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from jeeves_site.paths import is_file
from jeeves_site.secret_urls import redact_url
from runner import tokens
from runner.execution.completion import complete_run, worker_name
from runner.execution.gateway import GatewayClient, GatewayConfig
from runner.execution.prompts import PROMPT_EXTENSIONS, PromptError, resolve_prompt
from runner.execution.scripts import Cancellation
from runner.execution.session_follow import SessionOutcome, run_session
from runner.models import Job, JobType, Run, RunOutcome, RunStatus, SourceType
from runner.validation import resolve_script_path, scripts_dir

logger = logging.getLogger(__name__)

# The original runner's default when a session job names no timeout.
DEFAULT_TIMEOUT_S = 300.0
# One HTTP request to the gateway; module-level so tests can shorten it.
REQUEST_TIMEOUT_S = 10.0
# The gateway ends a session at its runTimeoutSeconds by itself, so a run resumed at or
# past its deadline is given this long to see how the session ended before giving up.
RESUME_GRACE_S = 30.0
NO_KEY_REASON = (
    "the runner stopped before this run recorded its gateway session key, so the session "
    "cannot be followed; if it was spawned it may still have run on the gateway"
)


class GatewayNotConfigured(Exception):
    """Session jobs cannot run: no usable gateway token; the message says what to set."""


class _Cancelled(Exception):
    """The run's cancel flag was set while it waited on the gateway."""


def run_session_job(run: Run, cancel: threading.Event) -> RunOutcome:
    """Run a session job once: spawn its session, follow it to its end, describe it."""
    return _follow(run, cancel)


def resume_session_run(
    run_id: int,
    worker: str | None = None,
    *,
    holder: str | None = None,
    cancel: Cancellation | None = None,
) -> Run | None:
    """Take over a session run left ``running`` by a stopped scheduler and finish it.

    For the scheduler's restart path, once it knows the run's worker is gone (the
    liveness check dispatches ``runner.tasks.resume_task`` for it). The run follows its
    session by the key recorded at spawn, keeping its original deadline, and is
    recorded and announced like any other run; a run without a recorded key is
    finished as an error saying so. Blocks while the session runs, so call it from a
    worker. With ``holder``, the run is taken over only from that (dead) worker, so a
    second delivery does not take it from the worker already following it. Setting
    ``cancel`` stops following, as for any run. None when the run is not a running
    session run (held by ``holder``) or another worker took it.
    """
    runs = Run.objects.select_related("job").filter(
        pk=run_id, status=RunStatus.RUNNING, job__type=JobType.SESSION
    )
    if holder is not None:
        runs = runs.filter(worker=holder)
    run = runs.first()
    if run is None or not _take_over(run, worker or worker_name()):
        return None
    key = (run.result_meta or {}).get("sessionKey")
    if not key:
        logger.warning("run %s cannot be resumed: no session key was recorded", run.pk)
        return complete_run(run, _unresumable, cancel)
    logger.info("resuming run %s of %s by its session key %s", run.pk, run.job_id, key)
    elapsed_s = _resumed_elapsed(run, timeout_s(run.job))
    return complete_run(run, partial(_follow, session_key=key, elapsed_s=elapsed_s), cancel)


def session_prompt(job: Job) -> str:
    """The task a session job hands to the gateway: its text, or its .md/.txt file's text.

    Relative file names are looked up in the scripts directory, as for script jobs.
    As in the original runner, a ``path`` job whose script names no .md/.txt file
    holds the prompt itself.
    """
    path = resolve_script_path(job.script)
    one_line = "\n" not in job.script.strip()
    if job.source_type != SourceType.PATH or not (
        one_line and path.suffix.lower() in PROMPT_EXTENSIONS
    ):
        return resolve_prompt(job.script, scripts_dir())
    if not is_file(path):
        raise PromptError(f"the prompt file {path} does not exist")
    return resolve_prompt(str(path), path.parent)


def gateway_config() -> GatewayConfig:
    """The configured gateway with its token; ``GatewayNotConfigured`` when there is none."""
    url = settings.RUNNER.gateway_url
    shown = redact_url(url)
    try:
        token = tokens.gateway_token()
    except tokens.TokenUnavailable as exc:
        raise GatewayNotConfigured(f"cannot use the OpenClaw gateway at {shown}: {exc}") from None
    if token is None:
        raise GatewayNotConfigured(
            f"no OpenClaw gateway token is configured, so session jobs cannot run: set "
            f"{tokens.GATEWAY_TOKEN_SETTINGS} (the gateway itself is gatewayUrl / "
            f"JEEVES_GATEWAY_URL, now {shown})"
        )
    return GatewayConfig(url, token, request_timeout_s=REQUEST_TIMEOUT_S)


def timeout_s(job: Job) -> float:
    """The job's timeout in seconds, or the session default when it names none."""
    return job.timeout_ms / 1000 if job.timeout_ms else DEFAULT_TIMEOUT_S


def _follow(
    run: Run, cancel: threading.Event, session_key: str | None = None, elapsed_s: float = 0.0
) -> RunOutcome:
    job = run.job
    try:
        task = session_prompt(job) if session_key is None else ""
        config = gateway_config()
    except (PromptError, GatewayNotConfigured) as exc:
        return RunOutcome(status=RunStatus.ERROR, error=str(exc))
    meta = dict(run.result_meta or {})
    if cancel.is_set():
        return _cancelled(cancel, meta)
    with GatewayClient(config) as client:
        try:
            outcome = run_session(
                client,
                task=task,
                label=job.id,
                thinking=job.thinking or None,
                timeout_s=timeout_s(job),
                clock=time.monotonic,
                sleep=_sleeper(cancel),
                on_spawned=partial(_record_session, run, meta),
                session_key=session_key,
                elapsed_s=elapsed_s,
            )
        except _Cancelled:
            return _cancelled(cancel, meta)
    return _run_outcome(outcome, meta, config.token or "")


def _sleeper(cancel: threading.Event) -> Callable[[float], None]:
    """A sleep that a cancel cuts short, ending the wait for the session at once."""

    def sleep(seconds: float) -> None:
        if cancel.wait(seconds):
            raise _Cancelled

    return sleep


def _record_session(run: Run, meta: dict, key: str, gateway_run_id: str | None) -> None:
    """Store the session key on the run before the first poll, for a resume after a crash."""
    meta.update(sessionKey=key, runId=gateway_run_id)
    run.result_meta = dict(meta)
    try:
        Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, worker=run.worker).update(
            result_meta=meta
        )
    except DatabaseError:
        # Only a resume after a crash needs the key now; the run itself goes on, and
        # its outcome records the key when it is finished.
        logger.warning("could not store session key %s on run %s yet", key, run.pk, exc_info=True)


def _run_outcome(outcome: SessionOutcome, meta: dict, token: str) -> RunOutcome:
    if outcome.session_key:
        meta["sessionKey"] = outcome.session_key
    if outcome.model:
        meta["model"] = outcome.model
    summary = _redact(outcome.summary, token)
    return RunOutcome(
        status=outcome.status,
        stdout=summary,
        stdout_bytes=len(summary.encode()),
        tokens=outcome.tokens,
        result_meta=meta or None,
        error=_redact(outcome.error or "", token),
    )


def _cancelled(cancel: threading.Event, meta: dict) -> RunOutcome:
    reason = getattr(cancel, "reason", "cancelled")
    key = meta.get("sessionKey")
    if key:
        reason += f"; the runner stopped following session {key}, which may still be running"
    return RunOutcome(status=RunStatus.ERROR, result_meta=meta or None, error=reason)


def _redact(text: str, token: str) -> str:
    # The client already keeps the token out of its errors; this guards the run record
    # against any path that might not.
    return text.replace(token, "[token]") if token else text


def _take_over(run: Run, worker: str) -> bool:
    """Make ``worker`` the holder of a running run, unless someone else got there first."""
    now = timezone.now()
    changed = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, worker=run.worker).update(
        worker=worker, heartbeat_at=now
    )
    if changed:
        run.worker, run.heartbeat_at = worker, now
    return bool(changed)


def _unresumable(run: Run, cancel: threading.Event) -> RunOutcome:
    return RunOutcome(status=RunStatus.ERROR, error=NO_KEY_REASON)


def _resumed_elapsed(run: Run, timeout: float) -> float:
    """How far into its timeout a resumed run is, leaving it RESUME_GRACE_S at least."""
    if run.started_at is None:
        return 0.0
    elapsed = (timezone.now() - run.started_at).total_seconds()
    return max(0.0, min(elapsed, timeout - RESUME_GRACE_S))
