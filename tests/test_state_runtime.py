"""Settings read once and the clock of state operations (``statestore.runtime``)."""

from __future__ import annotations

from datetime import UTC

from django.utils import timezone

from statestore import runtime
from tests.moments import NOW


def test_the_clock_is_djangos_and_frozen_with_it(clock):
    assert runtime.now() == timezone.now() == NOW
    assert runtime.now().tzinfo is UTC


def test_without_use_tz_the_clock_is_naive_as_djangos(clock, settings):
    runtime.now()  # USE_TZ read while on
    settings.USE_TZ = False
    assert runtime.now() == timezone.now()
    assert runtime.now().tzinfo is None


def test_a_setting_is_read_again_each_time_it_is_overridden(settings):
    settings.DEBUG = False
    assert runtime.cached_setting("DEBUG") is False
    settings.DEBUG = True
    assert runtime.cached_setting("DEBUG") is True
    settings.DEBUG = False
    assert runtime.cached_setting("DEBUG") is False
