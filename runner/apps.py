from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RunnerConfig(AppConfig):
    name = "runner"
    verbose_name = "Runner"

    def ready(self) -> None:
        from runner import checks  # noqa: F401  (registers the system checks)

        post_migrate.connect(_tighten_after_migrate, sender=self)


def _tighten_after_migrate(sender, **kwargs) -> None:
    """``migrate`` (which ``scripts/start`` runs first) leaves the installation private."""
    from django.conf import settings

    from jeeves_site.private_files import prepare_data_dir

    prepare_data_dir(settings)
