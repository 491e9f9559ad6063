"""P1's database side, run in a subprocess with each peer's environment.

    p1_django.py setup-q2 --jobs N --script S --out F --cron second|minute
    p1_django.py setup-jeeves --jobs N --script S --out F --cron second|minute
    p1_django.py collect-jeeves --since T --until T
        prints {"runs": {id: scheduled epoch}, "statuses": {status: count in the window}}

``launch`` is the function django-q2's schedules call (``p1_django.launch``), so
this module must be importable by its workers (bench/ on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from datetime import UTC, datetime

CRONS = {"second": "* * * * * *", "minute": "* * * * *"}


def launch(job: str, out: str, script: str, scheduled: str | None = None) -> None:
    """Start the probe for ``job``, passing the instant django-q2 intended, and reap it."""
    argv = [script, job, out]
    if scheduled is not None:
        argv.append(f"{datetime.fromisoformat(scheduled).timestamp():.6f}")
    subprocess.run(argv, env=os.environ | {"LC_ALL": "C"}, timeout=10, check=False)


def setup_q2(jobs: int, script: str, out: str, cron: str) -> None:
    from croniter import croniter
    from django.utils import timezone
    from django_q.models import Schedule

    expression = CRONS[cron]
    first = croniter(expression, timezone.localtime()).get_next(datetime)
    Schedule.objects.bulk_create(
        Schedule(
            name=f"p1-{n:03d}",
            func="p1_django.launch",
            args=repr((f"p1-{n:03d}", out, script)),
            schedule_type=Schedule.CRON,
            cron=expression,
            repeats=-1,
            next_run=first,
            intended_date_kwarg="scheduled",
        )
        for n in range(jobs)
    )


def setup_jeeves(jobs: int, script: str, out: str, cron: str) -> None:
    from runner.models import Job

    Job.objects.bulk_create(
        Job(
            id=f"p1-{n:03d}",
            name=f"P1 probe {n}",
            schedule=CRONS[cron],
            timezone="UTC",
            script=script,
            source_type="path",
            args=[f"p1-{n:03d}", out],
            env={"LC_ALL": "C"},
        )
        for n in range(jobs)
    )


def collect_jeeves(since: float, until: float) -> dict:
    """Every probe run's scheduled instant by id; statuses of those scheduled in the window."""
    from django.db.models import Count

    from runner.models import Run

    runs = Run.objects.filter(job__id__startswith="p1-", scheduled_for__isnull=False)
    window = runs.filter(
        scheduled_for__gte=datetime.fromtimestamp(since, UTC),
        scheduled_for__lt=datetime.fromtimestamp(until, UTC),
    )
    return {
        "runs": {str(pk): at.timestamp() for pk, at in runs.values_list("pk", "scheduled_for")},
        "statuses": dict(window.values_list("status").annotate(n=Count("pk")).order_by()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["setup-q2", "setup-jeeves", "collect-jeeves"])
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--script", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--cron", choices=sorted(CRONS), default="second")
    parser.add_argument("--since", type=float, default=0.0)
    parser.add_argument("--until", type=float, default=0.0)
    args = parser.parse_args()

    from bench.support import setup_django

    setup_django()
    from django.core.management import call_command

    if args.command == "collect-jeeves":
        print(json.dumps(collect_jeeves(args.since, args.until)))
        return
    call_command("migrate", verbosity=0)
    if args.command == "setup-q2":
        setup_q2(args.jobs, args.script, args.out, args.cron)
    else:
        setup_jeeves(args.jobs, args.script, args.out, args.cron)


if __name__ == "__main__":
    main()
