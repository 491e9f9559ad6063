"""``?path=`` on the root dialect: a JSONPath query over the answer, as the original's
``jsonpath-plus`` gave it: ``{"result": [every match], "count": n}``."""

from __future__ import annotations

from typing import Any

from jsonpath_ng import parse

from runner.api.errors import bad_input

MAX_PATH_LENGTH = 500


def query(path: str, document: Any) -> dict[str, Any]:
    """Every value ``path`` matches in ``document``; 400 naming ``path`` when it does not parse."""
    if len(path) > MAX_PATH_LENGTH:
        raise bad_input({"path": f"is longer than {MAX_PATH_LENGTH} characters"})
    try:
        expression = parse(path)
    except Exception as exc:  # jsonpath-ng's lexer and parser raise several kinds
        raise bad_input({"path": f"is not a JSONPath expression: {exc}"}) from None
    result = [match.value for match in expression.find(document)]
    return {"result": result, "count": len(result)}
