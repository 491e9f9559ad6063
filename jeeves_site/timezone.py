"""The server's configured time zone, the default zone for jobs that name none."""

from __future__ import annotations

import os
from pathlib import Path

_ZONEINFO_MARKER = "zoneinfo/"


def server_time_zone() -> str:
    """Return the IANA name of this machine's zone (``TZ``, /etc/timezone, /etc/localtime)."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if (tz and "/" in tz) or tz == "UTC":
        return tz
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        if name:
            return name
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return "UTC"
    index = target.find(_ZONEINFO_MARKER)
    return target[index + len(_ZONEINFO_MARKER) :] if index >= 0 else "UTC"
