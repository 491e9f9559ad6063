"""``add_job``: create a job, or change the given fields of an existing one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from jeeves_site.cli_numbers import decimal_number, whole_number
from jeeves_site.echo import echoed
from runner.jobs import upsert_job
from runner.management.base import RunnerCommand
from runner.models import Job
from runner.validation import describe

# Options whose value goes to the job field of the same name (dashes as underscores).
TEXT_OPTIONS = (
    "name", "schedule", "script", "type", "description", "on_failure", "on_success",
    "output_channel", "source_type", "timezone", "thinking", "interpreter",
)  # fmt: skip
RENAMED_OPTIONS = {"overlap": "overlap_policy", "missed_fire": "missed_fire_policy"}
# Alert and retry settings (issue 16): option -> (field, how the text becomes a value).
NUMBER_OPTIONS = {
    "alert_after": ("alert_after_failures", int),
    "remind_hours": ("alert_reminder_hours", int),
    "late_grace": ("late_grace_s", int),
    "slow_factor": ("slow_factor", float),
    "retries": ("retries", int),
    "retry_backoff": ("retry_backoff_s", int),
}


class Command(RunnerCommand):
    help = (
        "Create a job, or update one: only the options given change. A relative "
        "--script path is resolved against the current directory and stored absolute."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", required=True, help="the job's id (letters, digits, . _ -)")
        parser.add_argument("--name")
        parser.add_argument(
            "--schedule",
            help="cron: 5 fields, or 6 with seconds first; or a recurrence object as JSON, "
            'e.g. \'{"freq": "minutely", "interval": 11, "timezone": "America/Chicago"}\'',
        )
        parser.add_argument("--script", help="a file path, or the script text with inline")
        parser.add_argument("--type", help="script (default) or session")
        parser.add_argument("--source-type", help="path (default) or inline")
        parser.add_argument("--description")
        parser.add_argument("--timeout", help="milliseconds; --no-timeout removes it")
        parser.add_argument("--no-timeout", action="store_true", help="run without a timeout")
        parser.add_argument("--overlap", help="skip (default) or allow")
        parser.add_argument("--missed-fire", help="skip (default), latest or all")
        parser.add_argument("--timezone", help="IANA zone for the schedule; '' = server's")
        parser.add_argument("--thinking", help="session jobs: low, medium or high")
        parser.add_argument(
            "--interpreter",
            help="runs inline scripts without #! and files with no runners entry "
            "(e.g. node); '' = bash for inline, executable files directly",
        )
        parser.add_argument("--on-failure", help="Slack channel told about failures")
        parser.add_argument("--on-success", help="Slack channel told about successes")
        parser.add_argument("--output-channel", help="Slack channel that gets stdout")
        parser.add_argument(
            "--alert-after", help="alert once this many runs in a row failed (default 1)"
        )
        parser.add_argument("--remind-hours", help="remind every N hours (default 0: never)")
        parser.add_argument(
            "--late-grace",
            help="seconds past a due fire with no run before a late alert; 'default' = "
            "one schedule period + 1 minute, at least 5 minutes",
        )
        parser.add_argument(
            "--slow-factor", help="slow past this many times the p95 duration (0: off; 3)"
        )
        parser.add_argument("--retries", help="retries of a failed run (default 0, at most 10)")
        parser.add_argument(
            "--retry-backoff", help="seconds before the first retry, doubling (default 30)"
        )
        parser.add_argument(
            "--webhook-url", help="http(s) URL for this job's alerts as JSON; '' = the default"
        )
        parser.add_argument(
            "--env",
            action="append",
            metavar="KEY=VALUE",
            help="repeatable; a JSON object also works; replaces the job's env",
        )
        parser.add_argument("--clear-env", action="store_true", help="remove every env entry")
        parser.add_argument(
            "--arg",
            action="append",
            dest="arg",
            metavar="VALUE",
            help="repeatable, in order; replaces the job's args (--arg=-x for dashes)",
        )
        parser.add_argument("--clear-args", action="store_true", help="remove every arg")
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enabled", dest="enabled", action="store_const", const=True)
        state.add_argument("--disabled", dest="enabled", action="store_const", const=False)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            fields = fields_from_options(options)
            job, change = upsert_job(fields, script_base=Path.cwd())
        except ValidationError as exc:
            raise CommandError(describe(exc, Job)) from None
        self.stdout.write(f"job {job.id}: {change}")
        for warning in job.warnings():
            self.stderr.write(f"job {job.id}: warning: {warning}")


def fields_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """The job fields the given options set; ValidationError for a malformed value."""
    fields: dict[str, Any] = {"id": options["id"]}
    for name in TEXT_OPTIONS:
        if options.get(name) is not None:
            fields[name] = options[name]
    for option, field in RENAMED_OPTIONS.items():
        if options.get(option) is not None:
            fields[field] = options[option]
    if options.get("enabled") is not None:
        fields["enabled"] = options["enabled"]
    for option, (field, kind) in NUMBER_OPTIONS.items():
        if options.get(option) is not None:
            fields[field] = _number(options[option], field, kind)
    if options.get("webhook_url") is not None:
        fields["webhook_url"] = options["webhook_url"]
    if options.get("no_timeout"):
        fields["timeout_ms"] = None
    elif options.get("timeout") is not None:
        fields["timeout_ms"] = _milliseconds(options["timeout"])
    if options.get("clear_env") or options.get("env"):
        fields["env"] = parse_env(options.get("env") or [])
    if options.get("clear_args") or options.get("arg"):
        fields["args"] = list(options.get("arg") or [])
    return fields


def _milliseconds(text: str) -> int:
    return whole_number(text, "timeout_ms", "whole number of milliseconds")


def _number(text: str, field: str, kind: type) -> int | float | None:
    if field == "late_grace_s" and text == "default":
        return None
    return whole_number(text, field) if kind is int else decimal_number(text, field)


def parse_env(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items (or JSON objects) as one env mapping, later items winning."""
    env: dict[str, Any] = {}
    for item in items:
        if item.lstrip().startswith("{"):
            try:
                env.update(json.loads(item))
            except json.JSONDecodeError as exc:
                raise ValidationError({"env": f"not valid JSON: {exc}"}) from None
            continue
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValidationError({"env": f"{echoed(item)} is not KEY=VALUE"})
        env[name] = value
    return env
