"""Where inline scripts are written while they run, and cleaning up after dead workers.

Each run of an inline script gets its own directory ``jr-inline-<pid>-<random>`` under
``<data dir>/inline-scripts`` (0700, the file inside 0600), removed when the run ends.
A worker killed with SIGKILL cannot remove its directory; the daemons remove those of
processes that are gone when they start (``remove_stale_inline_dirs``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import psutil
from django.conf import settings

from jeeves_site.private_files import ensure_private_dir, prepare_data_dir

INLINE_DIR_NAME = "inline-scripts"
INLINE_PREFIX = "jr-inline-"
_OWNED = re.compile(rf"{INLINE_PREFIX}(\d+)-.+")
# A directory is its process's if the process started before it (clock granularity).
_CREATE_TIME_SLACK_S = 1.0

logger = logging.getLogger(__name__)


def inline_root() -> Path:
    """The private directory inline scripts' directories are made in (created if missing)."""
    return ensure_private_dir(Path(settings.DATA_DIR) / INLINE_DIR_NAME)


def inline_prefix() -> str:
    """The name prefix of a directory this process makes: it names the owner's pid."""
    return f"{INLINE_PREFIX}{os.getpid()}-"


def remove_stale_inline_dirs(root: Path | None = None) -> list[Path]:
    """Remove the inline-script directories whose process is gone; return them.

    A directory belongs to a live process when that pid exists, is not a zombie and
    started before the directory was made (so a reused pid does not keep it).
    """
    root = root or inline_root()
    removed = []
    for entry in sorted(root.iterdir()):
        match = _OWNED.fullmatch(entry.name)
        if match is None or not entry.is_dir() or _owner_alive(int(match[1]), entry):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    if removed:
        logger.info("removed %d inline-script directories left by dead workers", len(removed))
    return removed


def prepare_worker_host() -> None:
    """What a daemon does before it runs anything: a private data directory, and no
    inline scripts left behind by dead workers."""
    prepare_data_dir(settings)
    remove_stale_inline_dirs()


def _owner_alive(pid: int, directory: Path) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= directory.stat().st_mtime + _CREATE_TIME_SLACK_S
    except (psutil.Error, OSError):
        return False
