"""A webhook receiver on loopback: records each JSON body, can fail the first N posts.

with FakeWebhook() as hook:
    hook.fail_first = 2      # answer 503 twice, then 200
    ... hook.bodies
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes import Handler, LoopbackServer


class _WebhookHandler(Handler):
    def do_POST(self) -> None:
        self.fake.handle(self, self.read_body())


class FakeWebhook(LoopbackServer):
    """Records every POST (``attempts``) and the bodies it accepted (``bodies``)."""

    handler_class = _WebhookHandler

    def __init__(self) -> None:
        super().__init__()
        self.fail_first = 0  # answer ``fail_status`` to this many posts first
        self.fail_status = 503
        self._attempts: list[dict[str, Any]] = []
        self._bodies: list[dict[str, Any]] = []

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies answered 200, in order."""
        with self.lock:
            return list(self._bodies)

    @property
    def attempts(self) -> int:
        with self.lock:
            return len(self._attempts)

    def handle(self, handler: Handler, raw: bytes) -> None:
        body = json.loads(raw or b"null")
        with self.lock:
            self._attempts.append({"path": handler.path, "headers": dict(handler.headers)})
            failing = len(self._attempts) <= self.fail_first
            if not failing:
                self._bodies.append(body)
        if failing:
            return handler.reply(self.fail_status, "try later")
        handler.reply(200, {"ok": True})
