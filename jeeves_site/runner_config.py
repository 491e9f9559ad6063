"""The runner's own configuration: defaults, the original runner's JSON file, env vars.

Precedence, lowest first: built-in defaults, the JSON config file named by
``JEEVES_CONFIG`` (the original jeeves-runner's ``config.json`` format, camelCase
keys), then ``JEEVES_*`` environment variables. Problems are collected rather than
raised so that ``manage.py check`` can report every one of them with where it
came from (see ``runner.checks``); the offending value falls back to its default.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
MAX_DISPATCH_LEAD_MS = 5_000


@dataclass(frozen=True)
class NotificationsConfig:
    """Slack notification settings (``notifications`` in config.json)."""

    slack_token_path: str = ""
    default_on_failure: str = ""
    default_on_success: str = ""
    slack_api_url: str = "https://slack.com/api"
    timeout_s: float = 5.0


@dataclass(frozen=True)
class GatewayConfig:
    """OpenClaw Gateway settings (``gateway`` in config.json)."""

    url: str = "http://127.0.0.1:18789"
    token_path: str = ""


@dataclass(frozen=True)
class LogConfig:
    """Logging settings (``log`` in config.json)."""

    level: str = "info"
    file: str = ""


@dataclass(frozen=True)
class RunnerConfig:
    """Every runner setting, read by code at run time through ``settings.RUNNER``."""

    port: int = 1937
    bind: str = "127.0.0.1"
    db_path: str = ""
    max_concurrency: int = 16
    run_retention_days: int = 30
    state_cleanup_interval_ms: int = 60_000
    shutdown_grace_ms: int = 30_000
    reconcile_interval_ms: int = 1_000
    kill_grace_ms: int = 5_000
    output_tail_lines: int = 100
    heartbeat_interval_ms: int = 5_000
    liveness_timeout_ms: int = 30_000
    pending_redispatch_ms: int = 30_000
    missed_fire_window_ms: int = 86_400_000
    missed_fire_max: int = 100
    dispatch_lead_ms: int = 250
    scripts_dir: str = ""
    base_url: str = ""
    broker: str = "orm"
    redis_url: str = "redis://127.0.0.1:6379/0"
    runners: dict[str, list[str]] = field(default_factory=dict)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    log: LogConfig = field(default_factory=LogConfig)
    config_file: str = ""


# camelCase key in config.json -> (field name, minimum) for the integer settings.
_INT_KEYS = {
    "port": ("port", 1),
    "maxConcurrency": ("max_concurrency", 1),
    "runRetentionDays": ("run_retention_days", 1),
    "stateCleanupIntervalMs": ("state_cleanup_interval_ms", 1000),
    "cursorCleanupIntervalMs": ("state_cleanup_interval_ms", 1000),
    "shutdownGraceMs": ("shutdown_grace_ms", 0),
    "reconcileIntervalMs": ("reconcile_interval_ms", 100),
    "killGraceMs": ("kill_grace_ms", 0),
    "outputTailLines": ("output_tail_lines", 1),
    "heartbeatIntervalMs": ("heartbeat_interval_ms", 100),
    "livenessTimeoutMs": ("liveness_timeout_ms", 1000),
    "pendingRedispatchMs": ("pending_redispatch_ms", 1000),
    "missedFireWindowMs": ("missed_fire_window_ms", 0),
    "missedFireMax": ("missed_fire_max", 1),
    "dispatchLeadMs": ("dispatch_lead_ms", 0),
}
_STR_KEYS = {
    "dbPath": "db_path",
    "bind": "bind",
    "scriptsDir": "scripts_dir",
    "baseUrl": "base_url",
    "broker": "broker",
    "redisUrl": "redis_url",
}
# Environment variable -> camelCase key it overrides.
_ENV_KEYS = {
    "JEEVES_PORT": "port",
    "JEEVES_BIND": "bind",
    "JEEVES_DB_PATH": "dbPath",
    "JEEVES_MAX_CONCURRENCY": "maxConcurrency",
    "JEEVES_RUN_RETENTION_DAYS": "runRetentionDays",
    "JEEVES_STATE_CLEANUP_INTERVAL_MS": "stateCleanupIntervalMs",
    "JEEVES_SHUTDOWN_GRACE_MS": "shutdownGraceMs",
    "JEEVES_RECONCILE_INTERVAL_MS": "reconcileIntervalMs",
    "JEEVES_KILL_GRACE_MS": "killGraceMs",
    "JEEVES_OUTPUT_TAIL_LINES": "outputTailLines",
    "JEEVES_HEARTBEAT_INTERVAL_MS": "heartbeatIntervalMs",
    "JEEVES_LIVENESS_TIMEOUT_MS": "livenessTimeoutMs",
    "JEEVES_PENDING_REDISPATCH_MS": "pendingRedispatchMs",
    "JEEVES_MISSED_FIRE_WINDOW_MS": "missedFireWindowMs",
    "JEEVES_MISSED_FIRE_MAX": "missedFireMax",
    "JEEVES_DISPATCH_LEAD_MS": "dispatchLeadMs",
    "JEEVES_SCRIPTS_DIR": "scriptsDir",
    "JEEVES_BASE_URL": "baseUrl",
    "JEEVES_BROKER": "broker",
    "JEEVES_REDIS_URL": "redisUrl",
}
_NESTED_ENV_KEYS = {
    "JEEVES_SLACK_TOKEN_PATH": ("notifications", "slackTokenPath"),
    "JEEVES_SLACK_DEFAULT_ON_FAILURE": ("notifications", "defaultOnFailure"),
    "JEEVES_SLACK_DEFAULT_ON_SUCCESS": ("notifications", "defaultOnSuccess"),
    "JEEVES_SLACK_API_URL": ("notifications", "slackApiUrl"),
    "JEEVES_GATEWAY_URL": ("gateway", "url"),
    "JEEVES_GATEWAY_TOKEN_PATH": ("gateway", "tokenPath"),
    "JEEVES_LOG_LEVEL": ("log", "level"),
    "JEEVES_LOG_FILE": ("log", "file"),
}
_KNOWN_TOP_KEYS = set(_INT_KEYS) | set(_STR_KEYS) | {"runners", "notifications", "gateway", "log"}


def default_interpreters() -> dict[str, list[str]]:
    """The built-in extension -> interpreter map; ``runners`` in config extends it."""
    return {".py": [sys.executable], ".sh": ["bash"], ".js": ["node"]}


class _Collector:
    """Accumulates problems as ``(where, message)`` pairs."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def add(self, where: str, message: str) -> None:
        self.errors.append((where, message))


def load_runner_config(
    environ: Mapping[str, str] = os.environ,
) -> tuple[RunnerConfig, list[tuple[str, str]]]:
    """Build the configuration; return it with the problems found, each with its source."""
    problems = _Collector()
    raw, source = _read_config_file(environ, problems)
    _overlay_environment(raw, environ)
    config = _build(raw, source, problems)
    return replace(config, config_file=source), problems.errors


def _read_config_file(environ: Mapping[str, str], problems: _Collector) -> tuple[dict, str]:
    path = environ.get("JEEVES_CONFIG", "")
    if not path:
        return {}, ""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        problems.add(f"JEEVES_CONFIG={path}", f"cannot read the config file: {exc.strerror}")
        return {}, path
    except json.JSONDecodeError as exc:
        problems.add(path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return {}, path
    if not isinstance(data, dict):
        problems.add(path, "the config file must hold a JSON object")
        return {}, path
    for key in sorted(set(data) - _KNOWN_TOP_KEYS):
        problems.add(f"{path}: {key}", "unknown setting")
    return data, path


def _overlay_environment(raw: dict, environ: Mapping[str, str]) -> None:
    """Environment variables win over the file; they arrive as strings."""
    for name, key in _ENV_KEYS.items():
        if environ.get(name, "") != "":
            raw[key] = _EnvValue(name, environ[name])
    for name, (section, key) in _NESTED_ENV_KEYS.items():
        if environ.get(name, "") != "":
            current = raw.get(section)
            raw[section] = dict(current) if isinstance(current, dict) else {}
            raw[section][key] = _EnvValue(name, environ[name])


@dataclass(frozen=True)
class _EnvValue:
    """A value that came from an environment variable, so errors can name it."""

    name: str
    text: str


def _where(source: str, key: str, value: Any) -> str:
    if isinstance(value, _EnvValue):
        return value.name
    return f"{source or 'config'}: {key}"


def _build(raw: dict, source: str, problems: _Collector) -> RunnerConfig:
    values: dict[str, Any] = {}
    for key, (name, minimum) in _INT_KEYS.items():
        if key in raw:
            number = _as_int(raw[key], minimum, _where(source, key, raw[key]), problems)
            if number is not None:
                values[name] = number
    for key, name in _STR_KEYS.items():
        if key in raw:
            text = _as_str(raw[key], _where(source, key, raw[key]), problems)
            if text is not None:
                values[name] = text
    values["runners"] = _runners(raw.get("runners", {}), source, problems)
    values["notifications"] = _notifications(raw.get("notifications", {}), source, problems)
    values["gateway"] = _gateway(raw.get("gateway", {}), source, problems)
    values["log"] = _log(raw.get("log", {}), source, problems)
    config = RunnerConfig(**values)
    return _check_cross_fields(config, raw, source, problems)


def _as_int(value: Any, minimum: int, where: str, problems: _Collector) -> int | None:
    if isinstance(value, _EnvValue):
        try:
            value = int(value.text.strip())
        except ValueError:
            problems.add(where, f"{value.text!r} is not an integer")
            return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(where, f"{value!r} is not an integer")
        return None
    if value < minimum:
        problems.add(where, f"{value} must be at least {minimum}")
        return None
    return value


def _as_str(value: Any, where: str, problems: _Collector) -> str | None:
    if isinstance(value, _EnvValue):
        return value.text
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.add(where, f"{value!r} is not a string")
        return None
    return value


def _section(raw: Any, name: str, source: str, problems: _Collector) -> dict:
    if isinstance(raw, dict):
        return raw
    problems.add(f"{source or 'config'}: {name}", "must be a JSON object")
    return {}


def _strings(
    section: dict, keys: dict[str, str], prefix: str, source: str, problems: _Collector
) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in sorted(set(section) - set(keys)):
        problems.add(f"{source or 'config'}: {prefix}.{key}", "unknown setting")
    for key, name in keys.items():
        if key in section:
            text = _as_str(section[key], _where(source, f"{prefix}.{key}", section[key]), problems)
            if text is not None:
                out[name] = text
    return out


def _notifications(raw: Any, source: str, problems: _Collector) -> NotificationsConfig:
    section = _section(raw, "notifications", source, problems)
    keys = {
        "slackTokenPath": "slack_token_path",
        "defaultOnFailure": "default_on_failure",
        "defaultOnSuccess": "default_on_success",
        "slackApiUrl": "slack_api_url",
    }
    values = _strings(section, keys, "notifications", source, problems)
    if "slack_api_url" in values:
        _check_url(values["slack_api_url"], "notifications.slackApiUrl", source, problems)
    return NotificationsConfig(**values)


def _gateway(raw: Any, source: str, problems: _Collector) -> GatewayConfig:
    section = _section(raw, "gateway", source, problems)
    keys = {"url": "url", "tokenPath": "token_path"}
    values = _strings(section, keys, "gateway", source, problems)
    if "url" in values:
        _check_url(values["url"], "gateway.url", source, problems)
    return GatewayConfig(**values)


def _log(raw: Any, source: str, problems: _Collector) -> LogConfig:
    section = _section(raw, "log", source, problems)
    values = _strings(section, {"level": "level", "file": "file"}, "log", source, problems)
    if values.get("level", "info").lower() not in LOG_LEVELS:
        problems.add(
            _where(source, "log.level", section.get("level")),
            f"{values['level']!r} is not a log level (use one of {', '.join(LOG_LEVELS)})",
        )
        values.pop("level")
    elif "level" in values:
        values["level"] = values["level"].lower()
    return LogConfig(**values)


def _runners(raw: Any, source: str, problems: _Collector) -> dict[str, list[str]]:
    """Map file extensions to interpreter argv prefixes, e.g. ``{"ts": "npx tsx"}``."""
    section = _section(raw, "runners", source, problems)
    runners = default_interpreters()
    for ext, command in section.items():
        where = f"{source or 'config'}: runners.{ext}"
        if isinstance(command, str) and command.strip():
            argv = command.split()
        elif isinstance(command, list) and command and all(isinstance(c, str) for c in command):
            argv = list(command)
        else:
            problems.add(where, "must be a command string or a non-empty list of strings")
            continue
        runners["." + ext.lstrip(".").lower()] = argv
    return runners


def _check_url(url: str, key: str, source: str, problems: _Collector) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.add(f"{source or 'config'}: {key}", f"{url!r} is not an http(s) URL")


def _check_cross_fields(
    config: RunnerConfig, raw: dict, source: str, problems: _Collector
) -> RunnerConfig:
    if config.broker not in ("orm", "redis"):
        problems.add(_where(source, "broker", raw.get("broker")), "must be 'orm' or 'redis'")
        config = replace(config, broker="orm")
    if config.dispatch_lead_ms > MAX_DISPATCH_LEAD_MS:
        problems.add(
            _where(source, "dispatchLeadMs", raw.get("dispatchLeadMs")),
            f"must be at most {MAX_DISPATCH_LEAD_MS} ms: a worker holds its slot while it waits",
        )
        config = replace(config, dispatch_lead_ms=RunnerConfig.dispatch_lead_ms)
    if config.heartbeat_interval_ms * 2 > config.liveness_timeout_ms:
        problems.add(
            _where(source, "livenessTimeoutMs", raw.get("livenessTimeoutMs")),
            "must be at least twice heartbeatIntervalMs, or live runs would be declared dead",
        )
        config = replace(
            config,
            heartbeat_interval_ms=RunnerConfig.heartbeat_interval_ms,
            liveness_timeout_ms=RunnerConfig.liveness_timeout_ms,
        )
    return config
