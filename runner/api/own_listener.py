"""Whether this runner's user serves the address scripts are told to send their run
token to (``JR_API_URL``).

A loopback port is open to every local user: when the web server is not running
(``runscheduler`` alone, a ``runworkers`` host, a restart), or listens elsewhere
(``::1`` while scripts are told ``127.0.0.1``), another user can listen there and
collect the scripts' ``JR_API_TOKEN`` (a probe, 2026-12-01). While our own socket
listens at the address, no other user can bind it, so a script is given the URL and
token only when every socket listening at that address and port belongs to this
process's user. Read from ``/proc/net/tcp`` and ``tcp6`` (Linux), at most once a
``CHECK_EVERY_S``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
_TABLES = (("/proc/net/tcp", socket.AF_INET, "=I"), ("/proc/net/tcp6", socket.AF_INET6, "=4I"))


def served_by_this_user(url: str) -> bool:
    """Whether a loopback ``url``'s address and port are listened on, and only by sockets
    of this process's effective user. A URL that is not ``http`` to a loopback IP literal
    or ``localhost`` is not ours to judge: True."""
    target = _loopback_target(url)
    if target is None:
        return True
    addresses, port = target
    owners = [owner for address, owner in listeners(port) if _reaches(address, addresses)]
    return bool(owners) and all(owner == os.geteuid() for owner in owners)


def listeners(port: int) -> Iterator[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """(address, owner uid) of every TCP socket listening on ``port``."""
    for path, family, layout in _TABLES:
        try:
            with open(path, encoding="ascii") as table:
                rows = table.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 8 or fields[3] != _LISTEN:
                continue
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) != port:
                continue
            # The kernel prints each 32-bit word of the address in this host's byte order.
            raw = struct.pack(
                layout, *(int(address[i : i + 8], 16) for i in range(0, len(address), 8))
            )
            yield ipaddress.ip_address(socket.inet_ntop(family, raw)), int(fields[7])


class Cached:
    """``served_by_this_user(url)``, asked again at most every ``CHECK_EVERY_S`` seconds
    (``clock``: monotonic); a change is logged once: a warning when scripts lose the
    token (or never had it), a note when they get it back."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._known: dict[str, tuple[float, bool]] = {}

    def __call__(self, url: str) -> bool:
        now = self._clock()
        with self._lock:
            at, served = self._known.get(url, (-CHECK_EVERY_S, None))
            if now - at < CHECK_EVERY_S and served is not None:
                return served
            fresh = served_by_this_user(url)
            self._known[url] = (now, fresh)
        if fresh != served and (served is not None or not fresh):  # a first "yes" is news to none
            _log_change(url, fresh)
        return fresh


def _log_change(url: str, served: bool) -> None:
    if served:
        logger.info("scripts get JR_API_URL and JR_API_TOKEN again: %s is served", url)
        return
    logger.warning(
        "scripts get no JR_API_URL or JR_API_TOKEN: nothing of this user (uid %d) listens at "
        "%s, so another local user could, and would collect the run tokens. Start the web "
        "server (scripts/start) at that address, or set JEEVES_API_URL to where it is",
        os.geteuid(),
        url,
    )


def _loopback_target(url: str) -> tuple[set, int] | None:
    """(the loopback addresses a connection to ``url`` may go to, its port), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port or (80 if parts.scheme == "http" else None)
    except ValueError:
        return None
    if parts.scheme != "http" or port is None or not parts.hostname:
        return None
    if parts.hostname == "localhost":
        return {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}, port
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    return ({address}, port) if address.is_loopback else None


def _reaches(listening, targets: set) -> bool:
    """Whether a socket listening on ``listening`` takes connections to one of ``targets``:
    the same address, an IPv4-mapped one, or a wildcard (IPv6's takes IPv4 too)."""
    if listening.is_unspecified:
        return listening.version == 6 or any(target.version == 4 for target in targets)
    mapped = getattr(listening, "ipv4_mapped", None)
    return listening in targets or (mapped is not None and mapped in targets)
