"""What the benchmarks and drills share: a scratch database, results, tables, child processes.

Databases: every script gets its own scratch database from :func:`scratch_database`,
whether it takes ``--db sqlite|postgres://...`` (:func:`db_argument`) or
``--database-url``: a SQLite file in a temporary data directory, or, given a
``postgres://`` URL, a fresh database created on that server and dropped afterwards
(the URL's own database name is only used to connect to the server). Django is set up
in the calling process and the database migrated.

Results: :func:`write_results` writes ``bench/results/<name>-<time>.json`` with the
command, the machine and its load average; :func:`percentile` and :func:`summary_ms`
are the one definition of a percentile (nearest rank); :func:`print_table` the one
table.

Processes: :class:`Group` runs ``python -m bench.<script> --role ...`` children given
only ``DATABASE_URL`` and ``PYTHONPATH``, as any script would be; :class:`Daemons` runs
``manage.py`` daemons (``runscheduler``) in their own process groups and kills them all
at the end; :func:`probe_script` and friends let an inline job script note each time
it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


# -- Django on a scratch database --------------------------------------------------------------


def db_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--db``: ``sqlite`` or a PostgreSQL server URL."""
    parser.add_argument(
        "--db",
        default="sqlite",
        help="'sqlite' (a fresh file in a temporary directory) or a postgres:// URL of a "
        "server to create a scratch database on (dropped afterwards)",
    )


def db_choice_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--db sqlite|postgres|both`` and ``--postgres-url`` (see ``on_each_db``)."""
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("JEEVES_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"),
        help="server to create a scratch database on (dropped afterwards)",
    )


def on_each_db(args: argparse.Namespace, script: str, name: str, bench: Callable) -> None:
    """Run ``bench(args)`` on a scratch database of ``args.db``; for ``both``, run
    ``script`` again once per database, each in a fresh process (Django is set up once)."""
    if args.db == "both":
        argv = [a for a in sys.argv[1:] if a not in ("--db", "both", "--db=both")]
        for db in ("sqlite", "postgres"):
            subprocess.run([sys.executable, script, "--db", db, *argv], check=True)
        return
    with scratch_database(args.postgres_url if args.db == "postgres" else None, name):
        bench(args)


@dataclass
class Scratch:
    """A scratch database in use: its URL, a temporary directory, the environment to pass on."""

    url: str
    directory: Path
    env: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def scratch_database(db: str | None, name: str) -> Iterator[Scratch]:
    """Set Django up in this process on a fresh, migrated database; remove it afterwards.

    ``db`` is ``None``, ``""`` or ``"sqlite"`` for a SQLite file in a temporary data
    directory, or a ``postgres://`` URL of a server on which database ``name`` (with this
    process's id) is created, then dropped. ``Scratch.env`` is what a daemon or child
    needs to use the same database.
    """
    directory = Path(tempfile.mkdtemp(prefix=f"jeeves-bench-{name}-"))
    postgres = bool(db) and db != "sqlite"
    database = f"jeeves_bench_{name}_{os.getpid()}"
    env = {"JEEVES_DATA_DIR": str(directory), "JEEVES_Q_NAME": f"{name}-{os.getpid()}"}
    try:
        if postgres:
            env["DATABASE_URL"] = fresh_postgres(db, database)
            env["DJANGO_SECRET_KEY"] = os.environ.get("DJANGO_SECRET_KEY", "bench-only")
        else:
            env["DATABASE_URL"] = f"sqlite:///{directory / f'{name}.sqlite3'}"
        os.environ.pop("JEEVES_CONFIG", None)
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "jeeves_site.settings"
        setup_django()
        logging.getLogger("runner").setLevel(logging.WARNING)  # no line per run
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield Scratch(env["DATABASE_URL"], directory, env)
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        shutil.rmtree(directory, ignore_errors=True)
        if postgres:
            drop_postgres(db, database)


def setup_django() -> None:
    """Set Django up in this process the way a script's client does (the environment's settings)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from runner.client import setup_django as client_setup_django

    client_setup_django()


def database_vendor() -> str:
    """``sqlite`` or ``postgresql``: which database this process's Django uses."""
    from django.db import connection

    return connection.vendor


def _with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def fresh_postgres(server_url: str, name: str) -> str:
    """Create database ``name`` (anew) on the server at ``server_url``; return its URL."""
    import psycopg

    with psycopg.connect(_with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(server_url, name)


def drop_postgres(server_url: str, name: str) -> None:
    """Drop database ``name`` on the server at ``server_url``, if it is there."""
    import psycopg

    with psycopg.connect(_with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- statistics, tables, results ---------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max of durations given in seconds, in milliseconds."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "p50_ms": ms(percentile(seconds, 50)),
        "p99_ms": ms(percentile(seconds, 99)),
        "max_ms": ms(max(seconds) if seconds else None),
    }


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print rows under headers in aligned columns (None as ``-``, floats shortened)."""
    cells = [[str(h) for h in headers]] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # The machine is shared: a high load average means noisy timings.
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``data`` with the command and the machine to bench/results/<name>-<time>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# -- children that start together and report one JSON line -------------------------------------


def child_env(url: str) -> dict[str, str]:
    """What a child gets: the database URL and the project on its path, nothing else."""
    return {"DATABASE_URL": url, "PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")}


class Group:
    """Child processes that print ``ready``, start on ``go``, and end with one JSON line."""

    def __init__(self, module: str, url: str, argvs: Iterable[Sequence[str]]) -> None:
        self.procs = [spawn(module, url, argv) for argv in argvs]

    def __enter__(self) -> Group:
        return self

    def __exit__(self, *exc_info: object) -> None:
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
        """Every child's JSON line, in order; raise if one fails or the time runs out."""
        deadline = time.monotonic() + timeout
        return [finish(proc, deadline) for proc in self.procs]


def spawn(module: str, url: str, argv: Sequence[str]) -> subprocess.Popen:
    """Start ``python -m module --role argv`` on the database at ``url``."""
    return subprocess.Popen(
        [sys.executable, "-m", module, "--role", *argv],
        env=child_env(url),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def await_ready(proc: subprocess.Popen) -> None:
    """Wait for a child's ``ready`` line."""
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise SystemExit(f"a child failed to start (exit {proc.wait()})")


def finish(proc: subprocess.Popen, deadline: float) -> dict:
    """A child's last stdout line as JSON, once it has exited successfully."""
    out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
    if proc.returncode != 0:
        raise SystemExit(f"a child exited with {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def child_start() -> None:
    """In a child: set up, say ready, wait for go."""
    setup_django()
    print("ready", flush=True)
    sys.stdin.readline()


def child_report(result: dict) -> None:
    """In a child: the one JSON line the parent reads."""
    print(json.dumps(result), flush=True)


# -- manage.py daemons and the probe script ----------------------------------------------------


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
