"""Create the first admin login on a fresh installation, once."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model

from jeeves_site.private_files import write_private_file
from runner.management.base import RunnerCommand

PASSWORD_FILE_NAME = "initial-admin-password"


class Command(RunnerCommand):
    help = (
        "Create a superuser 'admin' with a random password written to "
        "<data dir>/initial-admin-password, unless a superuser already exists."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options) -> None:
        users = get_user_model()
        password_file = settings.DATA_DIR / PASSWORD_FILE_NAME
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin login exists already.")
            if password_file.exists():
                self.stdout.write(f"Its initial password is in {password_file}")
            return
        password = secrets.token_urlsafe(18)
        write_private_file(password_file, password + "\n")
        users.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            f"Created the admin login '{username}'; its password is in {password_file} "
            "(readable by you only). Change it in the admin after logging in."
        )
