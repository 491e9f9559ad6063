"""A wall clock and a monotonic clock that tests move by hand, together or apart."""

from __future__ import annotations

from datetime import datetime, timedelta


class FakeClocks:
    """Both clocks of a process: ``advance`` moves both, ``step_wall`` only the wall one.

    Pass ``clocks`` where code takes a ``runner.clocks.Clocks`` (it has the same
    ``wall`` and ``monotonic`` callables), or its ``monotonic`` alone.
    """

    def __init__(self, wall: datetime, monotonic: float = 1000.0) -> None:
        self._wall = wall
        self._monotonic = monotonic

    def wall(self) -> datetime:
        return self._wall

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> datetime:
        """Let ``seconds`` pass; return the new wall time."""
        self._wall += timedelta(seconds=seconds)
        self._monotonic += seconds
        return self._wall

    def step_wall(self, delta: timedelta) -> datetime:
        """Step the wall clock (NTP, an operator) while no time passes; return it."""
        self._wall += delta
        return self._wall
