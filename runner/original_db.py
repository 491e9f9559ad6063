"""Recognising a database of the original jeeves-runner (TypeScript).

Its tables have our six names but other columns, and it records its own
migrations in ``schema_version`` — a table no Django database of ours has. Ours
cannot run on it in place (``migrate`` would die on "table queues already
exists"); ``manage.py import_original_db PATH`` copies its rows into ours.
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

from django.db import DatabaseError, connections

from jeeves_site.echo import shown_path

# The original's schema as its migrations 3..6 leave it; older ones lack state/state_items.
OLDEST_IMPORTABLE_VERSION = 3
MARKER_TABLE = "schema_version"


class NotAnOriginalDatabase(Exception):
    """The file is not an original jeeves-runner database we can read; the message says why."""


def open_original(path: Path) -> tuple[sqlite3.Connection, int]:
    """Open an original ``runner.sqlite`` read-only; return it with its schema version."""
    problem = _file_problem(path)
    if problem:
        raise NotAnOriginalDatabase(f"{shown_path(path)}: {problem}")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        tables = _sqlite_tables(db)
    except sqlite3.DatabaseError as exc:
        raise NotAnOriginalDatabase(f"{shown_path(path)}: not an SQLite database ({exc})") from None
    if MARKER_TABLE not in tables or "jobs" not in tables:
        db.close()
        raise NotAnOriginalDatabase(
            f"{shown_path(path)}: not a database of the original jeeves-runner "
            "(no schema_version table)"
        )
    version = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    if version < OLDEST_IMPORTABLE_VERSION:
        db.close()
        raise NotAnOriginalDatabase(
            f"{shown_path(path)}: schema version {version} is older than "
            f"{OLDEST_IMPORTABLE_VERSION}; start the original jeeves-runner once so that it "
            "migrates its database, then import it"
        )
    return db, version


def _file_problem(path: Path) -> str | None:
    """Why ``path`` is not a regular file to read a database from, or None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(mode):
        return "is a directory, not a database file"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a device, a pipe or a socket), not a database file"
    return None


def _sqlite_tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def configured_database_is_original(alias: str = "default") -> str | None:
    """The configured database's name when it is an original jeeves-runner database, else None.

    SQLite is read from the file without creating it; on PostgreSQL, a database
    that does not answer is left to the other checks.
    """
    settings_dict = connections[alias].settings_dict
    if settings_dict["ENGINE"].endswith("sqlite3"):
        path = Path(settings_dict["NAME"])
        if not path.is_file():
            return None
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                tables = _sqlite_tables(db)
            finally:
                db.close()
        except sqlite3.DatabaseError:
            return None
    else:
        try:
            with connections[alias].cursor() as cursor:
                tables = set(connections[alias].introspection.table_names(cursor))
        except DatabaseError:
            return None
    if MARKER_TABLE in tables and "django_migrations" not in tables:
        return str(settings_dict["NAME"])
    return None


def original_database_message(name: str) -> str:
    """What to do when the configured database is the original's: the one-line fix."""
    return (
        f"the database {name} is the original jeeves-runner's (it has its schema_version "
        "table); ours cannot use it in place. Point dbPath (JEEVES_DB_PATH) or DATABASE_URL "
        "at a new database, run `manage.py migrate`, then bring the data over with "
        f"`manage.py import_original_db {name}`"
    )
