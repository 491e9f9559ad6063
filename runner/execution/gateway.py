"""OpenClaw Gateway client for session jobs, with no Django in it.

The gateway exposes one endpoint for tools, ``POST {url}/tools/invoke``; a session job
spawns an agent session with ``sessions_spawn`` and follows it with ``sessions_list``
(``runner.execution.session_follow``), falling back to ``sessions_history`` once the
session no longer shows in the list. The protocol is described in
shared/design/openclaw-gateway.md.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import socket
import time
from dataclasses import dataclass
from typing import Any, Self

import httpx

from jeeves_site.secret_urls import redact_url, without_url_secrets

logger = logging.getLogger("runner.gateway")

# The gateway's default body limit (DEFAULT_BODY_BYTES in its tools-invoke handler).
MAX_REQUEST_BYTES = 2 * 1024 * 1024
# sessions_list has no filter by key, so the runner narrows it two ways: activeMinutes
# just covers the time since the run started (a session is "active" while it is being
# updated), and limit keeps the page small. If other sessions push ours off that page,
# the run falls back to sessions_history, which answers for one key, so a small page
# costs an extra request at worst, never a wrong outcome.
SESSIONS_LIST_LIMIT = 20
# Only the last message decides whether a transcript is complete.
HISTORY_LIMIT = 3
TOKEN_SOURCES = "gatewayTokenPath, gatewayApiKey or OPENCLAW_GATEWAY_TOKEN"
NO_STATUS = "unknown"


@dataclass(frozen=True, repr=False)
class GatewayConfig:
    """Where the gateway listens and the bearer token for it (never shown by repr)."""

    url: str
    token: str | None
    request_timeout_s: float = 10

    def __repr__(self) -> str:
        token = "<set>" if self.token else "<missing>"
        return (
            f"GatewayConfig(url={redact_url(self.url)!r}, token={token}, "
            f"request_timeout_s={self.request_timeout_s!r})"
        )


class GatewayError(Exception):
    """A gateway call failed; ``str(error)`` is a message fit for the run's error field.

    ``retry_after`` holds the seconds a 429 asked to wait; ``transient`` marks failures
    (unreachable, timeout, 5xx) that may pass if the same request is tried later.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.transient = transient


class PromptError(ValueError):
    """A session job's script does not give a usable prompt."""


@dataclass(frozen=True)
class SpawnedSession:
    """The session a ``sessions_spawn`` call started."""

    session_key: str
    run_id: str | None


@dataclass(frozen=True)
class SessionStatus:
    """One row of ``sessions_list`` for the session being followed."""

    session_key: str
    status: str
    total_tokens: int | None = None
    model: str | None = None
    error: str | None = None


class GatewayClient:
    """Calls gateway tools over HTTP and turns every failure into a ``GatewayError``."""

    def __init__(self, config: GatewayConfig, *, transport: httpx.BaseTransport | None = None):
        self.config = config
        self._endpoint = config.url.rstrip("/") + "/tools/invoke"
        self._http = httpx.Client(timeout=config.request_timeout_s, transport=transport)

    def __repr__(self) -> str:
        return f"GatewayClient({self.config!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._http.close()

    def invoke(self, tool: str, args: dict[str, Any]) -> Any:
        """Run one gateway tool and return its ``result``; raise ``GatewayError`` on failure."""
        body = json.dumps({"tool": tool, "args": args}, ensure_ascii=False).encode()
        if len(body) > MAX_REQUEST_BYTES:
            raise GatewayError(_too_large_message(tool, len(body)))
        try:
            response = self._http.post(self._endpoint, content=body, headers=self._headers())
        except httpx.TimeoutException:
            raise self._error(
                f"the gateway at {self.config.url} did not answer {tool} within "
                f"{self.config.request_timeout_s:g} s (request timeout)",
                transient=True,
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._connection_error(exc) from None
        logger.debug("gateway %s answered HTTP %s", tool, response.status_code)
        self._raise_for_status(tool, response)
        return self._result(tool, response)

    def spawn(
        self, task: str, label: str, thinking: str | None, run_timeout_s: float
    ) -> SpawnedSession:
        """Start an agent session for ``task``; returns at once with its key and run id."""
        args: dict[str, Any] = {
            "task": task,
            "label": label,
            "runTimeoutSeconds": max(1, math.ceil(run_timeout_s)),
        }
        if thinking:
            args["thinking"] = thinking
        return self._spawned(self.invoke("sessions_spawn", args))

    def find_session(
        self, session_key: str, *, active_minutes: int = 10, limit: int = SESSIONS_LIST_LIMIT
    ) -> SessionStatus | None:
        """Look ``session_key`` up in ``sessions_list``; None when it is not listed.

        Pass the smallest ``active_minutes`` that covers the run's age (see
        SESSIONS_LIST_LIMIT for why a small page is safe).
        """
        args = {"activeMinutes": max(1, active_minutes), "limit": limit, "messageLimit": 0}
        for row in _rows(self.invoke("sessions_list", args), "sessions"):
            if session_key in (row.get("sessionKey"), row.get("key")):
                return _session_status(session_key, row)
        return None

    def history(self, session_key: str) -> list[dict[str, Any]]:
        """Return the last few transcript messages of a session, tool results left out."""
        args = {"sessionKey": session_key, "limit": HISTORY_LIMIT, "includeTools": False}
        return _rows(self.invoke("sessions_history", args), "messages")

    @staticmethod
    def transcript_complete(messages: list[dict[str, Any]]) -> bool:
        """Whether a transcript ends with a finished assistant turn."""
        return transcript_complete(messages)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        return headers

    def _error(self, message: str, **kwargs: Any) -> GatewayError:
        # Bodies and library messages are quoted in errors; make sure none echoes the token.
        if self.config.token:
            message = message.replace(self.config.token, "[token]")
        return GatewayError(without_url_secrets(message, self.config.url), **kwargs)

    def _connection_error(self, exc: Exception) -> GatewayError:
        url = self.config.url
        if _caused_by(exc, socket.gaierror):
            message = f"cannot resolve the gateway host in {url} (DNS lookup failed); "
            message += "check gatewayUrl"
        elif _caused_by(exc, ConnectionRefusedError):
            message = f"the OpenClaw gateway is not reachable at {url}: connection refused "
            message += "(is the gateway running, and is gatewayUrl right?)"
        elif isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
            return self._error(f"gatewayUrl {url!r} is not a usable http(s) URL: {exc}")
        else:
            message = f"cannot talk to the OpenClaw gateway at {url}: {exc}"
        return self._error(message, transient=True)

    def _raise_for_status(self, tool: str, response: httpx.Response) -> None:
        status = response.status_code
        if status == 401:
            raise self._error(self._unauthorized_message(), status_code=401)
        if status == 404:
            raise self._error(_not_found_message(tool), status_code=404)
        if status == 405:
            raise self._error(
                f"the gateway at {self.config.url} refused POST /tools/invoke (405 Method "
                "Not Allowed); check that gatewayUrl points at the OpenClaw gateway itself",
                status_code=405,
            )
        if status == 413:
            raise self._error(_too_large_message(tool, None), status_code=413)
        if status == 429:
            raise self._rate_limited(response)
        if status >= 500:
            raise self._error(
                f"the gateway failed on {tool} with HTTP {status}: {_excerpt(response.text)}",
                status_code=status,
                transient=True,
            )

    def _unauthorized_message(self) -> str:
        if not self.config.token:
            return (
                f"the gateway at {self.config.url} requires a token (401 Unauthorized) and "
                f"none is configured; set {TOKEN_SOURCES}"
            )
        return (
            f"the gateway at {self.config.url} rejected the token (401 Unauthorized); "
            f"check the token supplied by {TOKEN_SOURCES}"
        )

    def _rate_limited(self, response: httpx.Response) -> GatewayError:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        wait = f"retry after {retry_after:g} s" if retry_after is not None else "no Retry-After"
        return self._error(
            f"the gateway is refusing requests for now (429 Too Many Requests, usually after "
            f"too many failed auth attempts); {wait}",
            status_code=429,
            retry_after=retry_after,
        )

    def _result(self, tool: str, response: httpx.Response) -> Any:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            raise self._error(
                f"the gateway answered {tool} with a body that is not JSON (HTTP {status}): "
                f"{_excerpt(response.text)}",
                status_code=status,
            ) from None
        if not isinstance(payload, dict) or "ok" not in payload:
            raise self._error(
                f"the gateway answered {tool} with unexpected JSON (HTTP {status}): "
                f"{_excerpt(response.text)}",
                status_code=status,
            )
        if payload["ok"] is not True:
            raise self._error(_tool_failed_message(tool, payload.get("error")), status_code=status)
        if status != 200:
            raise self._error(
                f"the gateway answered {tool} with unexpected HTTP {status}", status_code=status
            )
        return payload.get("result")

    def _spawned(self, result: Any) -> SpawnedSession:
        result = result if isinstance(result, dict) else {}
        details = result.get("details") if isinstance(result.get("details"), dict) else {}
        if details.get("status") in ("error", "forbidden"):
            reason = details.get("error") or details["status"]
            raise self._error(f"the gateway refused to spawn the session: {reason}")
        key = details.get("childSessionKey") or result.get("childSessionKey")
        run_id = details.get("runId") or result.get("runId")
        if not isinstance(key, str) or not key:
            raise self._error(
                "sessions_spawn answered without a session key "
                "(expected result.details.childSessionKey)"
            )
        return SpawnedSession(session_key=key, run_id=str(run_id) if run_id else None)


def transcript_complete(messages: list[dict[str, Any]]) -> bool:
    """Whether a transcript ends with an assistant message that carries a stop reason."""
    if not messages:
        return False
    last = messages[-1]
    # "toolUse" ends a turn that waits for a tool result, not the session; with
    # includeTools false that result is filtered out, so this turn can look last.
    return last.get("role") == "assistant" and last.get("stopReason") not in (None, "", "toolUse")


def _session_status(key: str, row: dict[str, Any]) -> SessionStatus:
    tokens = row.get("totalTokens")
    error = row.get("error") or row.get("errorMessage")
    return SessionStatus(
        session_key=key,
        status=str(row.get("status") or NO_STATUS),
        total_tokens=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        model=row.get("model") if isinstance(row.get("model"), str) else None,
        error=str(error) if error else None,
    )


def _rows(result: Any, name: str) -> list[dict[str, Any]]:
    """The list a tool returned: bare, as ``result[name]`` or as ``result.details[name]``."""
    if isinstance(result, dict):
        details = result.get("details")
        result = result.get(name, details.get(name) if isinstance(details, dict) else None)
    return [row for row in result if isinstance(row, dict)] if isinstance(result, list) else []


def _tool_failed_message(tool: str, error: Any) -> str:
    if not isinstance(error, dict):
        return f"the gateway reported that {tool} failed, without saying why"
    kind = error.get("type") or "error"
    return f"the gateway reported that {tool} failed: {kind}: {error.get('message') or '-'}"


def _not_found_message(tool: str) -> str:
    if tool == "sessions_spawn":
        return (
            "the gateway does not allow the tool sessions_spawn (404): add `sessions_spawn` "
            "to `gateway.tools.allow` in the OpenClaw configuration (it is on the gateway's "
            "default HTTP deny list)"
        )
    return f"the gateway does not offer the tool {tool} (404: unknown or not allowed by policy)"


def _too_large_message(tool: str, size: int | None) -> str:
    limit = f"{MAX_REQUEST_BYTES // (1024 * 1024)} MB"
    what = "the prompt is too large" if tool == "sessions_spawn" else f"{tool} is too large"
    if size is None:
        return f"{what}: the gateway refused the request body (413; its default limit is {limit})"
    mb = size / 1024 / 1024
    return f"{what}: the request would be {mb:.1f} MB, over the gateway's {limit} limit; not sent"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header, given as seconds or as an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _excerpt(text: str, limit: int = 200) -> str:
    line = one_line(text)
    return line if len(line) <= limit else line[:limit] + "..."


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, line breaks too, made one space."""
    return " ".join(text.split())
