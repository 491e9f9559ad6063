"""Files only the runner's user may read: the data directory, the database, secrets, logs.

Directories are 0700 and files 0600. Whatever its umask, every process of the runner
creates what it creates with these modes (explicit modes, then a chmod), so it does not
matter which command touches a fresh installation first. The runner's own entry points
(``manage.py``, the WSGI and ASGI apps) also run under umask 077, so that anything else
they write is private too; scripts get back the umask the runner was started with
(``inherited_umask``). An installation left with looser modes is tightened when the
daemons and the web app start (``tighten_installation``), and ``manage.py check``
reports what is still readable by others (``runner.checks``).

Everything of the installation must also belong to the user the runner runs as: a
data directory another user owns (say one she made in /tmp for the runner to use) lets
her plant the secret key and replace the database, whatever its modes. The entry
points refuse such an installation before they touch it (``refuse_foreign_owned``),
and ``manage.py check`` reports it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import pwd
import stat
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

DIR_MODE = 0o700
FILE_MODE = 0o600
# Group and other permission bits: none may be set on the runner's files.
_OTHERS = 0o077
PRIVATE_UMASK = 0o077
# Where the runner's entry points record the umask they were started with, for scripts.
INHERITED_UMASK_ENV = "JEEVES_INHERITED_UMASK"
# SQLite's companions of a database file; they hold recent writes and the lock table.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")

logger = logging.getLogger(__name__)


def adopt_private_umask() -> None:
    """Run this process under umask 077, remembering the umask it was started with.

    The first call in a process tree records the original value in the environment,
    so forked workers and nested calls keep the operator's umask for scripts.
    """
    inherited = os.umask(PRIVATE_UMASK)
    os.environ.setdefault(INHERITED_UMASK_ENV, f"{inherited:04o}")


def inherited_umask() -> int:
    """The umask scripts run with: the one the runner was started with.

    A process that never called ``adopt_private_umask`` (a test, a library user)
    passes on its current umask.
    """
    recorded = os.environ.get(INHERITED_UMASK_ENV, "")
    try:
        return int(recorded, 8) & 0o777
    except ValueError:
        current = os.umask(PRIVATE_UMASK)
        os.umask(current)
        return current


def ensure_private_dir(path: Path) -> Path:
    """Create directory ``path`` mode 0700 (its missing parents as usual); return it.

    An existing directory is left as it is; ``tighten_installation`` deals with those.
    """
    if path.is_dir():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return path
    os.chmod(path, DIR_MODE)  # exact, whatever the umask
    return path


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True when this call made it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path``'s content with ``text``; the file is 0600 even if it existed looser."""
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(fd, FILE_MODE)
        handle.write(text)


def readable_by_others(path: Path) -> int | None:
    """``path``'s permission bits when group or others have any; else (or missing) None."""
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except OSError:
        return None
    return mode if mode & _OTHERS else None


def runner_paths(settings) -> list[Path]:
    """The data directory and every file of the runner that holds data or secrets.

    The SQLite database (and its companions) and the log file may live outside the
    data directory; the data directory's whole content is the runner's.
    """
    paths = [Path(settings.DATA_DIR)]
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3") and not str(db["NAME"]).startswith(("file:", ":")):
        name = Path(db["NAME"])
        paths += [name, *(Path(f"{name}{suffix}") for suffix in SQLITE_COMPANIONS)]
    if settings.RUNNER.log.file:
        paths.append(Path(settings.RUNNER.log.file))
    return paths


def foreign_owned(settings) -> list[tuple[Path, int]]:
    """``(path, owner uid)`` for each path of the installation (``runner_paths`` and the
    data directory's content) that this process's effective user does not own, and
    each directory holding one of ``runner_paths`` that neither it nor root owns."""
    me = os.geteuid()
    found = []
    for path in _installation_paths(settings):
        try:
            owner = os.lstat(path).st_uid
        except OSError:
            continue
        if owner != me:
            found.append((path, owner))
    # The directory holding the data directory, or a database or log file kept
    # elsewhere: its owner could swap them (root's own directories, /var/log, are fine).
    for parent in {path.parent for path in runner_paths(settings)} - {Path(settings.DATA_DIR)}:
        try:
            owner = os.stat(parent).st_uid
        except OSError:
            continue
        if owner not in (me, 0):
            found.append((parent, owner))
    return found


def foreign_owner_problem(found: list[tuple[Path, int]], data_dir: Path) -> tuple[str, str]:
    """``(message, hint)`` for what ``foreign_owned`` found (not empty)."""
    path, owner = found[0]
    me = user_name(os.geteuid())
    more = f" (and {len(found) - 1} more of its paths)" if len(found) > 1 else ""
    message = (
        f"{path} belongs to uid {owner} ({user_name(owner)}), not to {me}, the user the runner "
        f"runs as{more}: that user can plant the secret key or replace the database, so the "
        "runner refuses to use it"
    )
    inside = all(p == data_dir or data_dir in p.parents for p, _ in found)
    chown = f"chown -R {me}: {data_dir}" if inside else f"chown {me}: {path}"
    hint = (
        f"if its content is yours, run: {chown}  (else use another JEEVES_DATA_DIR, made "
        "by the runner's user), or run the runner as its owner"
    )
    return message, hint


def user_name(uid: int) -> str:
    """The account name of ``uid``, or ``uid N`` when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def refuse_foreign_owned(settings) -> None:
    """ImproperlyConfigured when part of the installation belongs to another user."""
    found = foreign_owned(settings)
    if found:
        message, hint = foreign_owner_problem(found, Path(settings.DATA_DIR))
        raise ImproperlyConfigured(f"{message}; {hint}")


def tighten_installation(settings) -> list[str]:
    """Remove group and other permissions from the runner's files; say what changed.

    Covers everything under the data directory and the files of ``runner_paths``.
    A path this process may not change (another user's file) is logged as an error
    naming the command to run; ``manage.py check`` reports it too.
    """
    changed: list[str] = []
    for path in _installation_paths(settings):
        mode = readable_by_others(path)
        if mode is None or path.is_symlink():
            continue
        try:
            os.chmod(path, mode & ~_OTHERS)
        except OSError as exc:
            logger.error(
                "%s is mode %04o, readable by other users, and cannot be changed (%s); "
                "run: chmod go-rwx %s",
                path,
                mode,
                exc.strerror,
                path,
            )
            continue
        changed.append(f"{path}: {mode:04o} -> {mode & ~_OTHERS:04o}")
    for line in changed:
        logger.warning("tightened the permissions of %s", line)
    return changed


def _installation_paths(settings) -> list[Path]:
    paths = runner_paths(settings)
    data_dir = paths[0]
    if data_dir.is_dir():
        for root, dirs, files in os.walk(data_dir):
            paths += [Path(root, name) for name in (*dirs, *files)]
    return paths


class PrivateWatchedFileHandler(logging.handlers.WatchedFileHandler):
    """``WatchedFileHandler`` whose log file is created 0600, whatever the umask."""

    def _open(self):
        path = Path(self.baseFilename)
        create_private_file(path)
        return super()._open()


def prepare_data_dir(settings) -> list[str]:
    """At a daemon's or the web app's start: the installation is the runner's user's
    (else ImproperlyConfigured, before anything is changed), the data directory exists,
    and the installation is private (see ``tighten_installation``)."""
    refuse_foreign_owned(settings)
    ensure_private_dir(Path(settings.DATA_DIR))
    return tighten_installation(settings)


def prepare_for_command(argv: list[str]) -> None:
    """``manage.py``: a private data directory before any command runs (and before its
    system checks), except ``check``, which reports and changes nothing. An installation
    another user owns stops the command here, with one line.

    Settings that do not load are left for the command to report.
    """
    if argv[1:2] == ["check"]:
        return
    from django.conf import settings

    try:
        settings.DATA_DIR  # noqa: B018  (loads the settings)
    except Exception:
        return
    try:
        prepare_data_dir(settings)
    except ImproperlyConfigured as exc:
        sys.exit(f"manage.py: {exc}")
