"""Job output made safe to print on an operator's terminal.

A script's output is whatever the script wrote, and a terminal obeys what it reads:
escape sequences can retitle the window, rewrite the screen, hide lines or (on some
terminals) answer back as if typed. ``neutralise`` shows every control character as
visible text instead, so the sequence is seen, not obeyed.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, and the C1 controls (U+0080-U+009F, which
# include the 8-bit CSI and OSC). ESC (0x1b) is a C0 control: no sequence survives.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def neutralise(text: str) -> str:
    r"""``text`` with each control character but ``\n`` and ``\t`` written as ``\xNN``."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", text)
