from django.apps import AppConfig


class ApiConfig(AppConfig):
    """Its own app so the token table has its own migrations, apart from the runner's."""

    name = "runner.api"
    label = "api"
    verbose_name = "API"
