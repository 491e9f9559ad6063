"""The Slack and gateway tokens, read when they are needed and never logged.

Each call reads the file again, so a rotated token is used from the next run on
without a restart. Errors name the setting and the file, never the file's content.
"""

from __future__ import annotations

import os

from django.conf import settings

from jeeves_site.paths import expand_user
from jeeves_site.small_files import MAX_SECRET_FILE_BYTES, read_small_file

GATEWAY_TOKEN_ENV = "OPENCLAW_GATEWAY_TOKEN"
GATEWAY_TOKEN_SETTINGS = (
    "gatewayTokenPath (JEEVES_GATEWAY_TOKEN_PATH) naming a file that holds the token, "
    f"gatewayApiKey, or the environment variable {GATEWAY_TOKEN_ENV}"
)
SLACK_TOKEN_SETTING = "notifications.slackTokenPath (JEEVES_SLACK_TOKEN_PATH)"


class TokenUnavailable(Exception):
    """A token file is configured but cannot be used; the message says which and why."""


def gateway_token() -> str | None:
    """The OpenClaw gateway token: the file ``gatewayTokenPath`` names, else
    ``gatewayApiKey``, else the environment (the original's order after the file).

    None when none is configured; ``TokenUnavailable`` when the file is unusable.
    """
    config = settings.RUNNER
    if config.gateway_token_path:
        return _read(config.gateway_token_path, "gatewayTokenPath")
    if config.gateway_api_key.strip():
        return config.gateway_api_key.strip()
    return os.environ.get(GATEWAY_TOKEN_ENV, "").strip() or None


def slack_token() -> str | None:
    """The Slack bot token from ``notifications.slackTokenPath``; None when unset."""
    path = settings.RUNNER.notifications.slack_token_path
    return _read(path, "notifications.slackTokenPath") if path else None


def _read(path: str, setting: str) -> str:
    try:
        text = read_small_file(expand_user(path), MAX_SECRET_FILE_BYTES).decode("utf-8").strip()
    except OSError as exc:
        raise TokenUnavailable(
            f"{setting}: cannot read the token file {path}: {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise TokenUnavailable(f"{setting}: the token file {path} is not UTF-8 text") from None
    if not text:
        raise TokenUnavailable(f"{setting}: the token file {path} is empty")
    return text
