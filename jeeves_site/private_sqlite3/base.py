"""Django's SQLite backend, with the database file created 0600 in a 0700 directory.

SQLite creates a missing database file with the process's umask (0644 usually), and
gives its ``-wal`` and ``-shm`` files the database file's mode. Creating the file
private before SQLite opens it makes all three private, whichever process touches
the database first: ``migrate``, the daemons, the web app, or a script's client.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from django.db.backends.sqlite3 import base

from jeeves_site.private_files import create_private_file, ensure_private_dir

_may_create = True


def open_existing_only() -> None:
    """From now on this process opens only a database file that exists (a read-only
    command: ``jeeves_site.read_only``); a missing one is an OperationalError."""
    global _may_create
    _may_create = False


class DatabaseWrapper(base.DatabaseWrapper):
    """The stock SQLite wrapper; only a new connection's file creation differs."""

    def get_new_connection(self, conn_params):
        database = conn_params.get("database")
        if isinstance(database, (str, Path)) and not self.is_in_memory_db():
            path = Path(database)
            if not str(path).startswith("file:"):
                if not _may_create and not path.exists():
                    raise sqlite3.OperationalError(f"the database {path} does not exist")
                ensure_private_dir(path.parent)
                create_private_file(path)
        return super().get_new_connection(conn_params)
