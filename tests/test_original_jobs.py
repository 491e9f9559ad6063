"""The original runner's job files, synced as they are and run as they ran there.

The fixture (tests/fixtures/original_jobs) is a job directory in the original's
shape. Its jobs get the original's interpreter rule (node for inline scripts and
files no ``runners`` entry maps); jobs made here keep ours (bash for inline).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import call_command

from runner.execution.executor import execute_run
from runner.models import Job, Run
from tests.factories import JobFactory, RunFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
requires_node = pytest.mark.skipif(
    shutil.which("node") is None,
    reason="node runs the original's scripts (scripts/test installs it)",
)

FIXTURE = Path(__file__).parent / "fixtures" / "original_jobs"


@dataclass
class Installed:
    root: Path
    out: str  # what sync_jobs printed
    err: str

    def __truediv__(self, name: str) -> Path:
        return self.root / name


@pytest.fixture
def install(tmp_path: Path) -> Installed:
    """A copy of the original installation's scripts directory, synced."""
    root = tmp_path / "install"
    shutil.copytree(FIXTURE, root)
    out, err = StringIO(), StringIO()
    call_command("sync_jobs", str(root / "scripts" / "jobs"), stdout=out, stderr=err)
    return Installed(root, out.getvalue(), err.getvalue())


def run(job_id: str) -> Run:
    return execute_run(RunFactory(job=Job.objects.get(pk=job_id)).pk, worker="test:1")


def test_every_job_of_the_original_files_is_synced_without_editing_a_file(install):
    assert install.out.splitlines()[-1] == (
        "6 added, 0 updated, 0 unchanged, 0 skipped, 0 files refused"
    )
    hello = install / "scripts" / "src" / "example" / "hello.ts"
    assert install.err == (
        f"misc.json: job hello: added; warning: script: script not found: {hello}; "
        "saved anyway, its runs fail until it exists\n"
    )
    assert (
        "email.json, misc.json: ignored: accepted and not stored, as by the original runner: "
        "domain, prerequisite"
    ) in install.out
    assert set(Job.objects.values_list("interpreter", flat=True)) == {"node"}


def test_the_recurrence_schedules_are_stored_as_the_original_stores_them(install):
    assert Job.objects.get(pk="email-digest").schedule == (
        '{"freq":"minutely","interval":11,"timezone":"America/Chicago"}'
    )
    assert Job.objects.get(pk="inline-hello").schedule.startswith(
        '{"timezone":"Europe/Berlin","rules":[{"effect":"active"'
    )


def test_a_second_sync_changes_nothing(install):
    out = StringIO()
    call_command("sync_jobs", str(install / "scripts" / "jobs"), stdout=out, stderr=StringIO())
    assert out.getvalue().splitlines()[-1].startswith("0 added, 0 updated, 6 unchanged")


@requires_node
def test_the_originals_inline_js_job_ends_ok(install):
    finished = run("inline-hello")
    assert (finished.status, finished.stdout) == ("ok", "inline-output")


@requires_node
def test_a_js_file_runs_with_its_env_and_args(install):
    finished = run("email-poll")
    assert (finished.status, finished.stdout) == ("ok", "polled INBOX limit 50")


@requires_node
def test_an_mjs_file_and_a_file_without_extension_run_with_node(install):
    assert (run("email-digest").status, run("email-digest").stdout) == (
        "ok",
        "digest from digest.mjs",
    )
    assert run("cleanup").stdout == "cleaned by node"


def test_a_job_whose_script_is_not_there_yet_fails_saying_so(install):
    finished = run("hello")
    hello = install / "scripts" / "src" / "example" / "hello.ts"
    assert (finished.status, finished.error) == ("error", f"script not found: {hello}")


def test_manage_py_check_lists_the_jobs_whose_script_is_missing(install):
    [warning] = [item for item in run_checks() if item.id == "runner.W020"]
    hello = install / "scripts" / "src" / "example" / "hello.ts"
    assert f"hello: script: script not found: {hello}" in warning.msg
    assert warning.msg.startswith("1 job(s) name a file that does not exist")


def test_a_runners_entry_still_wins_over_the_jobs_interpreter(tmp_path):
    path = tmp_path / "tool.py"
    path.write_text("import sys; print(sys.executable)\n")
    job = JobFactory(source_type="path", script=str(path), interpreter="node")
    finished = execute_run(RunFactory(job=job).pk, worker="test:1")
    assert (finished.status, finished.stdout) == ("ok", sys.executable)


def test_an_inline_job_made_here_without_a_shebang_still_runs_with_bash():
    job = JobFactory(source_type="inline", script='echo "${BASH_VERSION:+bash}"')
    assert job.interpreter == ""
    assert execute_run(RunFactory(job=job).pk, worker="test:1").stdout == "bash"


def test_an_inline_shebang_wins_over_the_jobs_interpreter():
    text = f"#!{sys.executable}\nprint('python here')\n"
    job = JobFactory(source_type="inline", script=text, interpreter="node")
    assert execute_run(RunFactory(job=job).pk, worker="test:1").stdout == "python here"


@requires_node
def test_the_originals_inline_js_job_ends_ok_after_import_original_db(tmp_path):
    from runner.original_import import import_original_db
    from tests.fixtures.original_runner.make_runner_sqlite import make_runner_sqlite

    import_original_db(make_runner_sqlite(tmp_path / "runner.sqlite", original_only=False))
    assert Job.objects.get(pk="inline-hello").interpreter == "node"
    finished = run("inline-hello")
    assert (finished.status, finished.stdout) == ("ok", "inline-output")
