"""System checks: ``manage.py check`` says what in the configuration is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import DatabaseError

from jeeves_site import env
from jeeves_site.echo import shown_path
from jeeves_site.file_trust import others_can_change, others_can_read
from jeeves_site.paths import is_dir
from jeeves_site.private_files import (
    foreign_owned,
    foreign_owner_problem,
    readable_by_others,
    runner_paths,
)
from jeeves_site.runner_config import is_loopback
from jeeves_site.small_files import MAX_SECRET_FILE_BYTES, read_small_file
from runner.original_db import configured_database_is_original, original_database_message
from runner.validation import resolve_script_path, script_warnings, scripts_dir


@register()
def check_runner_config(app_configs=None, **kwargs) -> list:
    """runner.E001: each bad value in the config file or environment (its default applies).

    runner.W002: a deprecated key (migrated, as the original does) or an unknown one (ignored).
    """
    return [
        Error(f"{p.where}: {p.message}", id="runner.E001")
        if p.level == "error"
        else Warning(f"{p.where}: {p.message}", id="runner.W002")
        for p in settings.RUNNER_CONFIG_PROBLEMS
    ]


@register()
def check_not_an_original_database(app_configs=None, **kwargs) -> list:
    """runner.E003: the configured database belongs to the original jeeves-runner.

    Stops ``migrate`` and ``runscheduler`` (which run the checks first) before they
    touch it, with the command that brings its data over.
    """
    name = configured_database_is_original()
    if name is None:
        return []
    return [Error(original_database_message(name), id="runner.E003")]


@register()
def check_exposed_host(app_configs=None, **kwargs) -> list:
    """runner.W003: ``host`` (JEEVES_BIND) beyond loopback exposes the admin and the API."""
    host = settings.RUNNER.host
    if is_loopback(host):
        return []
    return [
        Warning(
            f"host: the web server listens on {host}, so the admin login page and the "
            "JSON API (which can create and run jobs, i.e. run commands as the runner's "
            "user) are reachable from other machines, over plain HTTP; tokens and "
            "passwords cross the network unencrypted",
            hint="Use 127.0.0.1 and a TLS reverse proxy, or restrict access with a firewall; "
            "add the names clients use to DJANGO_ALLOWED_HOSTS.",
            id="runner.W003",
        )
    ]


@register()
def check_redis_password(app_configs=None, **kwargs) -> list:
    """runner.W004: the Redis broker reached without a password.

    Redis listens for every local user by default: without a password any of them
    can watch the tasks go by and push tasks of their own.
    """
    config = settings.RUNNER
    if config.broker != "redis" or _has_password(config.redis_url):
        return []
    return [
        Warning(
            "redisUrl: the Redis broker is used without a password, so any local user "
            "(or any host that can reach Redis) can watch every task (redis-cli monitor) "
            "and flood or tamper with the runner's queue",
            hint="Set requirepass (or an ACL user) in redis.conf and put it in the URL, "
            "redis://:PASSWORD@127.0.0.1:6379/0 (JEEVES_REDIS_URL keeps it out of config.json).",
            id="runner.W004",
        )
    ]


def _has_password(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.password) or bool(parse_qs(parts.query).get("password"))


@register()
def check_secret_files(app_configs=None, **kwargs) -> list:
    """runner.E002: token files named in the configuration must be readable."""
    config = settings.RUNNER
    named = {
        "notifications.slackTokenPath": config.notifications.slack_token_path,
        "gatewayTokenPath": config.gateway_token_path,
    }
    return [
        Error(f"{key}: cannot read the token file {path}", id="runner.E002")
        for key, path in named.items()
        if path and not _readable(Path(path))
    ]


@register()
def check_time_zone(app_configs=None, **kwargs) -> list:
    """runner.E004: the server's zone could not be read from TZ or /etc/localtime."""
    problem = getattr(settings, "TIME_ZONE_PROBLEM", "")
    return [Error(problem, id="runner.E004")] if problem else []


@register()
def check_scripts_dir(app_configs=None, **kwargs) -> list:
    """runner.W001: a configured scripts directory that does not exist."""
    path = settings.RUNNER.scripts_dir
    if path and not is_dir(Path(path)):
        return [Warning(f"scriptsDir: {shown_path(path)} is not a directory", id="runner.W001")]
    return []


# Enough to act on; the rest are counted.
MISSING_SCRIPTS_LISTED = 20
_SKIP_MISSING_SCRIPTS: ContextVar[bool] = ContextVar("skip_missing_scripts", default=False)


@contextmanager
def missing_scripts_check_skipped() -> Iterator[None]:
    """Run the system checks without runner.W020 (``runner.management.base``)."""
    token = _SKIP_MISSING_SCRIPTS.set(True)
    try:
        yield
    finally:
        _SKIP_MISSING_SCRIPTS.reset(token)


@register()
def check_missing_scripts(app_configs=None, **kwargs) -> list:
    """runner.W020: path jobs whose script (or prompt) file does not exist; their runs fail.

    Jobs may name scripts that are added later (the original's job files do), so
    this is a warning. Skipped when the database or its tables are not there yet, and
    before the runner's own commands (``runner.management.base.RunnerCommand``).
    """
    from runner.models import Job, SourceType  # the app registry is ready when checks run

    if _SKIP_MISSING_SCRIPTS.get():
        return []

    try:
        rows = list(
            Job.objects.filter(source_type=SourceType.PATH).values_list("id", "type", "script")
        )
    except DatabaseError:
        return []
    missing = [
        f"{job_id}: {warning}"
        for job_id, job_type, script in rows
        for warning in script_warnings(job_type, SourceType.PATH, script)
    ]
    if not missing:
        return []
    more = len(missing) - MISSING_SCRIPTS_LISTED
    listed = missing[:MISSING_SCRIPTS_LISTED] + ([f"and {more} more"] if more > 0 else [])
    return [
        Warning(
            f"{len(missing)} job(s) name a file that does not exist; their runs fail "
            "with 'script not found' until it does:\n  " + "\n  ".join(listed),
            hint="add the files, or correct the jobs' script paths",
            id="runner.W020",
        )
    ]


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


@register()
def check_data_dir_owner(app_configs=None, **kwargs) -> list:
    """runner.E011: the data directory, or a file in it (the secret key, the database),
    or the database or log file elsewhere, belongs to another user than the runner's.

    Modes do not help: the owner can change them back, and replace the files. Every
    entry point refuses such an installation (``jeeves_site.private_files``).
    """
    found = foreign_owned(settings)
    if not found:
        return []
    message, hint = foreign_owner_problem(found, Path(settings.DATA_DIR))
    return [Error(message, hint=hint, id="runner.E011")]


@register()
def check_code_sources(app_configs=None, **kwargs) -> list:
    """runner.E012: a config file other users can change (its ``runners`` and
    ``scriptsDir`` decide what runs as the runner's user). runner.E013: job files, their
    directory (``jobsDir``) or the scripts directory other users can change."""
    config = settings.RUNNER
    errors = []
    if config.config_file:
        errors += _changeable_errors([Path(config.config_file)], "runner.E012")
    sources = [scripts_dir(), *([Path(config.jobs_dir)] if config.jobs_dir else [])]
    if config.jobs_dir and is_dir(Path(config.jobs_dir)):
        sources += sorted(Path(config.jobs_dir).glob("*.json"))
    return errors + _changeable_errors(sources, "runner.E013")


@register()
def check_job_scripts(app_configs=None, **kwargs) -> list:
    """runner.E013 for path jobs' script files other users can change (one error).

    Skipped when the database or its tables are not there yet."""
    from runner.models import Job, SourceType

    try:
        scripts = set(
            Job.objects.filter(source_type=SourceType.PATH).values_list("script", flat=True)
        )
    except DatabaseError:
        return []
    found = [
        f"{path} {reason}"
        for path in sorted({resolve_script_path(script) for script in scripts})
        if (reason := others_can_change(path))
    ]
    if not found:
        return []
    listed = found[:MISSING_SCRIPTS_LISTED]
    more = len(found) - len(listed)
    return [
        Error(
            f"{len(found)} job script(s) other users can change, so they could run commands "
            "as the runner's user:\n  "
            + "\n  ".join(listed + ([f"and {more} more"] if more > 0 else [])),
            hint="run: chmod go-w on each (and its directory), or chown them to the runner's user",
            id="runner.E013",
        )
    ]


def _changeable_errors(paths: list[Path], check_id: str) -> list:
    what = {
        "runner.E012": "the config file names the interpreters (runners) and scripts jobs run",
        "runner.E013": "job files and scripts decide what runs",
    }[check_id]
    errors = []
    for path in paths:
        reason = others_can_change(path)
        if reason:
            errors.append(
                Error(
                    f"{path} {reason}: {what}, so other users could run commands as the "
                    "runner's user",
                    hint=f"run: chmod go-w {path} (and its directory), or chown it to the "
                    "runner's user",
                    id=check_id,
                )
            )
    return errors


@register()
def check_secret_file_modes(app_configs=None, **kwargs) -> list:
    """runner.W005: a file holding a secret (``DJANGO_SECRET_KEY_FILE`` and every other
    ``*_FILE`` the settings read, the Slack and gateway token files) other users can read."""
    config = settings.RUNNER
    named = {
        **env.SECRET_FILES,
        "notifications.slackTokenPath": config.notifications.slack_token_path,
        "gatewayTokenPath": config.gateway_token_path,
    }
    warnings = []
    for key, path in named.items():
        mode = others_can_read(Path(path)) if path else None
        if mode is not None:
            warnings.append(
                Warning(
                    f"{key}: {path} is mode {mode:04o}: other users can read the secret",
                    hint=f"run: chmod go-rwx {path}",
                    id="runner.W005",
                )
            )
    return warnings


def _readable(path: Path) -> bool:
    try:
        read_small_file(path, MAX_SECRET_FILE_BYTES)  # opening a FIFO plainly would hang
    except OSError:
        return False
    return True
