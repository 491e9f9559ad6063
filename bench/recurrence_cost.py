"""How long one recurrence schedule's next fire (and so its validation) takes.

    .venv/bin/python bench/recurrence_cost.py [--timeout 40]

Each case is compiled afresh (the compile cache cleared) and timed for
``recurrence.validate`` at a fixed instant, then for 20 next fires one after
another (the scheduler's pattern). A case that outlives ``--timeout`` seconds
prints ``>timeout``. Short by design: a few seconds once fixed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jeeves_site.settings")

from runner import recurrence

NOW = datetime(2026, 12, 1, 12, 0, 7, tzinfo=UTC)
HOURS = list(range(24))
CASES = {
    "minutely/2 byhour=all count=15e6": {
        "freq": "minutely", "interval": 2, "byhour": HOURS, "count": 15_000_000,
        "timezone": "UTC",
    },
    "secondly bysecond=[0,30] count=1e8": {
        "freq": "secondly", "bysecond": [0, 30], "count": 100_000_000,
    },
    "secondly 00:00:00 daily count=1000": {
        "freq": "secondly", "byhour": [0], "byminute": [0], "bysecond": [0], "count": 1000,
    },
    "daily byhour=all byminute=all count=1e8": {
        "freq": "daily", "byhour": HOURS, "byminute": list(range(60)), "count": 100_000_000,
        "timezone": "America/Chicago",
    },
    "weekly Mon-Fri 9,17h count=1e6": {
        "freq": "weekly", "byweekday": [0, 1, 2, 3, 4], "byhour": [9, 17], "count": 1_000_000,
    },
    "hourly weekdays count=1e7 starts 2000": {
        "freq": "hourly", "byweekday": [0, 1, 2, 3, 4], "count": 10_000_000,
        "starts": 946684800000,
    },
}  # fmt: skip


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _timed(call, timeout: float) -> str:
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    began = time.perf_counter()
    try:
        call()
    except _Timeout:
        return f">{timeout:g} s"
    except ValueError as exc:
        return f"refused ({time.perf_counter() - began:.3f} s): {str(exc)[:60]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return f"{time.perf_counter() - began:.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=40.0)
    args = parser.parse_args()
    print(f"{'case':42} {'validate':>14}  {'20 next fires':>14}")
    for name, value in CASES.items():
        text = json.dumps(value)
        recurrence.compile_schedule.cache_clear()
        first = _timed(lambda text=text: recurrence.validate(text, now=NOW), args.timeout)

        def twenty(text=text):
            moment = NOW
            for _ in range(20):
                moment = recurrence.next_fire_after(text, "UTC", moment)

        recurrence.compile_schedule.cache_clear()
        then = _timed(twenty, args.timeout)
        print(f"{name:42} {first:>14}  {then:>14}", flush=True)


if __name__ == "__main__":
    main()
