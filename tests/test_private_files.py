"""Nobody but the runner's user reads its data: every entrance, as a real process, leaves
the data directory 0700 and its files 0600; a loose installation is reported by
``manage.py check`` and tightened when the runner starts."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection

from jeeves_site.database import database_url
from jeeves_site.private_files import tighten_installation
from runner.execution.inline_files import remove_stale_inline_dirs
from tests.factories import JobFactory

pytestmark = [pytest.mark.timeout(120)]

MANAGE = str(settings.BASE_DIR / "manage.py")
# What an operator's shell usually has: without the runner's care, files come out 0644.
OPERATOR_UMASK = 0o022


def sqlite() -> bool:
    return connection.vendor == "sqlite"


def entrance_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A fresh installation in ``data_dir`` on this test's database. On SQLite no key
    is configured, so the secret key is generated into the data directory."""
    env = {**os.environ, "JEEVES_DATA_DIR": str(data_dir), "DATABASE_URL": database_url()}
    env.pop("JEEVES_TEST_DATABASE_NAME", None)
    env.pop("JEEVES_INHERITED_UMASK", None)
    if sqlite():
        env.pop("DJANGO_SECRET_KEY", None)
    return {**env, **extra}


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        umask=OPERATOR_UMASK,
        timeout=100,
    )


def modes(root: Path) -> dict[str, str]:
    """Every path under ``root`` (and root itself, as ".") with its permission bits."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def assert_private(root: Path) -> dict[str, str]:
    found = modes(root)
    loose = {
        name: mode
        for name, mode in found.items()
        if mode != ("0o700" if (root / name).is_dir() else "0o600")
    }
    assert not loose, f"not private under {root}: {loose}"
    return found


# Each entrance, first on a fresh installation


def test_migrate_on_a_fresh_installation_leaves_everything_private(tmp_path):
    data = tmp_path / "data"
    env = entrance_env(data, JEEVES_LOG_FILE=str(tmp_path / "runner.log"))
    if sqlite():
        env.pop("DATABASE_URL")  # the embedded default: a new database in the data dir
    done = run([MANAGE, "migrate", "--noinput", "-v0"], env)
    assert done.returncode == 0, done.stderr
    found = assert_private(data)
    assert oct(stat.S_IMODE((tmp_path / "runner.log").stat().st_mode)) == "0o600"
    if sqlite():
        assert {"jeeves.sqlite3", "secret_key"} <= set(found)
    else:
        assert not [name for name in found if "sqlite" in name]


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_started_first_leaves_its_data_dir_private(tmp_path):
    data = tmp_path / "data"
    done = run([MANAGE, "runscheduler", "--once"], entrance_env(data))
    assert done.returncode == 0, done.stderr
    found = assert_private(data)
    assert "inline-scripts" in found
    assert ("secret_key" in found) == sqlite()


@pytest.mark.django_db(transaction=True)
def test_trigger_job_runs_an_inline_script_from_a_private_file_with_the_operators_umask(
    tmp_path,
):
    job = JobFactory(
        script='stat -c %a "$0" "$(dirname "$0")" "$(dirname "$(dirname "$0")")"; umask'
    )
    data = tmp_path / "data"
    done = run([MANAGE, "trigger_job", job.id], entrance_env(data))
    assert done.returncode == 0, done.stdout + done.stderr
    stdout = done.stdout.split("--- stdout", 1)[1].split("---\n", 1)[1]
    assert stdout.split()[:4] == ["600", "700", "700", "0022"]
    assert_private(data)


@pytest.mark.django_db(transaction=True)
def test_a_scripts_client_leaves_the_data_dir_private(tmp_path):
    data = tmp_path / "data"
    code = "from runner.client import get_runner_client\nget_runner_client().set_state('p', 'k', 1)"
    env = entrance_env(data)
    env.pop("DJANGO_SECRET_KEY", None)  # as scripts get it
    done = run(["-c", code], env)
    assert done.returncode == 0, done.stderr
    assert not data.exists()  # the client needs nothing there, and makes nothing


def test_a_client_opening_a_new_sqlite_database_creates_it_private(tmp_path):
    database = tmp_path / "new" / "jeeves.sqlite3"
    code = "from runner.client import get_runner_client\nget_runner_client().get_state('p', 'k')"
    env = entrance_env(tmp_path / "data", DATABASE_URL=f"sqlite:///{database}")
    run(["-c", code], env)  # fails: no tables yet; the file is what matters
    assert database.exists()
    assert_private(database.parent)


@pytest.mark.django_db(transaction=True)
def test_ensure_admin_writes_the_initial_password_private_in_a_private_dir(tmp_path):
    data = tmp_path / "data"
    done = run([MANAGE, "ensure_admin"], entrance_env(data))
    assert done.returncode == 0, done.stderr
    assert "initial-admin-password" in assert_private(data)


@pytest.mark.django_db
def test_ensure_admin_makes_a_password_file_left_readable_private(tmp_path, settings):
    settings.DATA_DIR = tmp_path
    stale = tmp_path / "initial-admin-password"
    stale.write_text("old")
    stale.chmod(0o644)
    call_command("ensure_admin", stdout=StringIO())
    assert oct(stat.S_IMODE(stale.stat().st_mode)) == "0o600" and stale.read_text() != "old"


def test_a_new_sqlite_databases_wal_and_shm_files_are_private_while_it_is_in_use(tmp_path):
    database = tmp_path / "data" / "jeeves.sqlite3"
    code = (
        "import os, stat\n"
        "from runner.client import setup_django\n"
        "setup_django()\n"
        "from django.db import connection\n"
        "connection.cursor().execute('create table t (x integer)')\n"
        "for suffix in ('', '-wal', '-shm'):\n"
        "    print(oct(stat.S_IMODE(os.stat(connection.settings_dict['NAME'] + suffix).st_mode)))\n"
    )
    done = run(["-c", code], entrance_env(tmp_path, DATABASE_URL=f"sqlite:///{database}"))
    assert done.stdout.split() == ["0o600", "0o600", "0o600"], done.stderr


@pytest.mark.django_db(transaction=True)
def test_the_web_app_under_gunicorn_leaves_its_data_dir_private(tmp_path):
    data = tmp_path / "data"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [gunicorn, "jeeves_site.wsgi", "--bind", "127.0.0.1:0", "--workers", "1"],
        env=entrance_env(data),
        cwd=settings.BASE_DIR,
        stderr=subprocess.PIPE,
        text=True,
        umask=OPERATOR_UMASK,
    )
    try:
        port = _gunicorn_port(server)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/status", headers={"Authorization": "Bearer jr_nope"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401  # it read the tokens table
    finally:
        server.terminate()
        server.wait(timeout=30)
    found = assert_private(data)
    assert ("secret_key" in found) == sqlite()


def _gunicorn_port(server: subprocess.Popen) -> int:
    deadline = time.monotonic() + 60
    for line in server.stderr:
        match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match[1])
        assert time.monotonic() < deadline, "gunicorn did not start"
    raise AssertionError("gunicorn exited before it listened")


# A loose installation: reported, then tightened at start


def loosen(data: Path) -> list[Path]:
    """Make ``data`` what an older runner left: 0755 directories, 0644 files."""
    (data / "inline-scripts" / "jr-inline-999999999-x").mkdir(parents=True)
    files = [data / "secret_key", data / "initial-admin-password"]
    files.append(data / "inline-scripts" / "jr-inline-999999999-x" / "script.script")
    for path in files:
        path.write_text("secret")
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return files


@pytest.mark.django_db(transaction=True)
def test_a_loose_installation_fails_check_with_the_command_to_run_then_start_tightens_it(
    tmp_path,
):
    data = tmp_path / "data"
    loosen(data)
    env = entrance_env(data, DJANGO_SECRET_KEY="test-only")
    checked = run([MANAGE, "check"], env)
    assert checked.returncode != 0
    assert f"(runner.E010) {data} is mode 0755" in checked.stderr
    assert f"chmod -R go-rwx {data}" in checked.stderr
    started = run([MANAGE, "runscheduler", "--once"], env)
    assert started.returncode == 0, started.stderr
    assert "jr-inline-999999999-x" not in assert_private(data)  # a dead worker's, removed
    assert run([MANAGE, "check"], env).returncode == 0


def test_tightening_removes_group_and_other_bits_and_says_what_it_changed(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    secret_key, password, script = loosen(settings.DATA_DIR)
    script.chmod(0o755)  # an owner's execute bit is kept
    changed = tighten_installation(settings)
    assert f"{settings.DATA_DIR}: 0755 -> 0700" in changed
    assert f"{secret_key}: 0644 -> 0600" in changed
    assert f"{password}: 0644 -> 0600" in changed
    assert modes(settings.DATA_DIR)[str(script.relative_to(settings.DATA_DIR))] == "0o700"
    assert tighten_installation(settings) == []


@pytest.mark.django_db
def test_check_names_a_database_file_readable_by_others(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "absent"
    if not sqlite():
        assert not [e for e in run_checks() if e.id == "runner.E010"]  # no file to check
        return
    database = Path(settings.DATABASES["default"]["NAME"])
    before = stat.S_IMODE(database.stat().st_mode)
    database.chmod(0o644)
    try:
        errors = [e for e in run_checks() if e.id == "runner.E010"]
    finally:
        database.chmod(before)
    assert [e.msg for e in errors] == [
        f"{database} is mode 0644: other users can read the runner's data"
    ]
    assert errors[0].hint.startswith(f"run: chmod go-rwx {database}")


# Inline scripts left behind


def test_only_inline_directories_of_processes_that_are_gone_are_removed(tmp_path):
    gone = subprocess.Popen(["true"])  # a pid that is certainly gone
    gone.wait()
    root = tmp_path / "inline-scripts"
    mine = root / f"jr-inline-{os.getpid()}-live"
    dead = root / f"jr-inline-{gone.pid}-dead"
    reused = root / f"jr-inline-{os.getpid()}-older"  # made before this process began
    other = root / "not-ours"
    for path in (mine, dead, reused, other):
        path.mkdir(parents=True)
    os.utime(reused, (0, 0))
    removed = remove_stale_inline_dirs(root)
    assert sorted(removed) == sorted([dead, reused])
    assert mine.exists() and other.exists()
    shutil.rmtree(root)
