"""Shared by the benchmarks and drills: the database to use, child processes, results.

Every script takes ``--db``: ``sqlite`` (a fresh file in bench/results/) or a
``postgres://`` URL (created if missing, migrated, its queue and state tables
emptied). Children are ``python -m bench.<script> --role ...`` processes given
only ``DATABASE_URL`` and ``PYTHONPATH``, as any script would be.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default="sqlite",
        help="'sqlite' (a fresh file in bench/results/) or a postgres:// URL of a scratch database",
    )


def prepare_database(db: str, name: str) -> str:
    """Return the DATABASE_URL to use, migrated and with empty queue and state tables."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    if db == "sqlite":
        path = RESULTS / f"{name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        url = db
        _create_postgres_database(url)
    os.environ["DATABASE_URL"] = url
    setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        for table in ("queue_items", "queues", "state_items", "state"):
            cursor.execute(f"DELETE FROM {table}")
    return url


def setup() -> None:
    """Set Django up in this process the way a script's client does."""
    sys.path.insert(0, str(ROOT))
    from runner.client import setup_django

    setup_django()


def _create_postgres_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def child_env(url: str) -> dict[str, str]:
    """What a child gets: the database URL and the project on its path, nothing else."""
    return {"DATABASE_URL": url, "PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")}


class Group:
    """Child processes that print ``ready``, start on ``go``, and end with one JSON line."""

    def __init__(self, module: str, url: str, argvs: Iterable[Sequence[str]]) -> None:
        self.procs = [spawn(module, url, argv) for argv in argvs]

    def __enter__(self) -> Group:
        return self

    def __exit__(self, *exc_info) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def start(self) -> float:
        """Wait until every child is ready, release them together; return the start time."""
        for proc in self.procs:
            await_ready(proc)
        started = time.perf_counter()
        for proc in self.procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return started

    def results(self, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        return [finish(proc, deadline) for proc in self.procs]


def spawn(module: str, url: str, argv: Sequence[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, "--role", *argv],
        env=child_env(url),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def await_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise SystemExit(f"a child failed to start (exit {proc.wait()})")


def finish(proc: subprocess.Popen, deadline: float) -> dict:
    out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
    if proc.returncode != 0:
        raise SystemExit(f"a child exited with {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def child_start() -> None:
    """In a child: set up, say ready, wait for go."""
    setup()
    print("ready", flush=True)
    sys.stdin.readline()


def child_report(result: dict) -> None:
    print(json.dumps(result), flush=True)


def vendor(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50": 0.0, "p99": 0.0}
    q = statistics.quantiles(ordered, n=100) if len(ordered) > 1 else [ordered[0]] * 99
    return {"p50": statistics.median(ordered), "p99": q[98]}


def save(name: str, data: dict) -> Path:
    """Write ``data`` with the command line and machine to bench/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **data,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A small fixed-width text table."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)
