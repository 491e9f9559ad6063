from django.apps import AppConfig


class StatestoreConfig(AppConfig):
    name = "statestore"
    verbose_name = "State store"
