"""``import_original_db``: an original jeeves-runner ``runner.sqlite`` brought into ours."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from queues.models import Queue, QueueItem
from runner.client import get_runner_client
from runner.models import Job, Run
from runner.original_import import IMPORTED, NOT_IMPORTED, PRESENT, SKIPPED, import_original_db
from statestore.models import StateEntry, StateItem
from tests.factories import JobFactory
from tests.fixtures.original_runner.make_runner_sqlite import make_runner_sqlite

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def original(tmp_path: Path) -> Path:
    """An original database holding only jobs ours accepts today (and one that never is)."""
    return make_runner_sqlite(tmp_path / "original" / "runner.sqlite", original_only=False)


def counts(report) -> dict[str, tuple[int, int, int]]:
    return {t: (c[IMPORTED], c[PRESENT], c[NOT_IMPORTED]) for t, c in report.counts.items()}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_every_table_is_imported_and_counted(original):
    report = import_original_db(original)
    assert report.schema_version == 6
    assert counts(report) == {
        "jobs": (3, 0, 1),
        "runs": (4, 0, 1),
        "state": (3, 0, 0),
        "state_items": (2, 0, 0),
        "queues": (6, 0, 0),
        "queue_items": (6, 0, 0),
    }
    assert report.counts["state"][SKIPPED] == 1


def test_jobs_keep_every_field_of_the_original(original):
    import_original_db(original)
    job = Job.objects.get(pk="poll-inbox")
    assert (job.name, job.schedule, job.description) == ("Poll inbox", "*/5 * * * *", "Checks mail")
    assert job.script == str(original.parent / "scripts" / "poll-inbox.sh")
    assert (job.timeout_ms, job.overlap_policy, job.on_failure) == (60000, "skip", "C0FAIL")
    assert (job.env, job.args) == ({"MAILBOX": "inbox"}, ["--verbose"])
    inline = Job.objects.get(pk="inline-hello")
    assert (inline.source_type, inline.script) == ("inline", 'console.log("inline-output")')
    assert inline.overlap_policy == "allow" and inline.timeout_ms is None
    paused = Job.objects.get(pk="paused")
    assert (paused.enabled, paused.output_channel) == (False, "C0OUT")


def test_runs_keep_their_output_tails_ids_and_times(original):
    import_original_db(original)
    first = Run.objects.get(pk=1)
    assert (first.job_id, first.status, first.trigger) == ("poll-inbox", "ok", "schedule")
    assert first.stdout == "checked 3 mails\ndone"
    assert first.started_at == at("2026-11-01 08:00:00")
    assert first.finished_at == at("2026-11-01 08:00:02")
    assert (first.duration_ms, first.exit_code, first.scheduled_for) == (2100, 0, None)
    failed = Run.objects.get(pk=2)
    assert (failed.status, failed.error, failed.stderr) == ("error", "boom", "Error: boom")
    manual = Run.objects.get(pk=3)
    assert (manual.trigger, manual.tokens, manual.result_meta) == ("manual", 42, "meta-string")
    interrupted = Run.objects.get(pk=4)
    assert interrupted.status == "error"
    assert "was running when the original jeeves-runner stopped" in interrupted.error


def test_state_and_items_keep_the_originals_text_values_and_times(original):
    import_original_db(original)
    assert StateEntry.objects.get(namespace="email", key="cursor").value == "999"
    since = StateEntry.objects.get(namespace="x", key="since")
    assert (since.value, since.expires_at) == ("2026-01-01", at("2099-01-01 00:00:00"))
    assert not StateEntry.objects.filter(namespace="old").exists()  # expired there
    t1, t2 = StateItem.objects.filter(namespace="email", key="seen").order_by("item_key")
    assert (t1.value, t2.value) == (None, '{"from":"a@b"}')
    assert t2.updated_at == at("2026-11-01 08:06:00")
    with get_runner_client() as jr:
        assert jr.get_state("email", "cursor") == "999"
        assert jr.list_item_keys("email", "seen") == ["t2", "t1"]


def test_queue_definitions_map_dedup_expr_scope_retention_and_attempts(original):
    import_original_db(original)
    pending = Queue.objects.get(pk="email-pending")
    assert pending.dedup_config == {"path": "$.threadId", "scope": "pending"}
    assert (pending.retention, pending.max_attempts) == ({"completed": "7d", "failed": "7d"}, 1)
    out = Queue.objects.get(pk="jobs-out")
    assert out.dedup_config == {"path": "$.id", "scope": "all"}
    assert (out.retention, out.max_attempts) == ({"completed": "14d", "failed": "14d"}, 3)
    assert Queue.objects.get(pk="email-updates").dedup_config is None
    adhoc = Queue.objects.get(pk="adhoc")  # items without a definition: the original's defaults
    assert (adhoc.max_attempts, adhoc.retention["completed"]) == (1, "7d")


def test_queue_items_keep_their_status_attempts_and_order(original):
    import_original_db(original)
    items = {item.pk: item for item in QueueItem.objects.all()}
    assert [items[i].status for i in range(1, 7)] == [
        "pending",
        "pending",  # was "processing": the original's claims cannot carry over
        "completed",
        "failed",
        "pending",
        "pending",
    ]
    assert (items[2].attempts, items[2].priority, items[2].claim_token) == (1, 5, None)
    assert items[3].completed_at == at("2026-11-01 08:04:00")
    assert (items[4].error, items[4].attempts, items[4].max_attempts) == ("nope", 3, 3)
    assert items[1].payload == {"threadId": "t1"} and items[6].payload == "not json"
    assert items[1].created_at == at("2026-11-01 08:00:00")


def test_imported_queues_de_duplicate_and_new_ids_follow_the_imported_ones(original):
    import_original_db(original)
    with get_runner_client() as jr:
        assert jr.enqueue("email-pending", {"threadId": "t1"}) is None
        new_id = jr.enqueue("email-pending", {"threadId": "t9"})
        assert new_id > 6
        assert [item.payload for item in jr.dequeue("email-pending", count=3)] == [
            {"threadId": "t2"},
            {"threadId": "t1"},
            {"threadId": "t9"},
        ]
    run = Run.objects.create(job=Job.objects.get(pk="poll-inbox"), status="pending")
    assert run.pk > 4


def test_a_second_import_changes_nothing(original):
    import_original_db(original)
    snapshot = _snapshot()
    report = import_original_db(original)
    assert counts(report) == {
        "jobs": (0, 3, 1),
        "runs": (0, 4, 1),
        "state": (0, 3, 0),
        "state_items": (0, 2, 0),
        "queues": (0, 6, 0),
        "queue_items": (0, 6, 0),
    }
    assert _snapshot() == snapshot


def _snapshot() -> dict:
    return {
        "jobs": list(Job.objects.order_by("id").values()),
        "runs": list(Run.objects.order_by("id").values()),
        "state": list(StateEntry.objects.order_by("id").values()),
        "items": list(StateItem.objects.order_by("id").values()),
        "queues": list(Queue.objects.order_by("id").values()),
        "queue_items": list(QueueItem.objects.order_by("id").values()),
    }


def test_values_ours_changed_since_are_kept(original):
    import_original_db(original)
    with get_runner_client() as jr:
        jr.set_state("email", "cursor", "1200")
    import_original_db(original)
    assert StateEntry.objects.get(namespace="email", key="cursor").value == "1200"


def test_a_run_whose_id_ours_already_used_gets_a_new_one_once(original):
    other = JobFactory(id="ours")
    Run.objects.create(id=1, job=other, status="ok")
    import_original_db(original)
    assert Run.objects.get(pk=1).job_id == "ours"
    assert Run.objects.filter(job_id="poll-inbox", stdout="checked 3 mails\ndone").count() == 1
    import_original_db(original)
    assert Run.objects.filter(job_id="poll-inbox", stdout="checked 3 mails\ndone").count() == 1


def test_a_dry_run_reports_the_same_and_writes_nothing(original):
    report = import_original_db(original, dry_run=True)
    assert counts(report)["runs"] == (4, 0, 1)
    assert not Job.objects.exists() and not Queue.objects.exists()


def test_the_command_prints_counts_notes_and_what_it_could_not_import(original):
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="2 row"):
        call_command("import_original_db", str(original), stdout=out, stderr=err)
    text = out.getvalue()
    assert "runs         4 imported, 0 already present, 1 not imported" in text
    assert "state        3 imported, 0 already present, 1 skipped, 0 not imported" in text
    assert "note: runs: run 4 was running; imported as error" in text
    assert "note: queue_items: item 2 was being processed; now pending" in text
    assert "not imported: jobs: bad-schedule: schedule: 'every day'" in err.getvalue()
    assert "not imported: runs: run 5: its job bad-schedule was not imported" in err.getvalue()


def test_the_dry_run_command_says_nothing_was_written(original):
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_original_db", str(original), "--dry-run", stdout=out, stderr=out)
    assert "4 would be imported" in out.getvalue()
    assert "Dry run: nothing was written." in out.getvalue()
    assert not Run.objects.exists()


def test_every_job_of_a_full_original_installation_is_imported_or_listed(tmp_path):
    path = make_runner_sqlite(tmp_path / "runner.sqlite", original_only=True)
    report = import_original_db(path)
    jobs = report.counts["jobs"]
    assert jobs[IMPORTED] + jobs[NOT_IMPORTED] == 7
    listed = {line.split(": ")[1] for line in report.refused if line.startswith("jobs:")}
    assert listed | set(Job.objects.values_list("id", flat=True)) == {
        "poll-inbox",
        "inline-hello",
        "paused",
        "bad-schedule",
        "every-11",
        "not-yet",
        "morning",
    }


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.mkdir(), p)[1], "is a directory, not a database file"),
        (lambda p: (os.mkfifo(p), p)[1], "is not a regular file"),
        (lambda p: p.parent / ("x" * 300), "cannot be read"),
        (lambda p: (p.write_text("hello"), p)[1], "not an SQLite database"),
        (lambda p: _sqlite_with(p, "CREATE TABLE jobs (id TEXT)"), "no schema_version table"),
    ],
)
def test_a_file_that_is_not_an_original_database_is_refused(tmp_path, make, needle):
    path = make(tmp_path / "x.sqlite")
    with pytest.raises(CommandError, match=needle):
        call_command("import_original_db", str(path), stdout=io.StringIO())


def test_a_refused_database_path_is_named_on_one_line(tmp_path):
    path = tmp_path / "runner\nERROR forged.sqlite"
    with pytest.raises(CommandError) as refused:
        call_command("import_original_db", str(path), stdout=io.StringIO())
    assert "\n" not in str(refused.value) and "runner\\x0aERROR forged.sqlite" in str(refused.value)


def test_an_original_database_older_than_state_tables_is_refused(tmp_path):
    import sqlite3

    from tests.fixtures.original_runner.make_runner_sqlite import apply_schema

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        apply_schema(db, up_to=2)
    with pytest.raises(CommandError, match="schema version 2 is older than 3"):
        call_command("import_original_db", str(path), stdout=io.StringIO())


def _sqlite_with(path: Path, sql: str) -> Path:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute(sql)
    return path


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {
        "PATH": os.environ["PATH"],
        "JEEVES_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SETTINGS_MODULE": "jeeves_site.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", [("migrate",), ("check",), ("runscheduler", "--once")])
def test_pointing_db_path_at_an_original_database_names_the_import_command(tmp_path, command):
    path = make_runner_sqlite(tmp_path / "runner.sqlite")
    before = path.read_bytes()
    result = _manage(tmp_path, *command, JEEVES_DB_PATH=str(path))
    assert result.returncode != 0
    assert "(runner.E003)" in result.stderr
    assert f"manage.py import_original_db {path}" in result.stderr
    assert "already exists" not in result.stderr
    assert path.read_bytes() == before


@pytest.mark.slow
def test_a_database_url_naming_an_original_database_is_detected_too(tmp_path):
    path = make_runner_sqlite(tmp_path / "runner.sqlite")
    result = _manage(tmp_path, "check", DATABASE_URL=f"sqlite:///{path}")
    assert result.returncode != 0 and "import_original_db" in result.stderr


def test_rows_the_original_ran_are_imported_with_their_runs(tmp_path):
    """A timeout_ms of 0 (no timeout there: executor.ts "if (timeoutMs)"), a fractional
    one (rounded up to whole ms), and a recurrence with 11.0 (zod's .int() takes it)."""
    import sqlite3

    path = make_runner_sqlite(tmp_path / "runner.sqlite", original_only=False)
    db = sqlite3.connect(path)
    rows = [
        ("zero", "* * * * *", 0),
        ("half", "* * * * *", 1000.5),
        ("floats", '{"freq":"minutely","interval":11.0,"timezone":"UTC"}', None),
        ("either", "0 9 */2 * 1", None),  # croner: odd days or Mondays
    ]
    for job_id, schedule, timeout in rows:
        db.execute(
            "INSERT INTO jobs (id, name, schedule, script, source_type, timeout_ms)"
            " VALUES (?, ?, ?, 'console.log(1)', 'inline', ?)",
            (job_id, job_id, schedule, timeout),
        )
        db.execute(
            "INSERT INTO runs (job_id, status, started_at, trigger)"
            " VALUES (?, 'ok', '2026-11-01 08:00:00', 'manual')",
            (job_id,),
        )
    db.commit()
    db.close()
    report = import_original_db(path)
    jobs = {job.id: job for job in Job.objects.filter(pk__in=["zero", "half", "floats", "either"])}
    assert (jobs["zero"].timeout_ms, jobs["half"].timeout_ms) == (None, 1001)
    assert jobs["floats"].schedule == '{"freq":"minutely","interval":11,"timezone":"UTC"}'
    assert jobs["either"].schedule == "0 9 1-31/2 * 1"
    assert Run.objects.filter(job_id__in=jobs).count() == 4
    assert not [line for line in report.refused if "zero" in line or "half" in line]
    assert any("half: timeout_ms 1000.5 rounded up to 1001" in note for note in report.notes)
