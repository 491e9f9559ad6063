"""How a refusal names the value it refuses: whole when short, else its start and size.

A refused value may be a 100,000-character string, or an integer of thousands of digits
(``repr`` of one past ``sys.int_max_str_digits`` raises); echoed whole it floods the
caller, the log and the terminal. A value holding a line break would split the message
over lines (a log reader takes the rest for another record): both functions give one line.
"""

from __future__ import annotations

import re

ECHO_CHARS = 60  # of a refused value, at most, in a message
# Of a path the operator gave: long enough for any real one to show whole.
PATH_CHARS = 300
# What breaks a line or drives a terminal: C0 and C1 controls, DEL, U+2028 and U+2029.
_UNPRINTED = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def echoed(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr(value)``, or for a long one its first ``limit`` characters and its size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}… ({len(value)} characters)"
    try:
        text = repr(value)
    except ValueError:  # a container holding an integer too long to print
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[:limit]}… (a {type(value).__name__})"


def shortened(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` as it is, or its first ``limit`` characters and its size (no quotes: for
    a path or a name that a message shows bare); control characters and line breaks
    shown as ``\\xNN`` (``\\uNNNN``), so it is one line."""
    shown = _UNPRINTED.sub(_escape, text[:limit])
    return shown if len(text) <= limit else f"{shown}… ({len(text)} characters)"


def shown_path(path: object) -> str:
    """A path the operator gave, as a message shows it: whole up to ``PATH_CHARS``, on
    one line (``shortened``)."""
    return shortened(str(path), PATH_CHARS)


def _escape(match: re.Match) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
