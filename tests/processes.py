"""Watching real child processes from tests: leftovers by environment marker, memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

# How long a SIGKILLed process may take to disappear; a bound, not a wait.
SETTLE_S = 1.0


def live(proc: psutil.Process) -> bool:
    """Whether ``proc`` exists and is not a zombie."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def marked(variable: str, marker: str) -> list[psutil.Process]:
    """Live processes whose environment has ``variable=marker``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(variable) == marker and live(proc):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def survivors(variable: str, marker: str, within: float = SETTLE_S) -> list[psutil.Process]:
    """Processes carrying the marker still alive after at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while (alive := marked(variable, marker)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is alive (not gone, not a zombie)."""
    try:
        return live(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


@contextmanager
def rss_growth() -> Iterator[list[int]]:
    """Sample this process's RSS while the block runs; yield [peak growth in bytes]."""
    me = psutil.Process()
    baseline = me.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], me.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    growth = [0]
    try:
        yield growth
    finally:
        done.set()
        sampler.join()
        growth[0] = max(peak[0], me.memory_info().rss) - baseline
