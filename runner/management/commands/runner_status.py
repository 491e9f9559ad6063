"""``runner_status``: the health summary that ``GET /api/status`` returns."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandParser

from runner.health import describe, health_summary
from runner.management.base import RunnerCommand


class Command(RunnerCommand):
    help = (
        "Print the runner's health: version, scheduler uptime, jobs, running runs, jobs "
        "whose schedule cannot be loaded, and ok/error runs in the last hour."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="print the JSON body of GET /api/status"
        )
        parser.add_argument(
            "--exit-status",
            action="store_true",
            help="exit with status 1 when the runner is degraded (for a monitor's check); "
            "without it the status is 0 whatever the health",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        health = health_summary()
        if options["json"]:
            self.stdout.write(json.dumps(health.as_json(), indent=2))
        else:
            self.stdout.write(describe(health))
        if options["exit_status"] and health.status != "ok":
            self.stdout.flush()
            sys.exit(1)
