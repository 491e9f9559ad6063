"""Deleting expired state, in small batches the scheduler's maintenance loop calls."""

from __future__ import annotations

from datetime import datetime

from statestore.models import StateEntry, StateItem


def purge_expired_state(now: datetime, batch_size: int = 500) -> int:
    """Delete up to ``batch_size`` expired values and as many expired items; return the total.

    Call again while it returns more than zero; each call is two short statements.
    """
    deleted = 0
    for model in (StateEntry, StateItem):
        ids = list(model.objects.expired(now).order_by().values_list("id", flat=True)[:batch_size])
        if ids:
            deleted += model.objects.filter(id__in=ids).expired(now).delete()[0]
    return deleted
