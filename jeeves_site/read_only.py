"""Commands that only read: they open the database that exists and never create one.

Opening SQLite creates a missing file, and the runner's backend its directories too
(``jeeves_site.private_sqlite3``): right for ``migrate`` and the daemons of a fresh
installation, wrong for ``list_jobs`` run with a mistyped ``DATABASE_URL``, which
left directories and an empty database behind before saying it had no tables.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``check`` reports and changes nothing; the others print what the database holds.
READ_ONLY_COMMANDS = frozenset({"check", "list_jobs", "runner_status", "showmigrations"})


def prepare_read_only_command(argv: list[str]) -> None:
    """``manage.py``: for a read-only command, SQLite opens only an existing file; a
    missing one stops it (but ``check``, which reports without the database) with one
    line. Settings that do not load are left for the command to report."""
    command = argv[1] if len(argv) > 1 else ""
    if command not in READ_ONLY_COMMANDS:
        return
    from django.conf import settings

    from jeeves_site.private_sqlite3.base import open_existing_only

    try:
        database = settings.DATABASES["default"]
    except Exception:
        return
    open_existing_only()
    missing = missing_sqlite_file(database)
    if missing is not None and command != "check":
        sys.exit(
            f"manage.py: the database {missing} does not exist (nothing was created): run "
            "manage.py migrate, or give this command the runner's JEEVES_DATA_DIR or "
            "DATABASE_URL"
        )


def missing_sqlite_file(database: dict) -> Path | None:
    """The SQLite file ``database`` names when it does not exist; else None."""
    if not database["ENGINE"].endswith("sqlite3"):
        return None
    name = str(database["NAME"])
    if name.startswith(("file:", ":")) or Path(name).exists():
        return None
    return Path(name)
