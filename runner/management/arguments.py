"""What every project command asks of its arguments before it runs: valid text.

A byte that is not UTF-8 in ``argv`` reaches Python as a lone surrogate (``$'a\\xff'``
is ``'a\\udcff'``), which no database driver, log or terminal can encode: left alone it
ended the command in a ``UnicodeEncodeError`` traceback. It is refused here, naming the
option, on one line. File paths are the exception: the operating system takes their bytes
as they are, so a command lists the options that name one (``ProjectCommand.path_options``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.management.base import CommandError

from jeeves_site.echo import echoed


def refuse_undecodable(
    parser: argparse.ArgumentParser, options: Mapping[str, Any], exempt: Iterable[str] = ()
) -> None:
    """CommandError naming the first option (as the operator typed it: ``--id``, ``ID``)
    whose text, or one of whose texts, holds a lone surrogate; ``exempt`` dests pass."""
    skipped = set(exempt)
    for dest, value in options.items():
        if dest in skipped:
            continue
        for text in value if isinstance(value, list | tuple) else [value]:
            if isinstance(text, str) and _has_surrogate(text):
                raise CommandError(
                    f"{_option_name(parser, dest)}: {echoed(text)} is not valid text (a byte "
                    "that is not UTF-8, from the terminal or the shell?); give it as UTF-8"
                )


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _option_name(parser: argparse.ArgumentParser, dest: str) -> str:
    for action in parser._actions:
        if action.dest == dest:
            if action.option_strings:
                return max(action.option_strings, key=len)
            return action.metavar if isinstance(action.metavar, str) else dest
    return dest
