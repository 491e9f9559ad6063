"""The server's time zone, the default zone for jobs that name none.

Read the way the C library (glibc) reads it, so the runner agrees with ``date``
and cron on the same machine:

1. ``TZ``, with or without a leading ``:`` -- a zone name (``Japan``,
   ``Europe/Berlin``), a zone file path (``/usr/share/zoneinfo/Asia/Tokyo``) or
   ``/etc/localtime`` itself; a POSIX rule with a whole-hour fixed offset
   (``JST-9``) maps to ``Etc/GMT-9``;
2. else ``/etc/localtime``: a symlink into a zoneinfo directory, or a copy of a
   zone file, recognised by its content;
3. else (no ``/etc/localtime``) UTC, as glibc does.

Django needs an IANA name, so when none can be found the zone is UTC and
``problem`` says why (``manage.py check`` reports it as runner.E004).
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOCALTIME = Path("/etc/localtime")
ZONEINFO_ROOT = Path("/usr/share/zoneinfo")
_MARKER = "zoneinfo/"
_FIXED_POSIX = re.compile(r"^[A-Za-z]{3,}([+-]?)(\d{1,2})$")
_NOT_ZONES = {"posix", "right", "posixrules", "localtime", "Factory"}


@dataclass(frozen=True)
class ServerZone:
    """The IANA ``name`` to use, and ``problem`` when it could not be known (then UTC)."""

    name: str
    problem: str = ""


def configured_time_zone(environ: Mapping[str, str] = os.environ) -> ServerZone:
    """``JEEVES_TIME_ZONE`` when set (it must be an IANA name), else the server's zone."""
    name = environ.get("JEEVES_TIME_ZONE", "").strip()
    if not name:
        return server_time_zone(environ)
    if _is_zone(name):
        return ServerZone(name)
    return ServerZone("UTC", f"JEEVES_TIME_ZONE={name} is not a known IANA time zone")


def server_time_zone(
    environ: Mapping[str, str] = os.environ,
    localtime: Path = LOCALTIME,
    zoneinfo_root: Path | None = None,
) -> ServerZone:
    """This machine's zone: ``TZ``, then ``/etc/localtime``, then UTC (see the module)."""
    root = zoneinfo_root or Path(environ.get("TZDIR") or ZONEINFO_ROOT)
    if "TZ" in environ:
        return _from_tz(environ["TZ"].removeprefix(":"), root)
    if not os.path.lexists(localtime):
        return ServerZone("UTC")
    return _from_file(localtime, root) or _unknown(f"{localtime} is not a known zone file")


def _from_tz(value: str, root: Path) -> ServerZone:
    if not value:  # TZ= or TZ=: means UTC to glibc
        return ServerZone("UTC")
    if value.startswith("/"):
        found = _from_file(Path(value), root)
        return found or _unknown(f"TZ={value} is not a readable zone file")
    if _is_zone(value):
        return ServerZone(value)
    match = _FIXED_POSIX.match(value)
    if match and int(match[2]) <= 12:
        hours = int(match[2])
        # POSIX offsets are west-positive, like the Etc/GMT names.
        return ServerZone("UTC" if hours == 0 else f"Etc/GMT{match[1] or '+'}{hours}")
    return _unknown(f"TZ={value} names no zone in {root} (use an IANA name such as Europe/Berlin)")


def _from_file(path: Path, root: Path) -> ServerZone | None:
    """The zone a zone file path stands for: by its link target, then by content."""
    try:
        target = path.resolve(strict=True)
    except OSError:
        return None
    name = _name_in_zoneinfo(str(target))
    if name and _is_zone(name):
        return ServerZone(name)
    name = _name_by_content(target, root)
    return ServerZone(name) if name else None


def _name_in_zoneinfo(path: str) -> str:
    index = path.rfind(_MARKER)
    if index < 0:
        return ""
    name = path[index + len(_MARKER) :]
    for prefix in ("posix/", "right/"):
        name = name.removeprefix(prefix)
    return name


def _name_by_content(path: Path, root: Path) -> str:
    """The best name under ``root`` whose file has the same bytes (Region/City first)."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    matches = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [name for name in subdirectories if name not in _NOT_ZONES]
        for file in files:
            candidate = Path(directory, file)
            if file in _NOT_ZONES or candidate.is_symlink():
                continue
            if _same_bytes(candidate, data):
                matches.append(str(candidate.relative_to(root)))
    matches.sort(key=lambda name: ("/" not in name, name.startswith("Etc/"), len(name), name))
    return matches[0] if matches else ""


def _same_bytes(candidate: Path, data: bytes) -> bool:
    try:
        return candidate.stat().st_size == len(data) and candidate.read_bytes() == data
    except OSError:
        return False


def _is_zone(name: str) -> bool:
    """A name Django accepts: zoneinfo knows it, and so does the system's zoneinfo root
    (Django refuses a TIME_ZONE missing from /usr/share/zoneinfo when that exists)."""
    if name.startswith("/") or ".." in name.split("/"):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a part too long
        return False
    return not ZONEINFO_ROOT.exists() or ZONEINFO_ROOT.joinpath(name).exists()


def _unknown(reason: str) -> ServerZone:
    return ServerZone(
        "UTC",
        f"cannot tell the server's time zone: {reason}; jobs without a timezone would "
        "run in UTC. Set JEEVES_TIME_ZONE (e.g. Europe/Berlin) or fix TZ / /etc/localtime",
    )
