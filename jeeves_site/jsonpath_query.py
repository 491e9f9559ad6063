"""A JSONPath query over a document, as the original runner's ``?path=`` gave it
(``jsonpath-plus``): every value the path matches.

Bounded, since a caller of ``GET /state/<ns>?path=`` may be any script's run token:
a path of at most ``MAX_PATH_LENGTH`` characters, in the plain grammar (fields,
indexes, slices, wildcards, ``..``; no filter expressions), with at most one
recursive descent. Each further ``..`` multiplies the work by the size of the
document: ``$..*..*..*..*`` over a value 60 levels deep took seconds, one more
``..*`` exhausted the server's memory (a probe, 2026-12-01).
"""

from __future__ import annotations

from typing import Any

from jsonpath_ng import JSONPath, parse
from jsonpath_ng.jsonpath import Descendants

MAX_PATH_LENGTH = 500
MAX_DESCENTS = 1


class JsonPathRefused(ValueError):
    """The path cannot be used; the message says why (it completes "the path ...")."""


def find_values(path: str, document: Any) -> list[Any]:
    """Every value ``path`` matches in ``document``, in document order; raises
    ``JsonPathRefused`` for a path too long, unparsable, or with more than
    ``MAX_DESCENTS`` recursive descents."""
    if len(path) > MAX_PATH_LENGTH:
        raise JsonPathRefused(f"is longer than {MAX_PATH_LENGTH} characters")
    try:
        expression = parse(path)
    except Exception as exc:  # jsonpath-ng's lexer and parser raise several kinds
        raise JsonPathRefused(f"is not a JSONPath expression: {exc}") from None
    if _descents(expression) > MAX_DESCENTS:
        raise JsonPathRefused(
            f"has more than {MAX_DESCENTS} recursive descent (..): each one more multiplies "
            "the work by the size of the value"
        )
    return [match.value for match in expression.find(document)]


def _descents(expression: JSONPath) -> int:
    """How many ``..`` steps ``expression`` holds, in every branch together."""
    own = 1 if isinstance(expression, Descendants) else 0
    parts = [getattr(expression, name, None) for name in ("left", "right", "expression")]
    return own + sum(_descents(part) for part in parts if isinstance(part, JSONPath))
