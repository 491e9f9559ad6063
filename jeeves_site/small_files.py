"""Reading a file an operator names (config, job file, token file) without hanging on it.

A path may name a FIFO (opening it for reading waits for a writer, for ever) or a device
such as ``/dev/zero`` (read until memory runs out), by mistake or through a symlink.
Such files are refused with an ``OSError`` whose ``strerror`` says why, as an unreadable
file is, so callers report them the same way.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
# A secret (key, token) is a line of text; 64 KiB is far beyond any real one.
MAX_SECRET_FILE_BYTES = 64 * KIB


def read_small_file(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit``.

    Raises OSError: whatever ``open`` raises; EINVAL "not a regular file" for a FIFO,
    device, socket or directory; EFBIG "larger than N bytes" past ``limit``.
    """
    # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; it
    # changes nothing for a regular file.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        data = file.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
    return data
