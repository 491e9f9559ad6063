"""A fake OpenClaw Gateway: ``POST /tools/invoke`` with the three session tools.

Sessions are scripted per test (how many polls they stay running, how they end) and
failures are switched on per tool and for a number of requests. Every request is
recorded with its tool, args and headers.

    with FakeGateway(token="t") as gw:
        gw.next_session(finish="done", after_polls=2, total_tokens=900)
        gw.fail("rate_limited", tool="sessions_list", times=1, retry_after=3)
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.fakes import Handler, LoopbackServer

MAX_BODY_BYTES = 2 * 1024 * 1024

Finish = Literal["done", "error", "timeout", "never", "vanish"]
FailureMode = Literal[
    "unauthorized",  # 401
    "not_allowed",  # 404, as for a tool missing from gateway.tools.allow
    "method_not_allowed",  # 405
    "rate_limited",  # 429 with Retry-After
    "server_error",  # 500
    "not_json",  # 200 with an HTML body
    "not_ok",  # 400 with ok: false
    "slow",  # answers correctly, after `delay` seconds
]


@dataclass
class ScriptedSession:
    """How one session behaves as the runner polls it.

    It shows as ``running`` in the first ``after_polls`` lists, then ends as
    ``finish``: ``done``/``error``/``timeout`` rows, ``never`` (running for good) or
    ``vanish`` (gone from the list). ``history_complete`` says whether its transcript
    ends with a finished assistant turn once the session has ended.
    """

    finish: Finish = "done"
    after_polls: int = 1
    total_tokens: int | None = 1234
    model: str = "fake-model"
    error: str | None = None
    history_complete: bool = True
    stop_reason: str = "stop"  # of the last assistant turn once complete
    with_status: bool = True  # False: rows without "status", as OpenClaw's docs show them
    task: str = ""
    polls: int = 0

    def row(self, key: str) -> dict[str, Any] | None:
        """The sessions_list row for this poll (None once vanished); counts the poll."""
        ended = self.polls >= self.after_polls
        self.polls += 1
        if ended and self.finish == "vanish":
            return None
        status = self.finish if ended and self.finish != "never" else "running"
        row = {"sessionKey": key, "kind": "other", "model": self.model}
        row.update(totalTokens=self.total_tokens, updatedAt=int(time.time() * 1000))
        if self.with_status:
            row["status"] = status
        if status == "error" and self.error:
            row["error"] = self.error
        return row

    def transcript(self) -> list[dict[str, Any]]:
        """The messages sessions_history shows (tool results left out)."""
        last: dict[str, Any] = {"role": "assistant", "content": [{"type": "text", "text": "Done."}]}
        ended = self.polls > self.after_polls and self.finish != "never"
        last["stopReason"] = self.stop_reason if ended and self.history_complete else "toolUse"
        return [{"role": "user", "content": self.task or "task"}, last]


@dataclass
class Failure:
    """A failure switch: ``mode`` for ``tool`` (or every tool), ``times`` times or for good."""

    mode: FailureMode
    tool: str | None = None
    times: int | None = None
    retry_after: str = "1"
    delay: float = 1.0
    error_type: str = "tool_error"
    message: str = "something broke in the tool"

    def applies(self, tool: str | None) -> bool:
        return (self.tool is None or self.tool == tool) and self.times != 0


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    tool: str | None
    args: dict[str, Any] | None
    size: int


@dataclass
class _State:
    sessions: dict[str, ScriptedSession] = field(default_factory=dict)
    next_sessions: deque[ScriptedSession] = field(default_factory=deque)
    failures: list[Failure] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    spawned: list[str] = field(default_factory=list)


class _GatewayHandler(Handler):
    def do_POST(self) -> None:
        body = self.read_body()
        self.fake.handle(self, body)

    def do_GET(self) -> None:
        self.read_body()
        self.fake.record(self, None, None, 0)
        self.reply(405, {"ok": False, "error": {"type": "method_not_allowed", "message": "POST"}})


class FakeGateway(LoopbackServer):
    """A loopback OpenClaw Gateway with scripted sessions and failure switches."""

    handler_class = _GatewayHandler

    def __init__(self, token: str = "gateway-test-token", *, spawn_shape: str = "details"):
        super().__init__()
        self.token = token
        self.spawn_shape = spawn_shape  # "details" (result.details.*) or "flat" (result.*)
        self._state = _State()
        self._ids = itertools.count(1)

    # -- scripting ---------------------------------------------------------------

    def next_session(self, **script: Any) -> None:
        """Script the next session that sessions_spawn starts (see ScriptedSession)."""
        with self.lock:
            self._state.next_sessions.append(ScriptedSession(**script))

    def add_session(self, key: str, **script: Any) -> None:
        """Add a session that already exists, as one spawned before a restart."""
        with self.lock:
            self._state.sessions[key] = ScriptedSession(**script)

    def fail(self, mode: FailureMode, **options: Any) -> None:
        """Switch a failure on (see Failure for the options)."""
        with self.lock:
            self._state.failures.append(Failure(mode, **options))

    # -- what happened -------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order."""
        with self.lock:
            return list(self._state.requests)

    def calls(self, tool: str) -> list[RecordedRequest]:
        """The requests for one tool."""
        return [request for request in self.requests if request.tool == tool]

    @property
    def spawned(self) -> list[str]:
        """Keys of the sessions spawned so far."""
        with self.lock:
            return list(self._state.spawned)

    # -- serving -------------------------------------------------------------------

    def record(self, handler: Handler, tool: str | None, args: Any, size: int) -> None:
        request = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers=dict(handler.headers.items()),
            tool=tool,
            args=args if isinstance(args, dict) else None,
            size=size,
        )
        with self.lock:
            self._state.requests.append(request)

    def handle(self, handler: Handler, body: bytes) -> None:
        """Answer one POST the way the gateway would, failure switches first."""
        tool, args = _parse(body)
        self.record(handler, tool, args, len(body))
        if handler.path != "/tools/invoke":
            return handler.reply(404, "Not Found")
        failure = self._take_failure(tool)
        if failure is not None and failure.mode != "slow":
            return self._fail(handler, failure)
        if failure is not None:
            self.pause(failure.delay)
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return handler.reply(401, {"ok": False, "error": {"type": "unauthorized"}})
        if len(body) > MAX_BODY_BYTES:
            return handler.reply(413, {"ok": False, "error": {"type": "payload_too_large"}})
        self._invoke(handler, tool, args if isinstance(args, dict) else {})

    def _take_failure(self, tool: str | None) -> Failure | None:
        with self.lock:
            for failure in self._state.failures:
                if failure.applies(tool):
                    if failure.times is not None:
                        failure.times -= 1
                    return failure
        return None

    def _fail(self, handler: Handler, failure: Failure) -> None:
        mode = failure.mode
        if mode == "unauthorized":
            handler.reply(401, {"ok": False, "error": {"type": "unauthorized"}})
        elif mode == "not_allowed":
            message = "Tool not available: sessions_spawn"
            handler.reply(404, {"ok": False, "error": {"type": "not_found", "message": message}})
        elif mode == "method_not_allowed":
            handler.reply(405, "Method Not Allowed", {"Allow": "GET"})
        elif mode == "rate_limited":
            handler.reply(429, "Too Many Requests", {"Retry-After": failure.retry_after})
        elif mode == "server_error":
            handler.reply(500, "Internal Server Error: upstream agent crashed")
        elif mode == "not_json":
            handler.reply(200, "<html><body>Welcome to the control UI</body></html>")
        elif mode == "not_ok":
            error = {"type": failure.error_type, "message": failure.message}
            handler.reply(400, {"ok": False, "error": error})

    def _invoke(self, handler: Handler, tool: str | None, args: dict[str, Any]) -> None:
        tools = {
            "sessions_spawn": self._spawn,
            "sessions_list": self._list,
            "sessions_history": self._history,
        }
        if tool not in tools:
            message = f"Tool not available: {tool}"
            return handler.reply(
                404, {"ok": False, "error": {"type": "not_found", "message": message}}
            )
        try:
            result = tools[tool](args)
        except LookupError as exc:
            error = {"type": "tool_error", "message": str(exc)}
            return handler.reply(400, {"ok": False, "error": error})
        handler.reply(200, {"ok": True, "result": result})

    def _spawn(self, args: dict[str, Any]) -> dict[str, Any]:
        number = next(self._ids)
        key, run_id = f"agent:main:subagent:fake-{number}", f"run-{number}"
        with self.lock:
            queued = self._state.next_sessions
            session = queued.popleft() if queued else ScriptedSession()
            session.task = str(args.get("task", ""))
            self._state.sessions[key] = session
            self._state.spawned.append(key)
        details = {"status": "accepted", "childSessionKey": key, "runId": run_id}
        if self.spawn_shape == "flat":
            return details
        return {"content": [{"type": "text", "text": json.dumps(details)}], "details": details}

    def _list(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        limit = int(args.get("limit") or 200)
        with self.lock:
            rows = [session.row(key) for key, session in self._state.sessions.items()]
        return [row for row in rows if row is not None][:limit]

    def _history(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        key = str(args.get("sessionKey"))
        with self.lock:
            session = self._state.sessions.get(key)
        if session is None:
            raise LookupError(f"Session not found: {key}")
        limit = int(args.get("limit") or 50)
        return session.transcript()[-limit:]


def _parse(body: bytes) -> tuple[str | None, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(payload, dict):
        return None, None
    return payload.get("tool"), payload.get("args")
