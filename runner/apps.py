from django.apps import AppConfig


class RunnerConfig(AppConfig):
    name = "runner"
    verbose_name = "Runner"

    def ready(self) -> None:
        from jeeves_site import config_live
        from runner import checks  # noqa: F401  (registers the system checks)

        config_live.connect()
