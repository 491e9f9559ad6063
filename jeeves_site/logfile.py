"""A log file only its owner can read: it names jobs, scripts and their errors."""

from __future__ import annotations

import os
from logging.handlers import WatchedFileHandler
from pathlib import Path

LOG_FILE_MODE = 0o600


class PrivateWatchedFileHandler(WatchedFileHandler):
    """``WatchedFileHandler`` (reopens after logrotate) whose file is created 0600.

    An existing file with looser modes is tightened when it is opened.
    """

    def _open(self):
        path = Path(self.baseFilename)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, LOG_FILE_MODE)
        os.fchmod(fd, LOG_FILE_MODE)
        return os.fdopen(
            fd, self.mode.replace("w", "a"), encoding=self.encoding, errors=self.errors
        )
