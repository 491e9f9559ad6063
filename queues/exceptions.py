"""Errors of queue operations that are not bad input."""

from __future__ import annotations


class ClaimLost(Exception):
    """``done``/``fail`` for an item the caller's claim no longer holds.

    Its lease ran out and another consumer (or maintenance) took it back, it was
    finished already, or it was never claimed by this caller. The item is left as
    it is.
    """
