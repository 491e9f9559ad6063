"""The one validation layer for job definitions.

Field validators run through ``Job.full_clean()``, which every entrance uses (admin
form, ``add_job``, ``sync_jobs``, the API), so a refusal reads the same everywhere:
``ValidationError.message_dict`` maps each field to what is wrong with it.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import EMPTY_VALUES
from django.db import models

from runner.cron import CronError, validate_cron
from runner.execution import environment

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PROMPT_FILE_SUFFIXES = (".md", ".txt")
PROGRAM_FILE_SUFFIXES = (
    ".js", ".mjs", ".cjs", ".ts", ".py", ".sh", ".bash", ".rb", ".pl", ".php", ".ps1", ".exe",
)  # fmt: skip


def validate_schedule(value: str) -> None:
    """A 5- or 6-field cron expression (or @macro) that fires at least once."""
    try:
        validate_cron(value)
    except CronError as exc:
        raise ValidationError(str(exc), code="invalid_schedule") from None


def validate_timezone(value: str) -> None:
    """Blank (the server's zone) or a known IANA zone name."""
    if not value:
        return
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"'{value}' is not a known IANA time zone (for example Europe/Berlin)",
            code="unknown_timezone",
        ) from None


def is_reserved_env_name(name: str) -> bool:
    """True for the variables the runner sets or removes (``runner.execution.environment``)."""
    return environment.is_reserved(name)


def validate_env(value: object) -> None:
    """A JSON object of string names to string values, none of them reserved."""
    if not isinstance(value, dict):
        raise ValidationError("must be a JSON object of strings", code="invalid_env")
    for name, text in value.items():
        if not ENV_NAME.match(name):
            raise ValidationError(f"'{name}' is not a valid variable name", code="invalid_env")
        if not isinstance(text, str):
            raise ValidationError(
                f"the value of {name} must be a string, not {type(text).__name__}",
                code="invalid_env",
            )
        if name in environment.REMOVED:
            raise ValidationError(
                f"{name} is the runner's own and is never passed to scripts", code="reserved_env"
            )
        if is_reserved_env_name(name):
            raise ValidationError(
                f"{name} is set by the runner and cannot be overridden", code="reserved_env"
            )


def validate_args(value: object) -> None:
    """A JSON list of strings."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("must be a JSON list of strings", code="invalid_args")


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
    text = " ".join(error.messages)
    if error.code == "invalid_choice" and model is not None:
        choices = [str(value) for value, _ in model._meta.get_field(field).choices or ()]
        text = f"{text.rstrip('.')} (one of: {', '.join(choices)})"
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def scripts_dir() -> Path:
    """Where relative script paths are looked up."""
    return Path(settings.RUNNER.scripts_dir or settings.BASE_DIR)


def resolve_script_path(script: str) -> Path:
    """The absolute path a path job's ``script`` names."""
    path = Path(script.strip()).expanduser()
    return path if path.is_absolute() else scripts_dir() / path


def _names_a_file(script: str, suffixes: tuple[str, ...]) -> bool:
    text = script.strip()
    return "\n" not in text and text.lower().endswith(suffixes)


def validate_script(job_type: str, source_type: str, script: str) -> None:
    """What ``script`` must be for a job of this type and source."""
    if not script.strip():
        raise ValidationError({"script": "is empty"})
    if job_type == "session":
        _validate_session_script(source_type, script)
    elif source_type == "path":
        path = resolve_script_path(script)
        if not path.is_file():
            raise ValidationError({"script": f"script file not found: {path}"})


def _validate_session_script(source_type: str, script: str) -> None:
    if _names_a_file(script, PROGRAM_FILE_SUFFIXES):
        raise ValidationError(
            {"script": "a session job takes a prompt or a .md/.txt file, not a program file"}
        )
    if source_type == "path":
        if not _names_a_file(script, PROMPT_FILE_SUFFIXES):
            raise ValidationError({"script": "a session prompt file must end in .md or .txt"})
        path = resolve_script_path(script)
        if not path.is_file():
            raise ValidationError({"script": f"prompt file not found: {path}"})
