"""``?path=`` on the root dialect: a JSONPath query over the answer, as the original's
``jsonpath-plus`` gave it: ``{"result": [every match], "count": n}``."""

from __future__ import annotations

from typing import Any

from jeeves_site.jsonpath_query import JsonPathRefused, find_values
from runner.api.errors import bad_input


def query(path: str, document: Any) -> dict[str, Any]:
    """Every value ``path`` matches in ``document``; 400 naming ``path`` when it cannot be
    used (``jeeves_site.jsonpath_query``)."""
    try:
        result = find_values(path, document)
    except JsonPathRefused as exc:
        raise bad_input({"path": str(exc)}) from None
    return {"result": result, "count": len(result)}
