"""The one validation layer for job definitions.

Field validators run through ``Job.full_clean()``, which every entrance uses (admin
form, ``add_job``, ``sync_jobs``, the API), so a refusal reads the same everywhere:
``ValidationError.message_dict`` maps each field to what is wrong with it.
"""

from __future__ import annotations

import re
import shlex
import zoneinfo
from pathlib import Path

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import EMPTY_VALUES
from django.db import models

from jeeves_site.echo import echoed, shortened
from jeeves_site.paths import expand_user, is_file, path_problem
from runner.cron import CronError, validate_cron
from runner.execution import environment
from runner.recurrence_text import RecurrenceError, canonical_text, looks_like_recurrence
from statestore.values import json_problem, replace_surrogates, text_problem

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # always fullmatch: "$" allows a final "\n"
# A year: longer is a mistake, and far longer overflows the timers that enforce it.
MAX_TIMEOUT_MS = 365 * 86_400_000
# Alerts and retries (issue 16): beyond these a value is a mistake, not a setting.
MAX_LATE_GRACE_S = 30 * 86_400
MAX_ALERT_AFTER_FAILURES = 10_000
MAX_REMINDER_HOURS = 365 * 24
MAX_SLOW_FACTOR = 1000.0
MAX_RETRIES = 10
MAX_RETRY_BACKOFF_S = 3600
# The longest schedules an entrance takes: a cron expression past a few hundred
# characters is a mistake (and would widen every list row that shows it); a
# recurrence object is JSON, with room for many rules.
MAX_CRON_CHARS = 1000
MAX_RECURRENCE_CHARS = 65_536
PROMPT_FILE_SUFFIXES = (".md", ".txt")
PROGRAM_FILE_SUFFIXES = (
    ".js", ".mjs", ".cjs", ".ts", ".py", ".sh", ".bash", ".rb", ".pl", ".php", ".ps1", ".exe",
)  # fmt: skip


def validate_schedule(value: str) -> None:
    """A 5- or 6-field cron expression (or @macro), or the original runner's recurrence
    object (RRStack JSON, see ``runner.recurrence``), that fires at least once, and no
    longer than ``MAX_CRON_CHARS`` / ``MAX_RECURRENCE_CHARS``."""
    recurrence_object = looks_like_recurrence(value)
    limit = MAX_RECURRENCE_CHARS if recurrence_object else MAX_CRON_CHARS
    if len(value) > limit:
        kind = "a recurrence object" if recurrence_object else "a cron expression"
        raise ValidationError(
            f"is {len(value):,} characters long; {kind} here is at most {limit:,}",
            code="invalid_schedule",
        )
    try:
        if recurrence_object:
            from runner import recurrence  # loads pydantic and dateutil: only when needed

            recurrence.validate(value)
        else:
            validate_cron(value)
    except (CronError, RecurrenceError) as exc:
        raise ValidationError(str(exc), code="invalid_schedule") from None


def normalized_schedule(value: str) -> str:
    """The schedule as stored: cron stripped; a recurrence object as compact JSON text."""
    text = value.strip()
    if looks_like_recurrence(text):
        try:
            return canonical_text(text)
        except RecurrenceError:
            return text  # left for validate_schedule to refuse
    return text


def validate_printable_name(value: str) -> None:
    """A name shown in lists, logs and terminals: no control characters (line breaks,
    tabs, terminal escapes) and no lone surrogates, which would forge or garble what an
    operator reads."""
    bad = next((ch for ch in value if not ch.isprintable()), None)
    if bad is not None:
        raise ValidationError(
            f"must not contain control characters (found \\x{ord(bad):02x})"
            if ord(bad) < 0x100
            else f"must not contain unprintable characters (found \\u{ord(bad):04x})"
        )


def validate_slow_factor(value: float) -> None:
    """0 (no slow alerts) or a finite factor from 1 to ``MAX_SLOW_FACTOR``."""
    if value != value or not (value == 0 or 1 <= value <= MAX_SLOW_FACTOR):  # NaN != NaN
        raise ValidationError(
            f"must be 0 (no slow alerts) or between 1 and {MAX_SLOW_FACTOR:g}",
            code="invalid_slow_factor",
        )


def validate_webhook_url(value: str) -> None:
    """An http(s) URL with a host (blank is allowed: the field is optional)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("must be an http:// or https:// URL", code="invalid_webhook_url")
    if any(ch.isspace() for ch in value):
        raise ValidationError("must not contain spaces", code="invalid_webhook_url")


def validate_interpreter(value: str) -> None:
    """A command line (split as a shell would) naming at least a program."""
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise ValidationError(f"cannot be split into words: {exc}", code="invalid") from None
    if value.strip() and not argv:
        raise ValidationError("names no program", code="invalid")


def validate_timezone(value: str) -> None:
    """Blank (the server's zone) or a known IANA zone name."""
    if not value:
        return
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a part too long
        raise ValidationError(
            f"{echoed(value)} is not a known IANA time zone (for example Europe/Berlin)",
            code="unknown_timezone",
        ) from None


def is_reserved_env_name(name: str) -> bool:
    """True for the variables the runner sets or removes (``runner.execution.environment``)."""
    return environment.is_reserved(name)


# Linux's MAX_ARG_STRLEN: one "NAME=value" or one argument longer than this (with its
# NUL) cannot be passed to a program; every run of such a job would fail to start.
MAX_EXEC_STRING_BYTES = 32 * 4096 - 1
# All of env and args together, well under the kernel's total (a quarter of the stack
# limit, 2 MiB by default), which the runner's own environment shares.
MAX_EXEC_TOTAL_BYTES = 1024 * 1024


def _exec_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def validate_env(value: object) -> None:
    """A JSON object of string names to string values, none of them reserved, each
    ``NAME=value`` within MAX_EXEC_STRING_BYTES and all within MAX_EXEC_TOTAL_BYTES."""
    if not isinstance(value, dict):
        raise ValidationError("must be a JSON object of strings", code="invalid_env")
    for name, text in value.items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise ValidationError(
                f"{echoed(name)} is not a valid variable name", code="invalid_env"
            )
        shown = shortened(name)  # a valid name may still be thousands of characters
        if not isinstance(text, str):
            raise ValidationError(
                f"the value of {shown} must be a string, not {type(text).__name__}",
                code="invalid_env",
            )
        if name in environment.REMOVED:
            raise ValidationError(
                f"{shown} is the runner's own and is never passed to scripts", code="reserved_env"
            )
        if is_reserved_env_name(name):
            raise ValidationError(
                f"{shown} is set by the runner and cannot be overridden", code="reserved_env"
            )
        if _exec_bytes(f"{name}={text}") > MAX_EXEC_STRING_BYTES:
            raise ValidationError(
                f"{shown} is longer than a program can be given ({MAX_EXEC_STRING_BYTES:,} "
                "bytes for NAME=value); put large data in a file or in state",
                code="invalid_env",
            )
    if sum(_exec_bytes(f"{name}={text}") for name, text in value.items()) > MAX_EXEC_TOTAL_BYTES:
        raise ValidationError(
            f"is larger than {MAX_EXEC_TOTAL_BYTES:,} bytes in all; put large data in a file",
            code="invalid_env",
        )


def validate_args(value: object) -> None:
    """A JSON list of strings."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("must be a JSON list of strings", code="invalid_args")
    for index, item in enumerate(value):
        if _exec_bytes(item) > MAX_EXEC_STRING_BYTES:
            raise ValidationError(
                f"item {index} is longer than a program can be given "
                f"({MAX_EXEC_STRING_BYTES:,} bytes); put large data in a file",
                code="invalid_args",
            )
    if sum(_exec_bytes(item) for item in value) > MAX_EXEC_TOTAL_BYTES:
        raise ValidationError(
            f"are larger than {MAX_EXEC_TOTAL_BYTES:,} bytes in all; put large data in a file",
            code="invalid_args",
        )


def validate_storable(values: dict[str, object]) -> None:
    """Refuse text or JSON that the two back-ends would not store alike (NUL, lone
    surrogates, nesting past the limit), naming each field; see ``statestore.values``.

    Runs before any check that touches the file system, where a NUL would raise.
    """
    errors = {}
    for name, value in values.items():
        problem = text_problem(value) if isinstance(value, str) else json_problem(value)
        if problem:
            errors[name] = problem
    if errors:
        raise ValidationError(errors)


def validate_empty_json_types(env: object, args: object) -> None:
    """Refuse an empty value of the wrong JSON type (``[]`` as env, ``{}`` as args, None).

    Django runs field validators only on non-empty values; ``Job.clean`` calls this
    so the empty ones are checked too.
    """
    errors = {}
    for name, value, validator in (("env", env, validate_env), ("args", args, validate_args)):
        if value in EMPTY_VALUES:
            try:
                validator(value)
            except ValidationError as exc:
                errors[name] = exc.messages
    if errors:
        raise ValidationError(errors)


def describe(error: ValidationError, model: type[models.Model] | None = None) -> str:
    """The error as one line naming each field: ``schedule: '61 * * * *' is not ...``.

    With ``model``, a refused choice also lists the valid ones.
    """
    return summarize(field_messages(error, model))


def summarize(fields: dict[str, list[str]]) -> str:
    """Field messages as one line: ``field: message; other: message``."""
    parts = [
        "; ".join(texts) if field == NON_FIELD_ERRORS else f"{field}: {'; '.join(texts)}"
        for field, texts in fields.items()
    ]
    return _one_line("; ".join(parts))


def field_messages(
    error: ValidationError, model: type[models.Model] | None = None
) -> dict[str, list[str]]:
    """Each field's messages (``__all__`` for the rest); with ``model``, a refused
    choice also lists the valid ones. What the CLI, sync files and the API all show."""
    if not hasattr(error, "error_dict"):
        return {NON_FIELD_ERRORS: list(error.messages)}
    return {
        field: [_describe_one(item, field, model) for item in errors]
        for field, errors in error.error_dict.items()
    }


def _describe_one(error: ValidationError, field: str, model: type[models.Model] | None) -> str:
    text = " ".join(_message(item) for item in error.error_list)
    if error.code == "invalid_choice" and model is not None:
        choices = [str(value) for value, _ in model._meta.get_field(field).choices or ()]
        text = f"{text.rstrip('.')} (one of: {', '.join(choices)})"
    return text


def _message(error: ValidationError) -> str:
    """One error's text, the refused value in it ``echoed`` (Django's choice and length
    messages hold ``%(value)r`` whole)."""
    params = error.params or {}
    if "value" in params:
        params = {**params, "value": _Echoed(params["value"])}
    return str(error.message % params) if params else str(error.message)


class _Echoed:
    """A value that ``%r`` and ``%s`` show as ``echoed`` does."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return echoed(self.value)

    __str__ = __repr__


def _one_line(text: str) -> str:
    # A refused value may hold a lone surrogate, which no terminal or log can encode.
    return replace_surrogates(" ".join(text.split()))


def scripts_dir() -> Path:
    """Where relative script paths are looked up."""
    return Path(settings.RUNNER.scripts_dir or settings.BASE_DIR)


def resolve_script_path(script: str) -> Path:
    """The absolute path a path job's ``script`` names."""
    path = expand_user(script.strip())
    return path if path.is_absolute() else scripts_dir() / path


def _names_a_file(script: str, suffixes: tuple[str, ...]) -> bool:
    text = script.strip()
    return "\n" not in text and text.lower().endswith(suffixes)


def validate_script(job_type: str, source_type: str, script: str) -> None:
    """What ``script`` must be for a job of this type and source.

    A file that does not exist yet is no refusal (the original's job files name
    scripts added later): ``script_warnings`` reports it, and the run fails.
    """
    if not script.strip():
        raise ValidationError({"script": "is empty"})
    if job_type == "session" and _names_a_file(script, PROGRAM_FILE_SUFFIXES):
        raise ValidationError(
            {"script": "a session job takes a prompt or a .md/.txt file, not a program file"}
        )
    if job_type != "session" and source_type == "path":
        problem = path_problem(script.strip())
        if problem:
            raise ValidationError({"script": problem})


def script_warnings(job_type: str, source_type: str, script: str) -> list[str]:
    """``script: ...`` lines for a script or prompt file that does not exist (yet)."""
    if source_type != "path" or not script.strip():
        return []
    if job_type == "session" and not _names_a_file(script, PROMPT_FILE_SUFFIXES):
        return []  # a path session job whose script names no .md/.txt file: the prompt
    path = resolve_script_path(script)
    if is_file(path):
        return []
    kind = "prompt file" if job_type == "session" else "script"
    return [f"script: {kind} not found: {path}; saved anyway, its runs fail until it exists"]
