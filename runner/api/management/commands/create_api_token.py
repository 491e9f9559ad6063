"""``create_api_token NAME``: make a bearer token for the HTTP API and print it once."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runner.api.tokens import create_token


class Command(BaseCommand):
    help = (
        "Create an API token called NAME and print it on stdout. Only its hash is stored: "
        "this is the one time it is shown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="who or what will use the token, e.g. 'dashboard'")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        try:
            token, secret = create_token(name)
        except ValidationError as exc:
            reasons = (f"{field}: {' '.join(texts)}" for field, texts in exc.message_dict.items())
            raise CommandError("; ".join(reasons)) from None
        self.stderr.write(
            f"API token {token.name!r} created ({token.prefix}…). Store it now; "
            "it cannot be shown again."
        )
        self.stdout.write(secret)
