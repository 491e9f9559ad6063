"""System checks: ``manage.py check`` says what in the configuration is wrong."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Warning, register

from jeeves_site.private_files import readable_by_others, runner_paths


@register()
def check_runner_config(app_configs=None, **kwargs) -> list:
    """runner.E001: each problem found while reading the config file and environment."""
    return [
        Error(f"{where}: {message}", id="runner.E001")
        for where, message in settings.RUNNER_CONFIG_ERRORS
    ]


@register()
def check_secret_files(app_configs=None, **kwargs) -> list:
    """runner.E002: token files named in the configuration must be readable."""
    config = settings.RUNNER
    named = {
        "notifications.slackTokenPath": config.notifications.slack_token_path,
        "gateway.tokenPath": config.gateway.token_path,
    }
    return [
        Error(f"{key}: cannot read the token file {path}", id="runner.E002")
        for key, path in named.items()
        if path and not _readable(Path(path))
    ]


@register()
def check_scripts_dir(app_configs=None, **kwargs) -> list:
    """runner.W001: a configured scripts directory that does not exist."""
    path = settings.RUNNER.scripts_dir
    if path and not Path(path).is_dir():
        return [Warning(f"scriptsDir: {path} is not a directory", id="runner.W001")]
    return []


@register()
def check_private_files(app_configs=None, **kwargs) -> list:
    """runner.E010: the data directory, the SQLite database (and its -wal/-shm) or the
    log file can be read by other users. Every other manage.py command and the web app
    tighten these when they start (``jeeves_site.private_files``); this check changes
    nothing and reports an installation they have not tightened (or could not)."""
    errors = []
    for path in runner_paths(settings):
        mode = readable_by_others(path)
        if mode is not None:
            recursive = "-R " if path.is_dir() else ""
            errors.append(
                Error(
                    f"{path} is mode {mode:04o}: other users can read the runner's data",
                    hint=f"run: chmod {recursive}go-rwx {path}  (every manage.py command but "
                    "check, and the web app, also do this when they start)",
                    id="runner.E010",
                )
            )
    return errors


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False
