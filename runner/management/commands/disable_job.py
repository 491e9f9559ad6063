"""``disable_job ID...``: stop the scheduler firing these jobs (manual runs still work)."""

from runner.management.toggle import ToggleCommand


class Command(ToggleCommand):
    help = "Disable jobs so the scheduler no longer fires them; trigger_job still runs them."
    enabled = False
