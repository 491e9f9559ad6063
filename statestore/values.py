"""Checks for what callers pass in: names, text and JSON values.

Both back-ends must store exactly what a caller wrote, so anything one of them
would refuse or alter is refused here, before a row is touched, with the same
words on both: NUL (PostgreSQL's text and jsonb cannot hold it), a lone UTF-16
surrogate (not encodable as UTF-8, so neither driver can send it), NaN and
Infinity (not JSON), and JSON nested deeper or larger than the limits below
(SQLite's JSON functions stop at depth 1000 and Python's parser at its recursion
limit, so a deeper value could be stored and then never read back).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii
from typing import Any

from django.core.exceptions import ValidationError

from jeeves_site.echo import echoed

# Arrays and objects inside one another; the README's API section documents both limits.
MAX_JSON_DEPTH = 64
MAX_JSON_BYTES = 1_000_000  # of the value as compact JSON text
# Python refuses to turn longer integers into text (CVE-2020-10735), so cannot store them.
MAX_INT_DIGITS = 4300
# A bound for counts and ids so a database never sees a number it cannot hold.
MAX_BIGINT = 2**63 - 1

_TOO_MANY_DIGITS = 10**MAX_INT_DIGITS
_SURROGATE = re.compile("[\ud800-\udfff]")
_COMPACT = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _stored_form() -> Callable[[Any], str]:
    """``json.dumps(value)``, as JSONField writes it, except that NaN or Infinity as a key
    raise. ``json.dumps`` makes CPython's C encoder anew on each call (a third of its cost
    for a small value); this one is made once. No cycle check: ``json_problem`` refuses
    a cycle as too deep before anything is encoded."""
    encoder = json.JSONEncoder(allow_nan=False, check_circular=False)
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return encoder.encode
    kept = c_make_encoder(
        None, encoder.default, encode_basestring_ascii, None, ": ", ", ", False, False, False
    )
    return lambda value: "".join(kept(value, 0))


_STORED = _stored_form()


class HugeInteger:
    """What ``json_loads`` returns for an integer literal too long to convert."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:  # what a message that shows the value says
        return f"an integer of {self.digits} digits"


def _parse_int(text: str) -> int | HugeInteger:
    digits = len(text.lstrip("-"))
    return HugeInteger(digits) if digits > MAX_INT_DIGITS else int(text)


def json_loads(text: str | bytes) -> Any:
    """``json.loads`` that never raises for a long integer: it yields HugeInteger, which
    ``json_problem`` then names; NaN, Infinity and too-deep nesting raise ValueError
    (RecursionError included)."""
    return json.loads(text, parse_int=_parse_int, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def text_problem(value: str) -> str | None:
    """Why text cannot be stored alike on both back-ends, or None."""
    if "\x00" in value:
        return "must not contain NUL characters (\\u0000)"
    if value.isascii():  # no surrogate then; the common case, without the search
        return None
    found = _SURROGATE.search(value)
    if found:
        return (
            f"must not contain a lone surrogate (\\u{ord(found.group()):04x}); send valid Unicode"
        )
    return None


def replace_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, for reports kept as given."""
    return _SURROGATE.sub("\ufffd", text)


def json_problem(value: Any, strings: bool = True) -> str | None:
    """Why ``value`` cannot be stored as a JSON value, or None. Walks iteratively, so any
    depth is safe to check. ``strings=False`` leaves text to the caller (a run's output,
    whose NULs are replaced rather than refused)."""
    if type(value) in (dict, list) and _plainly_storable(value, 0, strings):
        return None
    return _walk_problem(value, strings)


def _walk_problem(value: Any, strings: bool) -> str | None:
    """``json_problem`` by the general walk, for any value."""
    if isinstance(value, str):  # a plain text field: say what is wrong with it directly
        return text_problem(value) if strings else None
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                return f"is nested more than {MAX_JSON_DEPTH} levels deep"
            if isinstance(item, dict):
                for key in item:
                    problem = _scalar_problem(key) if strings and isinstance(key, str) else None
                    if problem:
                        return f"has a key that {problem}"
                children = item.values()
            else:
                children = item
            stack.extend((child, depth + 1) for child in children)
        elif strings or not isinstance(item, str):
            problem = _scalar_problem(item)
            if problem:
                return problem
    return None


def _plainly_storable(item: dict | list, depth: int, strings: bool) -> bool:
    """True only if the walk in ``json_problem`` would find nothing in ``item`` (a dict or
    list at ``depth``); False whenever it might, so that the walk names the problem.

    The common case, checked with no call per scalar and no stack: only plain dicts and
    lists of ASCII text, numbers in range, booleans and nulls (benchmark P4).
    """
    if depth >= MAX_JSON_DEPTH:
        return False
    if type(item) is dict:
        if strings:
            for key in item:
                if isinstance(key, str) and ("\x00" in key or not key.isascii()):
                    return False
        children: Any = item.values()
    else:
        children = item
    for child in children:
        kind = type(child)
        if kind is str:
            if strings and ("\x00" in child or not child.isascii()):
                return False
        elif kind is int:
            if not -_TOO_MANY_DIGITS < child < _TOO_MANY_DIGITS:
                return False
        elif kind is float:
            if not math.isfinite(child):
                return False
        elif kind is dict or kind is list:
            if not _plainly_storable(child, depth + 1, strings):
                return False
        elif kind is not bool and child is not None:
            return False
    return True


def _scalar_problem(item: Any) -> str | None:
    if isinstance(item, str):
        problem = text_problem(item)
        return f"holds a string that {problem}" if problem else None
    if isinstance(item, HugeInteger):
        return f"holds an integer of {item.digits} digits (at most {MAX_INT_DIGITS})"
    if isinstance(item, bool) or item is None:
        return None
    if isinstance(item, int):
        too_long = abs(item) >= _TOO_MANY_DIGITS
        return f"holds an integer of more than {MAX_INT_DIGITS} digits" if too_long else None
    if isinstance(item, float):
        return None if math.isfinite(item) else "holds NaN or Infinity, which are not JSON"
    return f"holds a {type(item).__name__}, which is not a JSON value"


def check_storable(instance: Any, fields: tuple[str, ...]) -> None:
    """ValidationError naming each of ``instance``'s ``fields`` (text or JSON) that cannot
    be stored alike on both back-ends; for models' ``clean``, so the admin refuses too."""
    errors = {}
    for field in fields:
        value = getattr(instance, field)
        problem = json_problem(value)
        if problem:
            errors[field] = problem
    if errors:
        raise ValidationError(errors)


def check_text(value: object, field: str) -> None:
    """ValidationError naming ``field`` when text holds NUL or a lone surrogate."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise ValidationError({field: problem})


def check_name(value: object, field: str, max_length: int) -> str:
    """A non-empty string of at most ``max_length`` characters without NUL or surrogates."""
    # The common case, decided without the calls below.
    if (
        type(value) is str
        and 0 < len(value) <= max_length
        and value.isascii()
        and "\x00" not in value
    ):
        return value
    if not isinstance(value, str) or not value:
        raise ValidationError({field: f"must be a non-empty string, not {echoed(value)}"})
    if len(value) > max_length:
        raise ValidationError({field: f"must be at most {max_length} characters"})
    check_text(value, field)
    return value


def check_json(value: Any, field: str) -> str:
    """Return ``value`` as the JSON text Django's JSONField stores for it (``json.dumps``
    with its default separators), refusing what JSON (or PostgreSQL's jsonb) cannot hold,
    and values deeper than MAX_JSON_DEPTH or larger than MAX_JSON_BYTES as compact text.

    Raises ValidationError keyed by ``field``. The text is made once: compact text is
    never longer, so it is only made to size a value whose stored text is over the limit.
    """
    problem = json_problem(value)
    if problem:
        raise ValidationError({field: problem})
    try:
        text = _STORED(value)
        size = len(text) if len(text) <= MAX_JSON_BYTES else len(_COMPACT.encode(value))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError({field: f"is not JSON-serialisable: {exc}"}) from None
    if size > MAX_JSON_BYTES:
        raise ValidationError({field: f"is {size} bytes as JSON; the limit is {MAX_JSON_BYTES}"})
    return text


def check_count(value: object, field: str, minimum: int, maximum: int | None = None) -> int:
    """An integer (not a bool) within ``minimum``..``maximum`` (at most MAX_BIGINT)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({field: f"must be an integer, not {_short(value)}"})
    if value < minimum:
        raise ValidationError({field: f"must be at least {minimum}, not {_short(value)}"})
    top = MAX_BIGINT if maximum is None else maximum
    if value > top:
        raise ValidationError({field: f"must be at most {top}, not {_short(value)}"})
    return value


def _short(value: object) -> str:
    text = (
        repr(value) if not isinstance(value, int) or value.bit_length() < 200 else "a huge number"
    )
    return text if len(text) <= 80 else text[:77] + "..."
