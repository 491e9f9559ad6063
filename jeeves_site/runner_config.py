"""The runner's own configuration: one declared schema, the JSON file, env vars.

Precedence, lowest first: the schema's defaults, the JSON config file (the
original jeeves-runner's ``config.json``, camelCase keys) named by
``JEEVES_CONFIG`` or else ``<data dir>/config.json`` when it exists, then
``JEEVES_*`` environment variables. The schema is declared once, as pydantic
dataclasses: the snake_case field is what code reads (``settings.RUNNER.port``),
its camelCase alias is the file's key. The original's deprecated keys are
migrated first (``gateway.{url,tokenPath}``, ``log``, ``cursorCleanupIntervalMs``),
each with a warning, as the original does (jeeves-runner core/config.ts).

Problems are collected rather than raised, so that ``manage.py check`` reports
every one with where it came from (``runner.checks``); a bad value falls back to
its default. Unknown keys are warnings (the original ignores them); bad values are
errors. Relative paths in the file are relative to the file's directory.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_serializer,
)
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from jeeves_site.echo import echoed, shortened
from jeeves_site.paths import expand_user, is_dir, path_problem
from jeeves_site.secret_urls import redact_url
from jeeves_site.small_files import MIB, read_small_file

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
MAX_DISPATCH_LEAD_MS = 5_000
DEFAULT_FILE_NAME = "config.json"
MAX_CONFIG_FILE_BYTES = MIB  # the file init writes is 1 KB

_SCHEMA = ConfigDict(
    alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="forbid"
)


def _none_is_empty(value: Any) -> Any:
    """The original writes ``null`` for an unset channel; ours reads it as ``""``."""
    return "" if value is None else value


def _os_text(value: str) -> str:
    """Text the operating system can take: no NUL, nothing ``os.fsencode`` cannot encode.

    Paths, commands, hosts and URLs go to system calls; a NUL (or a lone surrogate
    outside the range that stands for undecodable bytes) would make each of them raise
    wherever it is used, long after the file was accepted.
    """
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\u0000)")
    try:
        os.fsencode(value)
    except UnicodeEncodeError:
        raise ValueError("must not contain a lone surrogate; write valid Unicode") from None
    return value


def _host(value: str) -> str:
    """An address or host name: no spaces or control characters (gunicorn would bind a
    name that resolves nowhere, or the check for a loopback address would not match)."""
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError(
            f"{value!r} is not an address or host name (it holds a space or a control character)"
        )
    return value


def _optional_http_url(value: str) -> str:
    """Blank, or an http(s) URL (a webhook: ``runner.webhook``)."""
    return _http_url(value) if value else value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{redact_url(value)!r} is not an http(s) URL")
    return value


def Range(
    ge: float | None = None, gt: float | None = None, le: float | None = None
) -> AfterValidator:
    """A range the config file and environment are held to.

    Only when validating with ``context={"ranges": True}`` (the loader, config
    apply): code and tests may set any value through ``dataclasses.replace``.
    """

    def check(value: float, info: ValidationInfo) -> float:
        if not (info.context or {}).get("ranges"):
            return value
        if ge is not None and value < ge:
            raise PydanticCustomError("greater_than_equal", "must be at least {ge}", {"ge": ge})
        if gt is not None and value <= gt:
            raise PydanticCustomError("greater_than", "must be more than {gt}", {"gt": gt})
        if le is not None and value > le:
            raise PydanticCustomError("less_than_equal", "must be at most {le}", {"le": le})
        return value

    return AfterValidator(check)


def _refuse_bool(value: Any) -> Any:
    """``true`` is not a number, though Python would take it for 1."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _split_command(value: Any) -> Any:
    """``"npx tsx"`` → ``["npx", "tsx"]``: the original splits a runner on whitespace."""
    return value.split() if isinstance(value, str) else value


def default_interpreters() -> dict[str, list[str]]:
    """The built-in extension -> interpreter map; ``runners`` in config extends it."""
    return {".py": [sys.executable], ".sh": ["bash"], ".js": ["node"]}


def _with_default_runners(value: dict[str, list[str]]) -> dict[str, list[str]]:
    normalized = {"." + ext.lstrip(".").lower(): argv for ext, argv in value.items()}
    return default_interpreters() | normalized


Text = Annotated[str, AfterValidator(_os_text)]
OptionalText = Annotated[Text, BeforeValidator(_none_is_empty)]
HttpUrl = Annotated[Text, AfterValidator(_http_url)]
OptionalHttpUrl = Annotated[
    Text, BeforeValidator(_none_is_empty), AfterValidator(_optional_http_url)
]
Command = Annotated[list[Text], BeforeValidator(_split_command), Field(min_length=1)]
Runners = Annotated[dict[Text, Command], AfterValidator(_with_default_runners)]
LogLevel = Annotated[
    Literal["trace", "debug", "info", "warn", "error", "fatal"],
    BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
]


def _repr_without_url_secrets(self) -> str:
    """The dataclass repr with every URL's password redacted (``diffsettings``, logs)."""
    fields = (f for f in dataclasses.fields(self) if f.repr)
    shown = ", ".join(f"{f.name}={_shown(getattr(self, f.name))!r}" for f in fields)
    return f"{type(self).__name__}({shown})"


def _shown(value: Any) -> Any:
    return redact_url(value) if isinstance(value, str) else value


@dataclass(frozen=True, config=_SCHEMA)
class NotificationsConfig:
    """Slack notification settings (``notifications`` in config.json)."""

    slack_token_path: OptionalText = ""
    default_on_failure: OptionalText = ""
    default_on_success: OptionalText = ""
    slack_api_url: HttpUrl = "https://slack.com/api"
    timeout_s: Annotated[float, BeforeValidator(_refuse_bool), Range(gt=0, le=60)] = 5.0
    # Ours: where every job's alerts go as JSON when the job names no webhook of its own.
    webhook_url: OptionalHttpUrl = Field("", repr=False)  # may carry a secret in its query

    __repr__ = _repr_without_url_secrets


@dataclass(frozen=True, config=_SCHEMA)
class LogConfig:
    """Logging settings (``logging`` in config.json; the original's deprecated ``log``)."""

    level: LogLevel = "info"
    file: OptionalText = ""


@dataclass(frozen=True)
class GatewaySettings:
    """The gateway settings grouped, as code written before ``gatewayUrl`` reads them."""

    url: str
    token_path: str
    api_key: str = dataclasses.field(repr=False)


@dataclass(frozen=True, config=_SCHEMA)
class RunnerConfig:
    """Every runner setting, read by code at run time through ``settings.RUNNER``.

    Field names are snake_case; config.json uses their camelCase aliases. The
    first block is the original runner's, the rest are ours.
    """

    port: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=1, le=65535)] = 1937
    host: Annotated[Text, AfterValidator(_host)] = Field("127.0.0.1", min_length=1)
    db_path: OptionalText = ""
    max_concurrency: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=1, le=1000)] = 128
    run_retention_days: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=1)] = 30
    state_cleanup_interval_ms: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=1000)] = (
        60_000
    )
    shutdown_grace_ms: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=0)] = 30_000
    reconcile_interval_ms: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=100)] = 1_000
    notifications: NotificationsConfig = dataclasses.field(default_factory=NotificationsConfig)
    logging: LogConfig = dataclasses.field(default_factory=LogConfig)
    gateway_url: HttpUrl = "http://127.0.0.1:18789"
    gateway_api_key: OptionalText = Field("", repr=False)
    runners: Runners = dataclasses.field(default_factory=default_interpreters)
    jobs_dir: OptionalText = ""
    # Ours.
    gateway_token_path: OptionalText = ""
    kill_grace_ms: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=0)] = 5_000
    output_tail_lines: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=1)] = 100
    heartbeat_interval_ms: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=100)] = 5_000
    liveness_timeout_ms: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=1000)] = 30_000
    pending_redispatch_ms: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=1000)] = 30_000
    missed_fire_window_ms: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=0)] = 86_400_000
    missed_fire_max: Annotated[int, BeforeValidator(_refuse_bool), Range(ge=1)] = 100
    dispatch_lead_ms: Annotated[
        int, BeforeValidator(_refuse_bool), Range(ge=0, le=MAX_DISPATCH_LEAD_MS)
    ] = 250
    scripts_dir: OptionalText = ""
    base_url: OptionalText = ""
    # The root dialect without a token for loopback callers (runner.api.original.access).
    api_loopback_anonymous: bool = False
    broker: Literal["orm", "redis"] = "orm"
    redis_url: Text = "redis://127.0.0.1:6379/0"
    # Where the settings came from; set by the loader, never by the file.
    config_file: str = ""

    @field_serializer("runners")
    def _runners_as_in_the_original(self, runners: dict[str, list[str]]) -> dict[str, Any]:
        """``{"py": "/usr/bin/python3"}``: the original's shape, a list where a part has spaces."""
        return {
            ext.lstrip("."): " ".join(argv) if not any(" " in a for a in argv) else argv
            for ext, argv in runners.items()
        }

    __repr__ = _repr_without_url_secrets

    @property
    def bind(self) -> str:
        """The address the web server listens on (our name for ``host``)."""
        return self.host

    @property
    def gateway(self) -> GatewaySettings:
        """``gatewayUrl``, ``gatewayTokenPath`` and ``gatewayApiKey`` together."""
        return GatewaySettings(self.gateway_url, self.gateway_token_path, self.gateway_api_key)

    @property
    def log(self) -> LogConfig:
        """The ``logging`` section under the original's deprecated name."""
        return self.logging


SCHEMA = TypeAdapter(RunnerConfig)
_RANGES = {"ranges": True}
# Keys of the file that name a file or directory, resolved against the file's directory.
_PATH_FIELDS = (
    ("db_path",),
    ("jobs_dir",),
    ("scripts_dir",),
    ("gateway_token_path",),
    ("logging", "file"),
    ("notifications", "slack_token_path"),
)
# Keys the loader sets itself; in a file they are unknown.
_INTERNAL_KEYS = ("configFile", "config_file")

# Environment variable -> key path it overrides.
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "JEEVES_PORT": ("port",),
    "JEEVES_BIND": ("host",),
    "JEEVES_DB_PATH": ("dbPath",),
    "JEEVES_MAX_CONCURRENCY": ("maxConcurrency",),
    "JEEVES_RUN_RETENTION_DAYS": ("runRetentionDays",),
    "JEEVES_STATE_CLEANUP_INTERVAL_MS": ("stateCleanupIntervalMs",),
    "JEEVES_SHUTDOWN_GRACE_MS": ("shutdownGraceMs",),
    "JEEVES_RECONCILE_INTERVAL_MS": ("reconcileIntervalMs",),
    "JEEVES_KILL_GRACE_MS": ("killGraceMs",),
    "JEEVES_OUTPUT_TAIL_LINES": ("outputTailLines",),
    "JEEVES_HEARTBEAT_INTERVAL_MS": ("heartbeatIntervalMs",),
    "JEEVES_LIVENESS_TIMEOUT_MS": ("livenessTimeoutMs",),
    "JEEVES_PENDING_REDISPATCH_MS": ("pendingRedispatchMs",),
    "JEEVES_MISSED_FIRE_WINDOW_MS": ("missedFireWindowMs",),
    "JEEVES_MISSED_FIRE_MAX": ("missedFireMax",),
    "JEEVES_DISPATCH_LEAD_MS": ("dispatchLeadMs",),
    "JEEVES_SCRIPTS_DIR": ("scriptsDir",),
    "JEEVES_JOBS_DIR": ("jobsDir",),
    "JEEVES_BASE_URL": ("baseUrl",),
    "JEEVES_BROKER": ("broker",),
    "JEEVES_API_LOOPBACK_ANONYMOUS": ("apiLoopbackAnonymous",),
    "JEEVES_REDIS_URL": ("redisUrl",),
    "JEEVES_GATEWAY_URL": ("gatewayUrl",),
    "JEEVES_GATEWAY_TOKEN_PATH": ("gatewayTokenPath",),
    "JEEVES_SLACK_TOKEN_PATH": ("notifications", "slackTokenPath"),
    "JEEVES_SLACK_DEFAULT_ON_FAILURE": ("notifications", "defaultOnFailure"),
    "JEEVES_SLACK_DEFAULT_ON_SUCCESS": ("notifications", "defaultOnSuccess"),
    "JEEVES_SLACK_API_URL": ("notifications", "slackApiUrl"),
    "JEEVES_WEBHOOK_URL": ("notifications", "webhookUrl"),
    "JEEVES_LOG_LEVEL": ("logging", "level"),
    "JEEVES_LOG_FILE": ("logging", "file"),
}


class Problem(NamedTuple):
    """One thing wrong with the configuration, with where it is (a key path or a variable)."""

    where: str
    message: str
    level: Literal["error", "warning"] = "error"


# --- deprecated keys --------------------------------------------------------------


def migrate_deprecated(raw: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Rewrite the original's deprecated keys to today's; return ``(raw, [(key, notice)])``.

    As the original's ``migrateDeprecatedKeys``: ``gateway.url`` → ``gatewayUrl`` and
    ``log`` → ``logging`` unless the new key is set. ``gateway.tokenPath``, which the
    original dropped, stays honoured here as ``gatewayTokenPath`` (ours; a token file).
    ``cursorCleanupIntervalMs`` → ``stateCleanupIntervalMs``; ``bind`` (our old name)
    → ``host``; ``bindAddress`` (read by the original's ``getBindAddress`` from the
    same file) wins over ``host``, as there.
    """
    data = dict(raw)
    notices: list[tuple[str, str]] = []
    gateway = data.get("gateway")
    if isinstance(gateway, dict):
        data.pop("gateway")
        if "url" in gateway:
            data.setdefault("gatewayUrl", gateway["url"])
        if "tokenPath" in gateway:
            data.setdefault("gatewayTokenPath", gateway["tokenPath"])
            notices.append(
                ("gateway.tokenPath", "is deprecated: use gatewayTokenPath (or gatewayApiKey)")
            )
        notices.append(("gateway", "is deprecated: use gatewayUrl and gatewayApiKey"))
    for old, new in (
        ("log", "logging"),
        ("cursorCleanupIntervalMs", "stateCleanupIntervalMs"),
        ("bind", "host"),
    ):
        if old in data:
            value = data.pop(old)
            data.setdefault(new, value)
            notices.append((old, f"is deprecated: use {new}"))
    if "bindAddress" in data:
        data["host"] = data.pop("bindAddress")
    return data, notices


# --- loading ---------------------------------------------------------------------


def config_file_path(environ: Mapping[str, str] = os.environ, data_dir: Path | None = None) -> str:
    """``JEEVES_CONFIG``, else ``<data dir>/config.json`` when it exists, else ``""``."""
    named = environ.get("JEEVES_CONFIG", "")
    if named:
        return named
    if data_dir is not None and (data_dir / DEFAULT_FILE_NAME).is_file():
        return str(data_dir / DEFAULT_FILE_NAME)
    return ""


def load_runner_config(
    environ: Mapping[str, str] = os.environ,
    data_dir: Path | None = None,
    path: str | None = None,
) -> tuple[RunnerConfig, list[Problem]]:
    """Build the configuration; return it with the problems found, each with its source.

    ``path`` names the file to read instead of ``config_file_path()``'s choice.
    """
    path = config_file_path(environ, data_dir) if path is None else path
    problems: list[Problem] = []
    raw = read_config_file(path, problems) if path else {}
    raw, notices = migrate_deprecated(raw)
    problems += [Problem(f"{path}: {key}", text, "warning") for key, text in notices]
    origins = _overlay_environment(raw, environ)
    config, found = validate_config(raw, path, origins)
    problems += found
    config = _resolve_paths(config, origins, path)
    return dataclasses.replace(config, config_file=path), problems


# path -> the file's signature when this process last read it (see config_live).
LOADED_SIGNATURES: dict[str, tuple | None] = {}


def file_signature(path: str) -> tuple | None:
    """What changes when the file is rewritten: mtime, size, inode; None if absent."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def read_config_file(path: str, problems: list[Problem]) -> dict[str, Any]:
    """The file's JSON object; ``{}`` with a problem when it is unreadable or not an object."""
    LOADED_SIGNATURES[path] = file_signature(path)  # before reading: a later write is seen
    try:
        data = json.loads(read_small_file(path, MAX_CONFIG_FILE_BYTES).decode("utf-8"))
    except OSError as exc:
        problems.append(
            Problem(f"JEEVES_CONFIG={path}", f"cannot read the config file: {exc.strerror}")
        )
        return {}
    except UnicodeDecodeError:
        problems.append(Problem(path, "not valid JSON: the file is not UTF-8 text"))
        return {}
    except json.JSONDecodeError as exc:
        at = f"at line {exc.lineno} column {exc.colno}"
        problems.append(Problem(path, f"not valid JSON: {exc.msg} {at}"))
        return {}
    if not isinstance(data, dict):
        problems.append(Problem(path, "the config file must hold a JSON object"))
        return {}
    return data


def _overlay_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple, str]:
    """Environment variables win over the file; return which key each one set."""
    origins: dict[tuple, str] = {}
    for name, keys in ENV_KEYS.items():
        value = environ.get(name, "")
        if value == "":
            continue
        target = raw
        for key in keys[:-1]:
            section = target.get(key)
            target[key] = dict(section) if isinstance(section, dict) else {}
            target = target[key]
        target[keys[-1]] = value
        origins[keys] = name
    return origins


def validate_config(
    raw: dict[str, Any], source: str = "", origins: Mapping[tuple, str] | None = None
) -> tuple[RunnerConfig, list[Problem]]:
    """Validate a config document; each bad value is reported and falls back to its default.

    Unknown keys are warnings (the original ignores them). Returns the config and
    the problems, each located by its key path (``notifications.defaultOnFailure``)
    or by the environment variable that supplied it.
    """
    data = copy.deepcopy({k: v for k, v in raw.items() if k not in _INTERNAL_KEYS})
    problems = [
        Problem(_where(source, (key,), origins), "unknown setting, ignored", "warning")
        for key in raw
        if key in _INTERNAL_KEYS
    ]
    for _ in range(10):  # each pass drops the values it refused; nesting is shallow
        try:
            config = SCHEMA.validate_python(data, context=_RANGES)
        except ValidationError as exc:
            for error in exc.errors():
                problems.append(_problem(error, source, origins))
                _drop(data, error["loc"])
            continue
        crossed = _cross_field_checks(config)
        if crossed:
            config = dataclasses.replace(
                config,
                heartbeat_interval_ms=RunnerConfig.heartbeat_interval_ms,
                liveness_timeout_ms=RunnerConfig.liveness_timeout_ms,
            )
        return config, problems + [Problem(_where(source, p, origins), m) for p, m in crossed]
    return RunnerConfig(), problems


def issues_of(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Every problem of a config document, shaped like zod's issues (``POST /config/apply``).

    ``{"code", "path": [keys], "message"}``; unknown keys are refused here, as
    ``code: "unrecognized_keys"``.
    """
    issues = []
    data = {k: v for k, v in raw.items() if k not in _INTERNAL_KEYS}
    for key in raw:
        if key in _INTERNAL_KEYS:
            issues.append(
                {
                    "code": "unrecognized_keys",
                    "keys": [key],
                    "path": [],
                    "message": f"Unrecognized key: {key!r}",
                }
            )
    try:
        config = SCHEMA.validate_python(data, context=_RANGES)
    except ValidationError as exc:
        for error in exc.errors():
            issues.append(_issue(error))
        return issues
    for problem_path, message in _cross_field_checks(config):
        issues.append({"code": "custom", "path": list(problem_path), "message": message})
    return issues


_ZOD_CODES = {
    "int_parsing": "invalid_type",
    "int_type": "invalid_type",
    "int_from_float": "invalid_type",
    "float_parsing": "invalid_type",
    "float_type": "invalid_type",
    "string_type": "invalid_type",
    "list_type": "invalid_type",
    "dict_type": "invalid_type",
    "dataclass_type": "invalid_type",
    "greater_than_equal": "too_small",
    "greater_than": "too_small",
    "too_short": "too_small",
    "string_too_short": "too_small",
    "less_than_equal": "too_big",
    "less_than": "too_big",
    "literal_error": "invalid_value",
}


def _issue(error: Mapping[str, Any]) -> dict[str, Any]:
    path = [p for p in error["loc"] if not isinstance(p, str) or p]
    if error["type"] == "unexpected_keyword_argument":
        return {
            "code": "unrecognized_keys",
            "keys": [path[-1]],
            "path": path[:-1],
            "message": f"Unrecognized key: {path[-1]!r}",
        }
    code = _ZOD_CODES.get(error["type"], "custom")
    return {"code": code, "path": path, "message": _message(error)}


def _problem(error: Mapping[str, Any], source: str, origins: Mapping[tuple, str] | None) -> Problem:
    where = _where(source, tuple(error["loc"]), origins)
    if error["type"] == "unexpected_keyword_argument":
        return Problem(where, "unknown setting, ignored", "warning")
    return Problem(where, _message(error))


def _message(error: Mapping[str, Any]) -> str:
    """Our wording for a pydantic error: what the value is (``echoed``: one short line)
    and what was expected."""
    kind, ctx = error["type"], error.get("ctx") or {}
    value = echoed(error.get("input"))
    if kind in ("int_parsing", "int_type", "int_from_float", "float_parsing", "float_type"):
        return f"{value} is not {'an integer' if kind.startswith('int') else 'a number'}"
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return f"{value} must be {'at least' if 'ge' in ctx else 'more than'} {bound}"
    if kind in ("less_than_equal", "less_than"):
        return f"{value} must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind == "string_type":
        return f"{value} is not a string"
    if kind in ("dict_type", "dataclass_type"):
        return "must be a JSON object"
    if (
        kind in ("list_type", "too_short")
        and len(error["loc"]) >= 2
        and error["loc"][0] == "runners"
    ):
        return "must be a command string or a non-empty list of strings"
    if kind == "literal_error":
        return f"{value}: must be {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "string_too_short":
        return "must not be empty"
    return error["msg"]


def _cross_field_checks(config: RunnerConfig) -> list[tuple[tuple[str, ...], str]]:
    if config.heartbeat_interval_ms * 2 > config.liveness_timeout_ms:
        return [
            (
                ("livenessTimeoutMs",),
                "must be at least twice heartbeatIntervalMs, or live runs would be declared dead",
            )
        ]
    return []


def _where(source: str, loc: tuple, origins: Mapping[tuple, str] | None) -> str:
    keys = tuple(str(part) for part in loc)
    for length in range(len(keys), 0, -1):
        if origins and keys[:length] in origins:
            return origins[keys[:length]]
    shown = ".".join(shortened(key) for key in keys)  # a key is as long as its file has it
    return f"{source or 'config'}: {shown}"


def _drop(data: dict[str, Any], loc: tuple) -> None:
    """Remove the value at ``loc`` (or the nearest key holding it) so its default applies."""
    target: Any = data
    for index, part in enumerate(loc):
        if not isinstance(target, dict) or part not in target:
            return
        if index == len(loc) - 1 or not isinstance(target[part], dict):
            target.pop(part)
            return
        target = target[part]


def _resolve_paths(config: RunnerConfig, origins: Mapping[tuple, str], path: str) -> RunnerConfig:
    """Relative paths from the file are relative to its directory (env: the working dir).

    With a config file and no ``jobsDir``, jobs are in ``<file's dir>/scripts/jobs``,
    the original's fallback for ``sync-jobs``.
    """
    base = Path(path).resolve().parent if path else Path.cwd()
    changes: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for names in _PATH_FIELDS:
        value = getattr(config, names[0])
        if len(names) == 2:
            value = getattr(value, names[1])
        if not value:
            continue
        keys = tuple(to_camel(name) for name in names)
        root = Path.cwd() if keys in origins else base
        resolved = str(root / expand_user(value))
        if len(names) == 1:
            changes[names[0]] = resolved
        else:
            sections.setdefault(names[0], {})[names[1]] = resolved
    for section, values in sections.items():
        changes[section] = dataclasses.replace(getattr(config, section), **values)
    if path and not config.jobs_dir:
        changes["jobs_dir"] = str(base / "scripts" / "jobs")
    return dataclasses.replace(config, **changes)


def log_file_problem(
    config: RunnerConfig, environ: Mapping[str, str] = os.environ
) -> Problem | None:
    """Why ``logging.file`` cannot be opened for appending, or None (also when unset).

    Django configures logging before anything can report a problem, so a file it
    cannot open would stop every command, ``check`` included, with a traceback; the
    settings leave such a file out (the log goes to stderr) and report this instead.
    """
    path = config.logging.file
    where = (
        "JEEVES_LOG_FILE"
        if environ.get("JEEVES_LOG_FILE")
        else f"{config.config_file or 'config'}: logging.file"
    )
    reason = _log_file_reason(path)
    return Problem(where, reason) if reason else None


def _log_file_reason(path: str) -> str | None:
    if not path:
        return None
    too_long = path_problem(path)
    if too_long:
        return f"{shortened(path)} {too_long}"
    file, directory = Path(path), Path(path).parent
    if is_dir(file):
        return f"{path} is a directory"
    if not is_dir(directory):
        return f"the directory {directory} does not exist; create it, or name another file"
    if not os.access(file if os.path.lexists(file) else directory, os.W_OK):
        return f"cannot write {path}: permission denied"
    return None


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach: an IP address literal in
    127.0.0.0/8 or ``::1``, or exactly ``localhost``.

    A DNS name that merely starts with ``127.`` (``127.0.0.1.nip.io``) may resolve
    anywhere, so it is not loopback.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
