"""``revoke_api_token NAME``: the named API token stops working at once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from jeeves_site.echo import echoed
from runner.api.tokens import revoke_token
from runner.management.base import RunnerCommand


class Command(RunnerCommand):
    help = "Revoke the active API token called NAME; requests with it get 401 from then on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        if not revoke_token(name):
            raise CommandError(f"no active API token is called {echoed(name)}")
        self.stdout.write(f"API token {name!r} revoked")
