"""Turning a payload into its de-duplication key."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from jsonpath_ng import JSONPath

# The dedup_key column's length; longer keys are stored as their digest.
KEY_MAX = 500

logger = logging.getLogger(__name__)


def dedup_key_of(path: JSONPath, payload: Any) -> str | None:
    """The first value ``path`` finds in ``payload`` as text; None when it finds nothing or null.

    Strings are used as they are, other JSON values in a canonical JSON form, so
    ``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}`` are the same key.
    """
    try:
        matches = path.find(payload)
    except Exception:
        # As in the original runner: a payload the path cannot be evaluated on is
        # enqueued without de-duplication rather than refused.
        logger.warning("dedup path %s failed on a payload; enqueued without a key", path)
        return None
    value = matches[0].value if matches else None
    if value is None:
        return None
    key = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(key) > KEY_MAX:
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key
