"""What a job's script finds in its environment: the one list of what is added and removed.

A script inherits the runner's environment, minus the runner's own secrets and
settings (``REMOVED``: keys, tokens, the paths of the files holding them, the data
directory), plus the job's ``env``, plus what the runner sets so that the script
client finds the database (``SET``, and every ``JR_*`` name). A job's ``env`` may
name none of these (``is_reserved``): it is refused where it enters rather than
silently dropped or overwritten. Kept free of Django, so validation can import it.
"""

from __future__ import annotations

from collections.abc import Mapping

# Set by the runner for every script (with every JR_* name).
SET = frozenset({"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "PYTHONPATH"})
SET_PREFIX = "JR_"

# The runner's own secrets and settings, removed from every script's environment.
# Each secret is also removed as NAME_FILE (``jeeves_site.env.env_secret`` reads both).
REMOVED_SECRETS = frozenset(
    {
        "DJANGO_SECRET_KEY",  # signs sessions and django-q2 tasks
        "OPENCLAW_GATEWAY_TOKEN",  # the gateway's bearer token (runner.tokens)
        "JEEVES_METRICS_TOKEN",  # guards /metrics (runner.metrics_view)
    }
)
REMOVED_SETTINGS = frozenset(
    {
        "JEEVES_DATA_DIR",  # holds the secret key and the initial admin password
        "JEEVES_CONFIG",  # the config file names the token files
        "JEEVES_GATEWAY_TOKEN_PATH",
        "JEEVES_SLACK_TOKEN_PATH",
        "JEEVES_REDIS_URL",  # may carry the broker's password
        "JEEVES_WEBHOOK_URL",  # a Slack-style webhook's path is its secret
        "JEEVES_LOG_FILE",  # the runner's log, not the script's
        "JEEVES_INHERITED_UMASK",  # the runner's bookkeeping (jeeves_site.private_files)
    }
)
REMOVED = REMOVED_SETTINGS | REMOVED_SECRETS | {f"{name}_FILE" for name in REMOVED_SECRETS}


def is_reserved(name: str) -> bool:
    """True for a name the runner sets or removes, which a job's env may not use."""
    return name in SET or name in REMOVED or name.startswith(SET_PREFIX)


def script_environment(
    inherited: Mapping[str, str], job_env: Mapping[str, str], runner_set: Mapping[str, str]
) -> dict[str, str]:
    """``inherited`` minus ``REMOVED``, plus the job's env (reserved names left out:
    validation refused them already), plus ``runner_set``, which always wins."""
    return with_job(inheritable(inherited), job_env, runner_set)


def inheritable(inherited: Mapping[str, str]) -> dict[str, str]:
    """``inherited`` minus ``REMOVED``: what every script inherits alike."""
    return {name: value for name, value in inherited.items() if name not in REMOVED}


def with_job(
    inheritable_env: Mapping[str, str], job_env: Mapping[str, str], runner_set: Mapping[str, str]
) -> dict[str, str]:
    """``script_environment`` from an environment ``inheritable`` already made (a copy)."""
    env = dict(inheritable_env)
    env.update({name: value for name, value in job_env.items() if not is_reserved(name)})
    env.update(runner_set)
    return env
