"""System checks for the API: ``manage.py check`` warns while the loopback opening is on."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register


@register()
def check_loopback_anonymous(app_configs=None, **kwargs) -> list:
    """api.W001: JEEVES_API_LOOPBACK_ANONYMOUS lets every local account act as the runner."""
    if not settings.API_LOOPBACK_ANONYMOUS:
        return []
    return [
        Warning(
            "JEEVES_API_LOOPBACK_ANONYMOUS is on: any program or account on this machine can "
            "use the root API without a token, and so create and run jobs, i.e. run commands "
            "as the runner's user",
            hint=f"narrow the permissions of the user {settings.API_LOOPBACK_USER!r} in the "
            "admin, or give the plugin a token in its apiUrl (http://127.0.0.1:1937/t/<token>) "
            "and turn this off",
            id="api.W001",
        )
    ]
