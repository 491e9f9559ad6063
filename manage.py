#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jeeves_site.settings")
    from jeeves_site.private_files import adopt_private_umask, prepare_for_command
    from jeeves_site.read_only import prepare_read_only_command

    # Whatever a command writes is the runner's user's only (see jeeves_site/private_files.py).
    adopt_private_umask()
    prepare_read_only_command(sys.argv)
    prepare_for_command(sys.argv)
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A bad JEEVES_*/DJANGO_* variable or secret file: its one-line reason, which
        # names the variable, not a traceback through Django's start-up.
        sys.exit(f"manage.py: {exc}")


if __name__ == "__main__":
    main()
