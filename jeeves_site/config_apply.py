"""The configuration over HTTP: the effective config as a document, and applying a patch.

Shapes as the original's (karmaniverous/jeeves ``createConfigQueryHandler`` and
``createConfigApplyHandler``, served by jeeves-runner at ``GET /config`` and
``POST /config/apply``): each function returns ``(status, body)``; the HTTP layer
(``runner.api.config``) only serialises it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from jeeves_site import config_live
from jeeves_site.echo import echoed
from jeeves_site.jsonpath_query import JsonPathRefused, find_values
from jeeves_site.runner_config import (
    DEFAULT_FILE_NAME,
    MAX_CONFIG_FILE_BYTES,
    SCHEMA,
    issues_of,
    migrate_deprecated,
)
from jeeves_site.secret_urls import REDACTED, redact_urls_in
from jeeves_site.small_files import read_small_file

CONFIG_FILE_MODE = 0o600
# Keys the original leaves out while unset (zod ``optional()``) or writes as null.
_OPTIONAL = {
    ("gatewayApiKey",),
    ("jobsDir",),
    ("notifications", "slackTokenPath"),
    ("notifications", "webhookUrl"),
    ("logging", "file"),
}
_NULLABLE = {("notifications", "defaultOnFailure"), ("notifications", "defaultOnSuccess")}


def effective_document() -> dict[str, Any]:
    """This process's settings with camelCase keys, as config.json spells them.

    Secrets are redacted: ``gatewayApiKey``, ``notifications.webhookUrl``, and in every
    other URL a password and password-like query values (``redact_urls_in``). A path
    the file gave relative is shown resolved; ``dbPath`` unset shows the SQLite file
    in use (on PostgreSQL, ``DATABASE_URL`` wins and ``dbPath`` is unused).
    """
    document = SCHEMA.dump_python(settings.RUNNER, by_alias=True, mode="json")
    document.pop("configFile", None)
    database = settings.DATABASES["default"]
    if not document["dbPath"] and database["ENGINE"].endswith("sqlite3"):
        document["dbPath"] = str(database["NAME"])  # the default file in the data directory
    for keys in _OPTIONAL | _NULLABLE:
        section = document
        for key in keys[:-1]:
            section = section[key]
        if section.get(keys[-1]) == "":
            if keys in _NULLABLE:
                section[keys[-1]] = None
            else:
                section.pop(keys[-1])
    if document.get("gatewayApiKey"):
        document["gatewayApiKey"] = REDACTED
    if document["notifications"].get("webhookUrl"):  # its path or query may be the secret
        document["notifications"]["webhookUrl"] = REDACTED
    return redact_urls_in(document)  # a password in redisUrl, gatewayUrl, baseUrl...


def query_config(path: str | None) -> tuple[int, Any]:
    """``GET /config[?path=JSONPath]``: the document, or ``{result: [...], count}``.

    An unusable JSONPath is 400 ``{error}``, as in the original: the bounded plain
    grammar of ``jeeves_site.jsonpath_query``, so no query can run for long.
    """
    document = effective_document()
    if not path:
        return 200, document
    try:
        result = find_values(path, document)
    except JsonPathRefused as exc:
        return 400, {"error": f"invalid JSONPath {echoed(path)}: the path {exc}"}
    return 200, {"result": result, "count": len(result)}


def config_file_target() -> Path:
    """The file ``apply`` writes: the one in use, else ``<data dir>/config.json``."""
    current = config_live.current_file()
    return Path(current) if current else Path(settings.DATA_DIR) / DEFAULT_FILE_NAME


def apply_config(body: Any) -> tuple[int, Any]:
    """``POST /config/apply {patch, replace?}``: validate, merge, write, apply.

    The patch is deep-merged into the file (objects merge, anything else is
    replaced), or replaces it with ``replace: true``. The result is validated by
    the same schema as at start (unknown keys refused, deprecated keys migrated),
    written atomically with mode 0600, and re-read by this process at once and by
    the scheduler and workers at their next check. Answers ``{applied: true,
    config, restartRequired: [keys]}``, or 400 ``{error: "Config validation
    failed", issues}`` with zod-shaped issues, 400 ``{error}`` for a bad body, or
    500 ``{error: "Failed to write config: ..."}`` as the original when the file cannot
    be written.
    """
    if not isinstance(body, dict) or not isinstance(body.get("patch"), dict):
        return 400, {"error": "the body must be a JSON object with 'patch', a JSON object"}
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        return 400, {"error": "'replace' must be true or false"}
    target = config_file_target()
    with _locked(target):
        existing = {} if replace else _read_object(target)
        merged, _ = migrate_deprecated(deep_merge(existing, body["patch"]))
        issues = issues_of(merged)
        if issues:
            return 400, {"error": "Config validation failed", "issues": issues}
        try:
            write_private_atomically(target, json.dumps(merged, indent=2) + "\n")
        except OSError as exc:
            return 500, {"error": f"Failed to write config: {target}: {exc.strerror}"}
    if settings.RUNNER.config_file != str(target):
        settings.RUNNER = dataclasses.replace(settings.RUNNER, config_file=str(target))
    waiting = config_live.refresh_runner_config(force=True)
    return 200, {"applied": True, "config": effective_document(), "restartRequired": waiting}


def deep_merge(target: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """Objects merge key by key; arrays and anything else are replaced (the original's rule)."""
    merged = dict(target)
    for key, value in source.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_small_file(path, MAX_CONFIG_FILE_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_private_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a 0600 temporary file renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), CONFIG_FILE_MODE)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def _locked(path: Path):
    """One apply at a time per file, across processes (two merges must not lose one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, CONFIG_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
