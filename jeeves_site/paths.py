"""``~`` in a path an operator or a job names, expanded as a shell expands it."""

from __future__ import annotations

from pathlib import Path


def expand_user(text: str | Path) -> Path:
    """``~/x`` and ``~name/x`` with the home directory; ``~unknown/x`` stays as written.

    bash leaves ``~unknown`` as it is; ``Path.expanduser`` raises RuntimeError instead,
    which turned a job's script ``~nobody-here/x.sh`` into a 500 at every entrance.
    """
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)
