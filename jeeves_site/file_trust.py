"""Whether another local user could change a file the runner takes code or settings
from, or read one that holds a secret.

The config file names the interpreters jobs run with (``runners``) and the scripts
directory; job files say what runs and when: whoever can change them runs code as
the runner's user. A file is theirs to change when it, or the directory holding it,
is writable by group or others (a directory with the sticky bit, as /tmp, lets no
one replace another's file), or belongs to a user other than the runner's and root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from jeeves_site.private_files import user_name

_WRITE_OTHERS = 0o022
_READ_OTHERS = 0o044


def others_can_change(path: Path) -> str | None:
    """Why a user other than this one (or root) can change ``path``, or None.

    The reason reads after the path: ``"is mode 0666, writable by other users"``.
    A path that cannot be looked at (missing), or is neither a file nor a directory (a
    device, a FIFO: readers refuse those), is None: other checks report them. A symlink
    is judged by what it points to, and the directory holding that.
    """
    target = Path(os.path.realpath(path))
    try:
        own = os.stat(target)
        parent = os.stat(target.parent)
    except OSError:
        return None
    if not (stat.S_ISREG(own.st_mode) or stat.S_ISDIR(own.st_mode)):
        return None
    reason = _changeable(own)
    if reason:
        return reason
    if stat.S_ISDIR(parent.st_mode) and not parent.st_mode & stat.S_ISVTX:
        reason = _changeable(parent)
        if reason:
            return f"its directory {target.parent} {reason}, so other users can replace it"
    return None


def _changeable(found: os.stat_result) -> str | None:
    if found.st_uid not in (os.geteuid(), 0):
        return f"belongs to {user_name(found.st_uid)}"
    mode = stat.S_IMODE(found.st_mode)
    if mode & _WRITE_OTHERS:
        return f"is mode {mode:04o}, writable by other users"
    return None


def others_can_read(path: Path) -> int | None:
    """``path``'s permission bits when group or others may read it; else (or missing) None."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    return mode if mode & _READ_OTHERS else None
