"""Real child processes for the concurrency tests: their environment and their work.

A child gets the environment a script started by the runner gets (see
``script_env``) pointed at the *test* database, and uses nothing but
``runner.client``. Run as ``python -m tests.procs <role> ...``; each role prints
``ready``, waits for a line on stdin (so all children start their work at
once), then prints what it did as one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from jeeves_site.database import database_url
from runner.execution import environment

ROOT = Path(__file__).resolve().parent.parent


def script_env(settings_dict: Mapping, job_id: str = "job", run_id: int = 1) -> dict[str, str]:
    """What the executor gives a script: the runner's environment without its secrets,
    plus the forced variables."""
    url = database_url(settings_dict)
    sqlite = settings_dict["ENGINE"].endswith("sqlite3")
    forced = {
        "JR_JOB_ID": job_id,
        "JR_RUN_ID": str(run_id),
        "JR_DB_PATH": str(Path(settings_dict["NAME"]).resolve()) if sqlite else "",
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "jeeves_site.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return environment.script_environment(os.environ, {}, forced)


def bare_env(settings_dict: Mapping) -> dict[str, str]:
    """Only ``DATABASE_URL`` and ``PYTHONPATH``: any Python process pointed at the database."""
    return {"DATABASE_URL": database_url(settings_dict), "PYTHONPATH": str(ROOT)}


class Children:
    """A group of ``python -m tests.procs`` processes; every one is killed on exit."""

    def __init__(self, env: Mapping[str, str], argvs: Iterable[list[str]]) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.procs", *argv],
                env=dict(env),
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for argv in argvs
        ]

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc_info) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()

    def wait_ready(self, procs=None) -> None:
        """Block until each child has set Django up and printed ``ready``."""
        for proc in procs or self.procs:
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise AssertionError(f"child did not start: {line!r} {proc.stderr.read()}")

    def go(self, procs=None) -> None:
        """Let the children start their work."""
        for proc in procs or self.procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def results(self, timeout: float, procs=None) -> list[dict]:
        """Each child's final JSON line; fails if one exits non-zero or outlives ``timeout``."""
        deadline = time.monotonic() + timeout
        found = []
        for proc in procs or self.procs:
            out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            if proc.returncode != 0:
                raise AssertionError(f"child exited {proc.returncode}: {err[-3000:]}")
            found.append(json.loads(out.strip().splitlines()[-1]))
        return found


# -- roles (run in the child) ------------------------------------------------------------------


def _start():
    from runner.client import get_runner_client

    client = get_runner_client()
    print("ready", flush=True)
    sys.stdin.readline()
    return client


def consume(queue: str, count: str, lease: str) -> None:
    """Claim and complete items until the queue is empty; report the ids completed."""
    client = _start()
    done = []
    while items := client.dequeue(queue, int(count), lease):
        for item in items:
            client.done(item.id)
            done.append(item.id)
    print(json.dumps({"done": done}), flush=True)


def claim_and_hang(queue: str, count: str, lease: str) -> None:
    """Claim one batch, report it, then wait to be killed."""
    client = _start()
    items = client.dequeue(queue, int(count), lease)
    print(json.dumps({"claimed": [item.id for item in items]}), flush=True)
    sys.stdin.readline()


def enqueue_keys(queue: str, first: str, last: str) -> None:
    """Enqueue one payload per key in first..last; report which were accepted."""
    client = _start()
    accepted = [
        key
        for key in range(int(first), int(last) + 1)
        if client.enqueue(queue, {"key": key}) is not None
    ]
    print(json.dumps({"accepted": accepted}), flush=True)


def write_state(writer: str, seconds: str) -> None:
    """Write values and collection items for ``seconds``; report writes and errors."""
    client = _start()
    deadline = time.monotonic() + float(seconds)
    writes, errors = 0, []
    while time.monotonic() < deadline:
        try:
            client.set_state("load", f"w{writer}", writes + 1)
            client.set_item("load", f"seen-{writer}", f"i{writes}", {"n": writes})
            writes += 1
        except Exception as exc:  # the test reports any error that reaches a caller
            errors.append(repr(exc))
    print(json.dumps({"writes": writes, "errors": errors[:5]}), flush=True)


def client_roundtrip(queue: str) -> None:
    """Use the client once with whatever the environment gives; report what it saw."""
    from runner.client import get_runner_client

    with get_runner_client() as client:
        client.set_state("child", "pid", os.getpid())
        item_id = client.enqueue(queue, {"from": "child"})
        print(
            json.dumps(
                {
                    "state": client.get_state("child", "pid"),
                    "item": item_id,
                    "job": os.environ.get("JR_JOB_ID"),
                }
            ),
            flush=True,
        )


ROLES = {
    "consume": consume,
    "claim_and_hang": claim_and_hang,
    "enqueue_keys": enqueue_keys,
    "write_state": write_state,
    "client_roundtrip": client_roundtrip,
}

if __name__ == "__main__":
    ROLES[sys.argv[1]](*sys.argv[2:])
