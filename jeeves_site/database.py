"""The ``default`` database: ``DATABASE_URL``, else SQLite in the data directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from jeeves_site.env import env_int

SQLITE_FILE_NAME = "jeeves.sqlite3"


def database_from_environment(
    data_dir: Path, db_path: str = "", environ: Mapping[str, str] = os.environ
) -> dict:
    """Return the Django ``DATABASES['default']`` entry.

    ``DATABASE_URL`` wins; otherwise SQLite at ``db_path`` (the config file's
    ``dbPath``) or ``<data dir>/jeeves.sqlite3``.
    """
    url = environ.get("DATABASE_URL", "").strip()
    if not url:
        path = Path(db_path) if db_path else data_dir / SQLITE_FILE_NAME
        return sqlite_database(path.resolve(), environ)
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
    engine = config.get("ENGINE", "")
    if engine.endswith("sqlite3"):
        return sqlite_database(Path(config["NAME"]).resolve(), environ)
    if not engine.endswith("postgresql"):
        raise ImproperlyConfigured(
            "DATABASE_URL must name a sqlite:// or postgres:// database; "
            f"{engine or 'this scheme'} is not supported"
        )
    test_name = environ.get("JEEVES_TEST_DATABASE_NAME", "")
    if test_name:
        config["TEST"] = {"NAME": test_name}
    return config


def sqlite_database(path: Path, environ: Mapping[str, str] = os.environ) -> dict:
    """SQLite tuned for many concurrent writers: WAL, a busy timeout, IMMEDIATE writes.

    IMMEDIATE makes every transaction take the write lock when it begins, so two
    writers queue on the busy timeout instead of one failing with "database is
    locked" when it upgrades a read lock.
    """
    busy_timeout_s = env_int("JEEVES_SQLITE_BUSY_TIMEOUT", 30, minimum=1, environ=environ)
    return {
        # Django's backend, creating the file 0600 (see jeeves_site/private_sqlite3).
        "ENGINE": "jeeves_site.private_sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "timeout": busy_timeout_s,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
        },
        # django-q2's pusher and workers call close_old_connections() on every poll
        # and task; with the default of 0 each call reopened the file and re-ran the
        # pragmas, a third of the runner's CPU per run.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        # Tests spawn real processes (workers, scripts), so the test database is a file.
        "TEST": {"NAME": str(path.with_name(f"test_{path.stem}.sqlite3"))},
    }


def database_url(db: Mapping | None = None) -> str:
    """The URL of a ``DATABASES`` entry (default: this process's database), as child
    processes get it in ``DATABASE_URL``."""
    if db is None:
        from django.conf import settings

        db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    credentials = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}@{host}{port}/{quote(db['NAME'], safe='')}"
