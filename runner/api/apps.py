from django.apps import AppConfig


class ApiConfig(AppConfig):
    """Its own app so the token table has its own migrations, apart from the runner's."""

    name = "runner.api"
    label = "api"
    verbose_name = "API"

    def ready(self) -> None:
        from runner.api import checks  # noqa: F401  (registers the system checks)
