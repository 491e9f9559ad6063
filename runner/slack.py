"""Slack notifications over ``chat.postMessage``, with no Django in it.

A notification is a courtesy: a Slack error or timeout is logged and never changes the
run's outcome, so ``post_message`` never raises and never waits out a rate limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

logger = logging.getLogger("runner.slack")

# Slack truncates message text past 40,000 characters; stay clear of it.
SLACK_TEXT_LIMIT = 39000
ERROR_LINES = 5
_TRIM_NOTICE_ROOM = 80
_STATUS_ICONS = {
    "ok": ":white_check_mark:",
    "error": ":x:",
    "timeout": ":hourglass:",
    "skipped": ":fast_forward:",
}


@dataclass(frozen=True, repr=False)
class SlackConfig:
    """The bot token and where to reach Slack; repr never shows the token."""

    token: str
    base_url: str = "https://slack.com/api"
    timeout_s: float = 5

    def __repr__(self) -> str:
        token = "<set>" if self.token else "<missing>"
        return (
            f"SlackConfig(token={token}, base_url={self.base_url!r}, timeout_s={self.timeout_s!r})"
        )


def post_message(
    config: SlackConfig, channel: str, text: str, *, transport: httpx.BaseTransport | None = None
) -> bool:
    """Post ``text`` to ``channel``; True when Slack accepted it.

    Never raises: every failure is logged as a warning on the "runner.slack" logger.
    """
    url = config.base_url.rstrip("/") + "/chat.postMessage"
    try:
        with httpx.Client(timeout=config.timeout_s, transport=transport) as http:
            response = http.post(
                url,
                json={"channel": channel, "text": text},
                headers={"Authorization": f"Bearer {config.token}"},
            )
    except httpx.TimeoutException:
        _warn(config, f"Slack did not answer within {config.timeout_s:g} s (posting to {channel})")
        return False
    # Bad settings (a base_url without a scheme, a token with non-ASCII characters) show
    # up here as InvalidURL or ValueError; they must not break the run either.
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        _warn(config, f"cannot post to Slack at {url} (channel {channel}): {exc}")
        return False
    return _accepted(config, channel, response)


def _accepted(config: SlackConfig, channel: str, response: httpx.Response) -> bool:
    status = response.status_code
    if status == 429:
        retry_after = response.headers.get("Retry-After", "unknown")
        _warn(config, f"Slack rate-limited a post to {channel} (429, Retry-After {retry_after} s)")
        return False
    if status != 200:
        _warn(config, f"Slack answered HTTP {status} to a post to {channel}: {_excerpt(response)}")
        return False
    try:
        payload = response.json()
    except ValueError:
        _warn(config, f"Slack answered a post to {channel} with non-JSON: {_excerpt(response)}")
        return False
    if not isinstance(payload, dict) or payload.get("ok") is not True:
        error = payload.get("error") if isinstance(payload, dict) else None
        _warn(config, f"Slack refused a post to {channel}: {error or _excerpt(response)}")
        return False
    return True


def _warn(config: SlackConfig, message: str) -> None:
    # Exceptions and response bodies are quoted as they come; none may carry the token.
    if config.token:
        message = message.replace(config.token, "[token]")
    logger.warning("%s", message)


def format_run_message(
    job_id: str,
    job_name: str,
    status: str,
    duration_ms: int | None,
    error: str | None,
    run_url: str | None = None,
) -> str:
    """A short Slack message about a finished run: job, status, duration, error, link."""
    icon = _STATUS_ICONS.get(status, ":grey_question:")
    took = f"took {format_duration(duration_ms)}" if duration_ms is not None else "time unknown"
    lines = [f"{icon} *{_escape(job_name)}* (`{_escape(job_id)}`): {status}, {took}"]
    if error:
        lines.append("```" + _escape(_first_lines(error, ERROR_LINES)) + "```")
    if run_url:
        lines.append(f"<{run_url}|View run>")
    return "\n".join(lines)


def format_duration(duration_ms: int) -> str:
    """A duration for people: ``850 ms``, ``12.3 s``, ``4 min 5 s``."""
    if duration_ms < 1000:
        return f"{duration_ms} ms"
    seconds = duration_ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def trim_for_slack(text: str, limit: int = SLACK_TEXT_LIMIT) -> str:
    """Keep the end of ``text`` within ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    kept = text[len(text) - max(limit - _TRIM_NOTICE_ROOM, 0) :]
    newline = kept.find("\n")
    if 0 <= newline < len(kept) - 1:
        kept = kept[newline + 1 :]  # start on a whole line
    return f"[trimmed: first {len(text) - len(kept)} characters omitted]\n{kept}"


def _first_lines(text: str, count: int) -> str:
    lines = text.strip().splitlines()
    if len(lines) <= count:
        return "\n".join(lines)
    return "\n".join(lines[:count]) + f"\n... ({len(lines) - count} more lines)"


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _excerpt(response: httpx.Response, limit: int = 200) -> str:
    line = " ".join(response.text.split())
    return line if len(line) <= limit else line[:limit] + "..."
