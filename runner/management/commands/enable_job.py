"""``enable_job ID...``: let the scheduler fire these jobs again."""

from runner.management.toggle import ToggleCommand


class Command(ToggleCommand):
    help = "Enable jobs so the scheduler fires them."
    enabled = True
