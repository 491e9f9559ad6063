"""URLs shown without their secrets: a userinfo password, and password-like query values.

A URL in the configuration may carry credentials (``redis://:PASS@host/0``,
``redis://host/0?password=PASS``, ``https://user:PASS@gateway``). Wherever the
configuration is shown (``/config``, ``diffsettings``, a refused value, an error a run
records) it goes through ``redact_url``; the code that connects keeps the real URL.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

REDACTED = "[redacted]"
# Query parameters whose value is a credential: password, passwd, token, api_key, apikey,
# secret, client_secret, auth, signature, sig, credential(s).
_SECRET_PARAMETER = re.compile(r"pass|token|key|secret|auth|sig|credential", re.IGNORECASE)
# scheme://authority, then the rest; an authority is everything up to / ? or #.
_URL = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<authority>[^/?#]*)(?P<rest>.*)$", re.S
)


def redact_url(url: str, mask: str | None = REDACTED) -> str:
    """``url`` with its password and every secret-looking query value replaced by ``mask``.

    ``mask=None`` drops the password (``user@host``: a link that asks for it). Text that
    is not ``scheme://...`` is returned as it is. Never raises: a malformed port or
    query is shown as written, only the secrets replaced.
    """
    match = _URL.match(url)
    if not match:
        return url
    userinfo, at, host = match["authority"].rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        userinfo = user if mask is None else f"{user}:{mask}"
    rest, hash_, fragment = match["rest"].partition("#")
    path, question, query = rest.partition("?")
    if question:
        query = "&".join(_redacted_parameter(part, mask or REDACTED) for part in query.split("&"))
    return f"{match['scheme']}{userinfo}{at}{host}{path}{question}{query}{hash_}{fragment}"


def _redacted_parameter(part: str, mask: str) -> str:
    name, equals, _ = part.partition("=")
    if equals and _SECRET_PARAMETER.search(unquote(name)):
        return f"{name}={mask}"
    return part


def without_url_secrets(text: str, url: str) -> str:
    """``text`` (an error message) with ``url``, and its ``:password@``, shown redacted."""
    text = text.replace(url, redact_url(url))
    match = _URL.match(url)
    userinfo = match["authority"].rpartition("@")[0] if match else ""
    if ":" in userinfo:
        text = text.replace(f":{userinfo.split(':', 1)[1]}@", f":{REDACTED}@")
    return text


def redact_urls_in(value: Any) -> Any:
    """A JSON-like document with every string holding a URL passed through ``redact_url``."""
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, dict):
        return {key: redact_urls_in(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_urls_in(item) for item in value]
    return value


class SecretUrl(str):
    """A URL string whose ``repr`` hides its secrets (``diffsettings``, Django's debug
    page): for settings that hold one, as ``Q_CLUSTER["redis"]``."""

    def __repr__(self) -> str:
        return repr(redact_url(str(self)))
