"""``~`` in a path an operator or a job names, expanded as a shell expands it."""

from __future__ import annotations

import os
from pathlib import Path

# Linux's limits: a path of PATH_MAX bytes or a component over NAME_MAX cannot be opened.
PATH_MAX = 4096
NAME_MAX = 255


def expand_user(text: str | Path) -> Path:
    """``~/x`` and ``~name/x`` with the home directory; ``~unknown/x`` stays as written.

    bash leaves ``~unknown`` as it is; ``Path.expanduser`` raises RuntimeError instead,
    which turned a job's script ``~nobody-here/x.sh`` into a 500 at every entrance.
    """
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def path_problem(text: str) -> str | None:
    """Why ``text`` can never name a file on this system (too long), or None."""
    if len(os.fsencode(text)) >= PATH_MAX:
        return f"is not a usable file path: longer than {PATH_MAX - 1} bytes"
    if any(len(os.fsencode(part)) > NAME_MAX for part in Path(text).parts):
        return f"is not a usable file path: a part of it is longer than {NAME_MAX} bytes"
    return None


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False where the system cannot even look (a name too long)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def is_file(path: Path) -> bool:
    """``path.is_file()``, False where the system cannot even look (a name too long)."""
    try:
        return path.is_file()
    except OSError:
        return False
