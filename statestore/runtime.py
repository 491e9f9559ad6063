"""Settings and the clock as the per-call paths of state and queue statements read them.

Through Django's lazy settings object each read of a setting costs as much as
formatting a timestamp (``LazyObject.__getattribute__``), and
``django.utils.timezone.now`` reads ``USE_TZ`` on every call (benchmark P4). Here a
setting is read once, and read again after ``setting_changed`` names it, as
``override_settings`` and pytest-django's ``settings`` fixture send. An assignment
to ``settings.X`` that sends no signal is not seen; Django's own
(``setup_test_environment``'s ``DEBUG``) comes before any statement runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_read: dict[str, Any] = {}


def cached_setting(name: str) -> Any:
    """``settings.<name>``, read once and again after ``setting_changed`` names it."""
    try:
        return _read[name]
    except KeyError:
        value = _read[name] = getattr(settings, name)
        return value


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    _read.pop(setting, None)


def now() -> datetime:
    """``django.utils.timezone.now()``: aware in UTC with ``USE_TZ``, naive without.

    It reads ``datetime.now``, so time-machine freezes it as it freezes Django's.
    """
    return datetime.now(UTC if cached_setting("USE_TZ") else None)
