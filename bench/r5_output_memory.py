"""R5: the runner's memory while a script writes 1 GB to stdout.

Runs, through ``execute_run``, a script writing 1 GB of 100-byte lines and one
writing 1 GB of random bytes (invalid UTF-8, irregular lines), sampling this
process's RSS every 5 ms. Prints a table and writes bench/results/r5_output_memory-<time>.json.

    .venv/bin/python bench/r5_output_memory.py [--megabytes 1000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import database_vendor, print_table, scratch_database, write_results

WRITERS = {
    "lines": 'yes "$(printf "%099d" 7)" | head -c {size}',
    "random bytes": "head -c {size} /dev/urandom",
}
MIB = 2**20


class PeakRss:
    """Samples this process's RSS on a thread until stopped; keeps the peak."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=1000, help="output size, 10^6 bytes")
    parser.add_argument("--database-url", help="default: a scratch SQLite file")
    options = parser.parse_args()
    size = options.megabytes * 10**6

    with scratch_database(options.database_url, "r5"):
        from django.utils import timezone

        from runner.execution.executor import execute_run
        from runner.jobs import upsert_job
        from runner.models import Job, Run

        def run(script: str) -> Run:
            job, _ = upsert_job(
                {"id": "bench-r5", "name": "R5", "schedule": "0 0 1 1 *",
                 "script": script, "source_type": "inline"}
            )  # fmt: skip
            return execute_run(Run.create_manual(job, timezone.now()).pk)

        run("echo warm-up")  # imports and connections before the baseline
        rows = {}
        for name, writer in WRITERS.items():
            started = time.monotonic()
            with PeakRss() as rss:
                finished = run(writer.format(size=size))
            rows[name] = {
                "status": finished.status,
                "stdout_bytes": finished.stdout_bytes,
                "seconds": round(time.monotonic() - started, 2),
                "baseline_rss_mib": round(rss.baseline / MIB, 1),
                "peak_rss_mib": round(rss.peak / MIB, 1),
                "growth_mib": round((rss.peak - rss.baseline) / MIB, 1),
                "kept_lines": len(finished.stdout.split("\n")),
                "tail_right": (
                    set(finished.stdout.split("\n")) == {"0" * 98 + "7"}
                    if name == "lines"
                    else None
                ),
                "replacement_chars": finished.stdout.count("\ufffd"),
            }
        Job.objects.filter(pk="bench-r5").delete()
        figures = {"database": database_vendor(), "bytes": size, "writers": WRITERS, **rows}
        path = write_results("r5_output_memory", figures)

    print_table(
        ["output", "bytes", "s", "base MiB", "peak MiB", "growth"],
        [
            [name, row["stdout_bytes"], row["seconds"], row["baseline_rss_mib"],
             row["peak_rss_mib"], row["growth_mib"]]
            for name, row in rows.items()
        ],
    )  # fmt: skip
    print("goal R5: growth within 100 MiB of the baseline; the tail kept and decoded")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
