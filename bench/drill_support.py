"""What the reliability drills share: a scratch database, daemon processes, the probe, tables.

A drill runs real ``manage.py runscheduler`` processes against a database of its
own (a SQLite file in a temporary data directory, or a scratch PostgreSQL
database), then reads the outcome through the ORM in this process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def probe_script(marker: Path, then: str = "") -> str:
    """An inline job script whose first line notes its run id and the time."""
    return f'printf "%s %s\\n" "$JR_RUN_ID" "$EPOCHREALTIME" >> {marker}\n{then}'


def probe_lines(marker: Path) -> list[tuple[int, float]]:
    """(run id, first-line time) for every script execution, in order."""
    if not marker.exists():
        return []
    rows = (line.split() for line in marker.read_text().splitlines() if line.strip())
    return [(int(run_id), float(at)) for run_id, at in rows]


def executions(marker: Path) -> Counter:
    """How many times each run id's script started."""
    return Counter(run_id for run_id, _ in probe_lines(marker))


@contextlib.contextmanager
def scratch_database(url: str | None, name: str) -> Iterator[dict[str, str]]:
    """Environment for a fresh database: SQLite in a temp dir, or ``name`` on url's server."""
    work = Path(tempfile.mkdtemp(prefix=f"jeeves-{name}-"))
    env = {"JEEVES_DATA_DIR": str(work), "JEEVES_Q_NAME": f"{name}-{os.getpid()}"}
    try:
        if url:
            env["DATABASE_URL"] = _fresh_postgres(url, name)
            env.setdefault("DJANGO_SECRET_KEY", os.environ.get("DJANGO_SECRET_KEY", "drill-only"))
        yield env
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if url:
            _drop_postgres(url, name)


def _fresh_postgres(url: str, name: str) -> str:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path="/" + name))


def _drop_postgres(url: str, name: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def use_database(env: dict[str, str]) -> None:
    """Point this process's Django at the drill's database, migrate it, and set up."""
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "jeeves_site.settings"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


class Daemons:
    """``manage.py`` daemons, each leading its own process group, all killed at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = {**os.environ, **env}
        self.logs = logs
        self.processes: list[subprocess.Popen] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        """Start ``manage.py args`` in a new session."""
        log = (self.logs / f"daemon-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log = Path(log.name)
        self.processes.append(process)
        return process

    def wait_ready(self, process: subprocess.Popen, count: int = 1, timeout: float = 60) -> None:
        """Wait until the scheduler has planned its jobs (``count`` times in its log)."""
        wait_for(
            "the scheduler to plan its jobs",
            lambda: process.log.read_text(errors="replace").count("jobs planned") >= count,
            timeout,
        )

    def kill_all(self) -> None:
        """SIGKILL every daemon's group and every process below it."""
        doomed: list[psutil.Process] = []
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                doomed += psutil.Process(process.pid).children(recursive=True)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in doomed:
            with contextlib.suppress(psutil.Error):
                process.kill()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    """Poll ``probe`` until it returns something truthy; raise at the deadline."""
    from django.db import close_old_connections

    deadline = time.monotonic() + timeout
    while True:
        close_old_connections()
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows in aligned columns under their headers."""
    cells = [list(map(str, headers))] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write the figures, the command and the machine to bench/results/<name>-<time>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    payload = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        },
        **data,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path
