"""``create_api_token NAME --user USERNAME``: make a bearer token for the HTTP API, acting
as that user, and print it once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from jeeves_site.echo import echoed
from runner.api.tokens import create_token
from runner.management.base import RunnerCommand


class Command(RunnerCommand):
    help = (
        "Create an API token called NAME that acts as USERNAME (an active staff user, with "
        "that user's permissions) and print it on stdout. Only its hash is stored: this is "
        "the one time it is shown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="who or what will use the token, e.g. 'dashboard'")
        parser.add_argument(
            "--user",
            required=True,
            help="the staff user the token acts as; its permissions are the token's",
        )

    def handle(self, *args: Any, name: str, user: str, **options: Any) -> None:
        owner = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: user}).first()
        if owner is None:
            raise CommandError(
                f"user: no user is called {echoed(user)} (create one with createsuperuser)"
            )
        try:
            token, secret = create_token(name, owner)
        except ValidationError as exc:
            reasons = (f"{field}: {' '.join(texts)}" for field, texts in exc.message_dict.items())
            raise CommandError("; ".join(reasons)) from None
        self.stderr.write(
            f"API token {token.name!r} created for {user!r} ({token.prefix}…). Store it now; "
            "it cannot be shown again."
        )
        self.stdout.write(secret)
