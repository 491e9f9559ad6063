"""Script jobs: build the command and environment, run it, and say how it ended."""

from __future__ import annotations

import os
import shlex
import signal
import threading
import weakref
from contextlib import ExitStack
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from jeeves_site.database import database_url
from jeeves_site.private_files import inherited_umask
from runner.api import run_tokens
from runner.execution import environment, live
from runner.execution.held import HeldProcess, hold_process
from runner.execution.inline_files import inline_prefix, inline_root
from runner.execution.process import (
    ProcessResult,
    RunningProcess,
    ScriptNotRunnable,
    inline_script_file,
    resolve_command,
    start_process,
)
from runner.execution.steps import Steps, drive
from runner.models import Run, RunOutcome, RunStatus, SourceType
from runner.validation import resolve_script_path, scripts_dir

# How many of stderr's last lines a failed run's error repeats.
ERROR_TAIL_LINES = 5


class Cancellation(threading.Event):
    """A cancel flag that remembers why it was set."""

    reason = "cancelled"

    def cancel(self, reason: str) -> None:
        """Ask the running job to end, recording ``reason`` as its error."""
        self.reason = reason
        self.set()


def runner_environment(run: Run) -> dict[str, str]:
    """The variables the runner always sets (``environment.SET`` and ``JR_*``); a job's
    env cannot override them."""
    db = settings.DATABASES["default"]
    database = tuple(db.get(key) for key in _DATABASE_KEYS)
    # A relative SQLite name resolves against the working directory, so it is part of the key.
    relative = db["ENGINE"].endswith("sqlite3") and not os.path.isabs(db["NAME"])
    where = os.getcwd() if relative else None
    shared = _shared_environment(
        database, where, str(settings.BASE_DIR), os.environ.get("PYTHONPATH")
    )
    return {"JR_JOB_ID": run.job_id, "JR_RUN_ID": str(run.pk), **shared}


_DATABASE_KEYS = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")


@lru_cache(maxsize=4)
def _shared_environment(
    database: tuple, where: str | None, base_dir: str, python_path: str | None
) -> dict[str, str]:
    """What ``runner_environment`` sets for every run alike, made once per database (and
    working directory ``where``, for a relative SQLite name): the URL resolves a file's
    path, system calls for every run otherwise (issue 12)."""
    db = dict(zip(_DATABASE_KEYS, database, strict=True))
    return {
        "JR_DB_PATH": db["NAME"] if db["ENGINE"].endswith("sqlite3") else "",
        "DATABASE_URL": database_url(db),
        "DJANGO_SETTINGS_MODULE": "jeeves_site.settings",
        "PYTHONPATH": os.pathsep.join(part for part in (base_dir, python_path) if part),
    }


def script_environment(run: Run) -> dict[str, str]:
    """The runner's environment without its secrets, then the job's env, then the
    runner's own variables (see ``runner.execution.environment``)."""
    return environment.with_job(_inheritable(), run.job.env, runner_environment(run))


_inherited: tuple[dict[bytes, bytes], dict[str, str]] = ({}, {})


def _inheritable() -> dict[str, str]:
    """``environment.inheritable(os.environ)``, made again only when ``os.environ``
    changed: reading it decodes every variable, and with the filtering that was a
    third of the CPU of preparing a run (issue 12). ``os.environ`` keeps its variables
    encoded in ``_data``, which one comparison in C checks; what is kept is made from
    the one copy compared, so a change by another thread meanwhile is never kept
    under the wrong key."""
    global _inherited
    raw, made = _inherited
    if os.environ._data != raw:  # type: ignore[attr-defined]
        raw = dict(os.environ._data)  # type: ignore[attr-defined]
        made = environment.inheritable(
            {os.fsdecode(name): os.fsdecode(value) for name, value in raw.items()}
        )
        _inherited = (raw, made)
    return made


def inline_command(text: str, path: str, interpreter: str = "") -> list[str]:
    """An inline script runs with the interpreter on its ``#!`` line, else the job's
    ``interpreter`` (node for the original runner's jobs), else bash."""
    first_line = text.split("\n", 1)[0]
    if first_line.startswith("#!") and first_line[2:].strip():
        return [*shlex.split(first_line[2:]), path]
    return [*(shlex.split(interpreter) or ["bash"]), path]


def file_command(path: str, interpreter: str = "") -> list[str]:
    """A file runs with its extension's ``runners`` entry; else, with the job's
    ``interpreter`` (the original's rule: everything unmapped ran with node); else
    directly when executable."""
    runners = settings.RUNNER.runners
    if interpreter and os.path.isfile(path) and os.path.splitext(path)[1] not in runners:
        return [*shlex.split(interpreter), os.path.abspath(path)]
    return resolve_command(path, runners)


def run_script_job(run: Run, cancel: threading.Event) -> RunOutcome:
    """Run the job's script once as a child process and describe the outcome."""
    return drive(script_job_steps(run, cancel))


class Launch:
    """What starting a script run takes besides its API token: the command, the working
    directory and the environment, made ahead of the run's instant (``prepare``) so that
    at the instant only the spawn is left (issue 12). It owns the run's inline-script
    file, removed by ``close``, or when a launch that was never used is collected."""

    def __init__(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        files: ExitStack,
        token_worker: str | None = None,
        held: HeldProcess | None = None,
    ):
        self.argv, self.cwd, self.env = argv, cwd, env
        self.token_worker = token_worker  # the worker whose run token ``env`` holds
        self.held = held  # its child, made ahead and held before exec (``hold_process``)
        self.close = weakref.finalize(self, files.close)

    def start(self, run: Run, **limits) -> RunningProcess | ProcessResult:
        """Start the child of started ``run``: release the held one if it was made for
        the worker that started the run, else spawn it now (``start_process``);
        ``limits`` are ``start_process``'s timeout, grace, tail and cancel."""
        if self.held is not None:
            if run.worker == self.token_worker:
                released = self.held.release(**limits)
                if released is not None:
                    return released
            self.held.discard()  # not for this worker: its descriptors go now, not at the end
        return start_process(
            self.argv,
            env=self.environment(run),
            cwd=self.cwd,
            # The runner's own processes run under umask 077; scripts get the operator's.
            umask=inherited_umask(),
            **limits,
        )

    def environment(self, run: Run) -> dict[str, str]:
        """The child's environment: ``env`` with the API token of started ``run`` for
        the worker that started it (made ahead when that worker prepared the launch)."""
        if run.worker == self.token_worker:
            return self.env
        return {**self.env, **run_tokens.environment_for(run)}


def prepare(run: Run, worker: str | None = None, hold_up_to: int = 0) -> Launch:
    """The launch of script run ``run`` (its job loaded); raises ``ScriptNotRunnable``.

    A worker prepares a run while it waits for its instant and hands the launch to
    ``script_job_steps`` as ``run.launch``; a run without one is prepared when it starts.
    Given the ``worker`` that will start the run (``completion.worker_name``), the run's
    API token for it is made now too, and with ``hold_up_to`` (how many children this
    process may hold at once, this one included) its child is spawned now and held before exec
    until the run starts (``held.hold_process``; discarded with the launch if it
    never does).
    """
    files = ExitStack()
    try:
        argv, cwd = _command(run.job, files)
        argv = [*argv, *run.job.args]
        env = script_environment(run)
        held = None
        if worker is not None:
            env.update(run_tokens.environment(run.pk, worker))
            if hold_up_to > 0:
                umask = inherited_umask()
                held = hold_process(argv, env=env, cwd=cwd, umask=umask, limit=hold_up_to)
        if held is not None:
            files.callback(held.discard)
        return Launch(argv, cwd, env, files, worker, held)
    except BaseException:
        files.close()
        raise


def script_job_steps(run: Run, cancel: threading.Event) -> Steps[RunOutcome]:
    """``run_script_job`` as steps (``runner.execution.steps``): it starts the child
    where it runs and yields the wait for it, so the wait may happen on another thread."""
    job = run.job
    launch = vars(run).pop("launch", None)
    if launch is None:
        try:
            launch = prepare(run)
        except ScriptNotRunnable as exc:
            return RunOutcome(status=RunStatus.ERROR, error=str(exc))
    try:
        started = launch.start(
            run,
            timeout_s=job.timeout_ms / 1000 if job.timeout_ms else None,
            grace_s=settings.RUNNER.kill_grace_ms / 1000,
            tail_lines=settings.RUNNER.output_tail_lines,
            cancel=cancel,
        )
        if isinstance(started, ProcessResult):
            result = started
        else:
            live.current().watch_output(run.pk, started.tails)
            result = yield started.wait
    finally:
        launch.close()
    return outcome_of(result, job.timeout_ms, getattr(cancel, "reason", "cancelled"))


def _command(job, stack: ExitStack) -> tuple[list[str], str]:
    if job.source_type == SourceType.INLINE:
        path = stack.enter_context(
            inline_script_file(
                job.script, ".script", parent=str(inline_root()), prefix=inline_prefix()
            )
        )
        return inline_command(job.script, path, job.interpreter), str(scripts_dir())
    path = resolve_script_path(job.script)
    return file_command(str(path), job.interpreter), str(Path(path).parent)


def outcome_of(result: ProcessResult, timeout_ms: int | None, cancel_reason: str) -> RunOutcome:
    """Map what the process did to the run's status and error text."""
    status, error = _status_and_error(result, timeout_ms, cancel_reason)
    return RunOutcome(
        status=status,
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        stdout_bytes=result.stdout_bytes,
        stderr_bytes=result.stderr_bytes,
        output_truncated=result.stdout_truncated or result.stderr_truncated,
        tokens=result.tokens,
        result_meta=result.result_meta,
        error=error,
    )


def _status_and_error(
    result: ProcessResult, timeout_ms: int | None, cancel_reason: str
) -> tuple[str, str]:
    if result.error:
        return RunStatus.ERROR, result.error
    if result.timed_out:
        return RunStatus.TIMEOUT, f"timed out after {timeout_ms} ms; its processes were ended"
    if result.cancelled:
        return RunStatus.ERROR, cancel_reason
    if result.exit_code == 0:
        return RunStatus.OK, ""
    if result.signal is not None:
        return RunStatus.ERROR, f"killed by {_signal_name(result.signal)}{_tail(result)}"
    return RunStatus.ERROR, f"exit code {result.exit_code}{_tail(result)}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(result: ProcessResult) -> str:
    lines = result.stderr.splitlines()[-ERROR_TAIL_LINES:]
    return (":\n" + "\n".join(lines)) if lines else ""
