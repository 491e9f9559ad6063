"""P1 (burst), the spawn alone: 100 probes at one instant, spawned then or held before.

Compares, without the runner, the two ways a burst of scripts can start at an instant:
``instant`` spawns each probe then (``subprocess.Popen``, vfork, from 2 threads, as the
runner's pool did), ``held`` spawns each ahead of the instant held before exec
(``runner.execution.held.hold_process``) and releases them at it with a write to
each go pipe. Lag = the probe's first line (``bench/p1_probe.sh``) minus the instant.

    .venv/bin/python bench/p1_held_spawn.py [--probes 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from runner.execution.held import hold_process

PROBE = str(Path(__file__).resolve().parent / "p1_probe.sh")
LIMITS = {"timeout_s": 30.0, "grace_s": 1.0, "tail_lines": 10}


def _sleep_until(instant: float) -> None:
    while (left := instant - time.time()) > 0:
        time.sleep(left)


def at_the_instant(argvs: list[list[str]], instant: float) -> None:
    todo, procs, lock = list(argvs), [], threading.Lock()

    def spawn() -> None:
        while True:
            with lock:
                if not todo:
                    return
                argv = todo.pop()
            pipe = subprocess.PIPE
            procs.append(
                subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe, start_new_session=True
                )
            )

    _sleep_until(instant)
    threads = [threading.Thread(target=spawn) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for proc in procs:
        proc.communicate()


def held(argvs: list[list[str]], instant: float) -> None:
    env = dict(os.environ)
    holds = [hold_process(argv, env=env) for argv in argvs]
    _sleep_until(instant)
    running = [hold.release(**LIMITS) for hold in holds]
    for process in running:
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    subprocess._USE_VFORK = True  # as a runner worker spawns (spawn.allow_fast_spawn)
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for name, way in (("instant", at_the_instant), ("held", held)):
                out = Path(scratch) / f"{name}-{round_}"
                instant = time.time() + 0.6
                argvs = [
                    ["bash", PROBE, str(n), str(out), repr(instant)] for n in range(args.probes)
                ]
                way(argvs, instant)
                lags = sorted(
                    float(line.split()[1]) - instant for line in out.read_text().splitlines()
                )
                print(
                    f"{name:8s} probes {len(lags)}  p50 {1000 * statistics.median(lags):6.1f} ms  "
                    f"p99 {1000 * lags[int(0.99 * (len(lags) - 1))]:6.1f} ms  "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
