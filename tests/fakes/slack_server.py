"""A fake Slack Web API that plays ``POST /chat.postMessage``.

It checks the bearer token the way Slack does (HTTP 200 with ``ok: false``), accepts a
JSON or form body, records every message, and can be switched to a failure mode.

    with FakeSlack(token="xoxb-t") as slack:
        slack.mode = "rate_limited"
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from tests.fakes import Handler, LoopbackServer

Mode = Literal["ok", "not_ok", "rate_limited", "server_error", "slow", "invalid_json"]


@dataclass
class PostedMessage:
    """One chat.postMessage call as the fake received it."""

    channel: str | None
    text: str | None
    headers: dict[str, str]
    content_type: str


class _SlackHandler(Handler):
    def do_POST(self) -> None:
        self.fake.handle(self, self.read_body())


class FakeSlack(LoopbackServer):
    """A loopback Slack API; ``mode`` picks how it answers (see Mode)."""

    handler_class = _SlackHandler

    def __init__(self, token: str = "xoxb-slack-test-token") -> None:
        super().__init__()
        self.token = token
        self.mode: Mode = "ok"
        self.error = "channel_not_found"  # Slack's error string in "not_ok" mode
        self.retry_after = "30"
        self.delay = 2.0  # seconds, in "slow" mode
        self._messages: list[PostedMessage] = []

    @property
    def messages(self) -> list[PostedMessage]:
        """Every message received, in order."""
        with self.lock:
            return list(self._messages)

    def handle(self, handler: Handler, body: bytes) -> None:
        """Answer one POST the way Slack would in the current mode."""
        message = _message(handler, body)
        with self.lock:
            self._messages.append(message)
        if handler.path != "/chat.postMessage":
            return handler.reply(404, {"ok": False, "error": "unknown_method"})
        if self.mode == "slow":
            self.pause(self.delay)
        answers = {
            "rate_limited": lambda: handler.reply(429, "", {"Retry-After": self.retry_after}),
            "server_error": lambda: handler.reply(500, "Internal Server Error"),
            "invalid_json": lambda: handler.reply(200, "<html>upstream connect error</html>"),
            "not_ok": lambda: handler.reply(200, {"ok": False, "error": self.error}),
        }
        if self.mode in answers:
            return answers[self.mode]()
        auth_error = self._auth_error(handler.headers.get("Authorization"))
        if auth_error:
            return handler.reply(200, {"ok": False, "error": auth_error})
        if not message.channel:
            return handler.reply(200, {"ok": False, "error": "channel_not_found"})
        handler.reply(200, {"ok": True, "channel": message.channel, "ts": "1700000000.000100"})

    def _auth_error(self, header: str | None) -> str | None:
        if not header:
            return "not_authed"
        return None if header == f"Bearer {self.token}" else "invalid_auth"


def _message(handler: Handler, body: bytes) -> PostedMessage:
    content_type = handler.headers.get("Content-Type", "")
    fields: dict[str, Any] = {}
    if content_type.startswith("application/json"):
        try:
            fields = json.loads(body)
        except ValueError:
            fields = {}
        fields = fields if isinstance(fields, dict) else {}
    elif content_type.startswith("application/x-www-form-urlencoded"):
        fields = {name: values[0] for name, values in parse_qs(body.decode()).items()}
    return PostedMessage(
        channel=fields.get("channel"),
        text=fields.get("text"),
        headers=dict(handler.headers.items()),
        content_type=content_type,
    )
