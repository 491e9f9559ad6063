"""Shared set-up for the benchmarks: Django on a throw-away database, results as JSON."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@contextmanager
def django_on_scratch_database(database_url: str | None) -> Iterator[Path]:
    """Configure Django on a fresh SQLite file (or ``database_url``), migrated; yield a
    scratch directory for scripts, removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="jr-bench-"))
    os.environ["JEEVES_DATA_DIR"] = str(scratch)
    os.environ.pop("JEEVES_CONFIG", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jeeves_site.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    logging.getLogger("runner").setLevel(logging.WARNING)  # no line per run
    call_command("migrate", verbosity=0)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def database_vendor() -> str:
    """``sqlite`` or ``postgresql``: which database the figures were taken on."""
    from django.db import connection

    return connection.vendor


def write_results(name: str, figures: dict) -> Path:
    """Write ``figures`` with the machine and command line to bench/results/NAME.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "database": database_vendor(),
        **figures,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
