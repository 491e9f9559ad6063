"""Define a queue, or change the settings given of an existing one."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from jeeves_site.cli_numbers import whole_number
from jeeves_site.echo import echoed
from queues.definitions import upsert_queue_definition
from queues.models import Queue
from runner.management.base import RunnerCommand

FOREVER = "forever"


class Command(RunnerCommand):
    help = (
        "Upsert a queue definition: de-duplication (a JSONPath into the payload and a "
        "scope), retention of finished items and the attempt limit. Settings not given "
        "keep their current values."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--id", required=True, dest="queue_id")
        parser.add_argument("--name")
        parser.add_argument("--description")
        parser.add_argument("--dedup-path", help="JSONPath of the de-duplication key, e.g. $.id")
        parser.add_argument(
            "--dedup-scope",
            help="pending: against pending/claimed items; all: completed ones too",
        )
        parser.add_argument("--no-dedup", action="store_true", help="stop de-duplicating")
        parser.add_argument("--retention-completed", help=f"e.g. 7d, or '{FOREVER}'")
        parser.add_argument("--retention-failed", help=f"e.g. 30d, or '{FOREVER}'")
        parser.add_argument("--max-attempts", help="claims an item gets, at least 1")

    def handle(self, *args, queue_id: str, **options: Any) -> None:
        current = Queue.objects.filter(pk=queue_id).first()
        try:
            queue, created = upsert_queue_definition(definition(queue_id, current, options))
        except ValidationError as exc:
            raise CommandError(f"queue {echoed(queue_id)} not saved: {describe(exc)}") from None
        self.stdout.write(f"{'Added' if created else 'Updated'} queue {queue.id}")


def definition(queue_id: str, current: Queue | None, options: dict[str, Any]) -> dict[str, Any]:
    """The fields the options set, merged into the queue's current nested settings."""
    data: dict[str, Any] = {"id": queue_id}
    for field in ("name", "description"):
        if options[field] is not None:
            data[field] = options[field]
    if options["max_attempts"] is not None:
        data["max_attempts"] = whole_number(options["max_attempts"], "max_attempts")
    if options["no_dedup"]:
        data["dedup_config"] = None
    elif options["dedup_path"] is not None or options["dedup_scope"] is not None:
        dedup = dict(current.dedup_config or {}) if current else {}
        for name in ("path", "scope"):
            if options[f"dedup_{name}"] is not None:
                dedup[name] = options[f"dedup_{name}"]
        data["dedup_config"] = dedup
    retention = {
        status: None
        if options[f"retention_{status}"] == FOREVER
        else options[f"retention_{status}"]
        for status in ("completed", "failed")
        if options[f"retention_{status}"] is not None
    }
    if retention:
        data["retention"] = {**(current.retention if current else {}), **retention}
    return data


def describe(error: ValidationError) -> str:
    """All field errors on one line: ``field: problem; field: problem``."""
    return "; ".join(
        f"{field}: {message}"
        for field, messages in error.message_dict.items()
        for message in messages
    )
