"""Settings that change without a restart: each process re-reads the config file
when it has changed (a stat per check, cheap) — the web server before a request,
the scheduler each reconcile, a worker before each run.

What the processes read once at start keeps its old value until a restart
(``RESTART_FIELDS``); everything else is read from ``settings.RUNNER`` when it
is used, so the new value applies from the next use on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading

from django.conf import settings

from jeeves_site.runner_config import (
    LOADED_SIGNATURES,
    RunnerConfig,
    config_file_path,
    file_signature,
    load_runner_config,
)

logger = logging.getLogger("runner.config")

# Field -> config.json key, for what only a restart applies: the web server's
# address, the database, the worker count, the broker, and the logging set-up.
RESTART_FIELDS = {
    "port": "port",
    "host": "host",
    "db_path": "dbPath",
    "max_concurrency": "maxConcurrency",
    "broker": "broker",
    "redis_url": "redisUrl",
    "logging": "logging",
}

_lock = threading.Lock()


def current_file() -> str:
    """The config file this process reads: ``JEEVES_CONFIG`` or ``<data dir>/config.json``."""
    return settings.RUNNER.config_file or config_file_path(os.environ, settings.DATA_DIR)


def refresh_runner_config(force: bool = False) -> list[str]:
    """Re-read the config file if it changed since this process last looked (or ``force``).

    Replaces ``settings.RUNNER``, keeping the restart-only settings; returns the
    config.json keys whose new value waits for a restart. A file with errors is
    not applied (its problems are logged; ``manage.py check`` lists them).
    """
    path = current_file()
    with _lock:
        signature = file_signature(path) if path else None
        if not force and LOADED_SIGNATURES.get(path) == signature:
            return []
        return _apply_from_file(path)


def _apply_from_file(path: str) -> list[str]:
    new, problems = load_runner_config(os.environ, settings.DATA_DIR, path=path)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        logger.warning(
            "the config file changed but is not applied: %s",
            "; ".join(f"{p.where}: {p.message}" for p in errors),
        )
        return []
    old: RunnerConfig = settings.RUNNER
    waiting = [
        key for name, key in RESTART_FIELDS.items() if getattr(new, name) != getattr(old, name)
    ]
    settings.RUNNER = dataclasses.replace(
        new, **{name: getattr(old, name) for name in RESTART_FIELDS}
    )
    logger.info("configuration re-read from %s", new.config_file)
    if waiting:
        logger.warning("changed settings that apply after a restart: %s", ", ".join(waiting))
    return waiting


def connect() -> None:
    """Check for a changed file before each web request and each worker's run."""
    from django.core.signals import request_started
    from django_q.signals import pre_execute

    request_started.connect(_on_signal, dispatch_uid="jeeves-config-refresh-request")
    pre_execute.connect(_on_signal, dispatch_uid="jeeves-config-refresh-task")


def _on_signal(sender=None, **kwargs) -> None:
    try:
        refresh_runner_config()
    except Exception:  # a bad file must never fail a request or a run
        logger.exception("cannot re-read the config file")
