"""Where ``SECRET_KEY`` comes from: configured, or generated once into the data dir."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from jeeves_site.env import env_secret
from jeeves_site.private_files import FILE_MODE, ensure_private_dir

KEY_FILE_NAME = "secret_key"


def resolve_secret_key(data_dir: Path, *, debug: bool, uses_data_dir: bool) -> str:
    """Return ``DJANGO_SECRET_KEY`` (or ``_FILE``); else the data dir's generated key.

    An installation on a shared database (PostgreSQL) runs on several hosts that
    must agree on the key, so there a key must be configured unless DEBUG is on.
    """
    configured = env_secret("DJANGO_SECRET_KEY")
    if configured:
        return configured
    if not uses_data_dir and not debug:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when DATABASE_URL "
            "points at a shared database and DJANGO_DEBUG is off"
        )
    return _generated_key(data_dir)


def _generated_key(data_dir: Path) -> str:
    path = data_dir / KEY_FILE_NAME
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    ensure_private_dir(data_dir)
    key = secrets.token_urlsafe(50)
    # O_EXCL: when two processes start at once, one writes and both read its key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(fd, FILE_MODE)  # exact, whatever the umask
        handle.write(key)
    return key
