"""The original runner's routes at the root paths: its shapes, its `{error}` refusals.

Driven through Django's test client exactly as the original's plugin and CLI call
them (no /api/ prefix); authenticated with a bearer token here, see
test_original_access.py for who else may call them.
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta

import pytest

from runner.execution.executor import execute_run
from runner.models import Job, Run, SchedulerHeartbeat
from statestore import operations as state
from tests.api.conftest import ApiClient
from tests.factories import JobFactory, QueueFactory, QueueItemFactory, RunFactory
from tests.moments import NOW

pytestmark = pytest.mark.django_db

SQLITE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
JOB_COLUMNS = [
    "id",
    "name",
    "schedule",
    "script",
    "type",
    "description",
    "enabled",
    "timeout_ms",
    "overlap_policy",
    "on_failure",
    "on_success",
    "created_at",
    "updated_at",
    "source_type",
    "output_channel",
    "env",
    "args",
]
RUN_COLUMNS = [
    "id",
    "job_id",
    "status",
    "started_at",
    "finished_at",
    "duration_ms",
    "exit_code",
    "tokens",
    "result_meta",
    "error",
    "stdout_tail",
    "stderr_tail",
    "trigger",
]
RESULT_FIELDS = {
    "status",
    "exitCode",
    "durationMs",
    "tokens",
    "resultMeta",
    "stdoutTail",
    "stderrTail",
    "error",
}


@pytest.fixture
def root(token) -> ApiClient:
    """A client of the root dialect with a bearer token."""
    return ApiClient(token, prefix="")


def refused(response, status: int) -> str:
    """The refusal's message, after checking its status and that `{error}` is all it holds."""
    assert response.status_code == status, response.content
    body = response.json()
    assert list(body) == ["error"], body
    return body["error"]


# --- status -----------------------------------------------------------------------


def test_status_is_healthy_with_a_scheduler_in_the_original_shape(root, clock):
    SchedulerHeartbeat.beat("host:1", NOW - timedelta(seconds=90.7), NOW)
    JobFactory()
    RunFactory(status="ok", finished_at=NOW)
    body = root.get("/status").json()
    assert body == {
        "name": "runner",
        "version": body["version"],
        "uptime": 90,
        "status": "healthy",
        "health": {
            "totalJobs": 2,
            "running": 0,
            "failedRegistrations": 0,
            "okLastHour": 1,
            "errorsLastHour": 0,
        },
    }


def test_status_is_degraded_with_no_scheduler_alive(root):
    body = root.get("/status").json()
    assert (body["status"], body["uptime"]) == ("degraded", 0)


# --- jobs -------------------------------------------------------------------------


def test_jobs_lists_rows_in_the_original_columns_with_the_last_run(root):
    job = JobFactory(id="inbox", env={"A": "1"}, args=["x"], timeout_ms=5000)
    JobFactory(id="plain", enabled=False)
    RunFactory(job=job, status="ok", started_at=NOW)
    rows = root.get("/jobs").json()["jobs"]
    assert [row["id"] for row in rows] == ["inbox", "plain"]
    inbox, plain = rows
    assert list(inbox) == [*JOB_COLUMNS, "last_status", "last_run"]
    assert (inbox["enabled"], inbox["env"], inbox["args"]) == (1, '{"A": "1"}', '["x"]')
    assert (inbox["timeout_ms"], inbox["last_status"]) == (5000, "ok")
    assert inbox["last_run"] == "2026-03-01 09:00:00"
    assert SQLITE_TIME.match(inbox["created_at"]) and SQLITE_TIME.match(inbox["updated_at"])
    assert (plain["enabled"], plain["env"], plain["args"], plain["description"]) == (
        0,
        None,
        None,
        None,
    )
    assert (plain["last_status"], plain["last_run"]) == (None, None)


def test_a_job_is_its_row_and_an_unknown_one_is_404(root):
    JobFactory(id="inbox", description="mail")
    body = root.get("/jobs/inbox").json()
    assert list(body) == ["job"]
    assert list(body["job"]) == JOB_COLUMNS
    assert body["job"]["description"] == "mail"
    assert refused(root.get("/jobs/nope"), 404) == "Job not found"


def test_creating_a_job_answers_201_ok_and_its_id(root):
    response = root.post(
        "/jobs",
        {
            "id": "inbox",
            "name": "Inbox",
            "schedule": "*/5 * * * *",
            "script": "echo hi",
            "source_type": "inline",
            "timeout_seconds": 30,
            "enabled": False,
            "env": {"A": "1"},
        },
    )
    assert (response.status_code, response.json()) == (201, {"ok": True, "id": "inbox"})
    job = Job.objects.get(pk="inbox")
    assert (job.timeout_ms, job.enabled, job.env, job.source_type) == (
        30_000,
        False,
        {"A": "1"},
        "inline",
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"name": "x", "schedule": "* * * * *", "script": "echo"}, "id"),
        ({"id": "x", "schedule": "* * * * *", "script": "echo"}, "name"),
        ({"id": "x", "name": "x", "schedule": "not cron", "script": "echo"}, "schedule"),
        (
            {"id": "x", "name": "x", "schedule": "* * * * *", "script": "e", "type": "robot"},
            "type",
        ),
    ],
)
def test_a_bad_job_is_refused_with_400_naming_the_field_and_nothing_written(root, body, named):
    assert named in refused(root.post("/jobs", {"source_type": "inline", **body}), 400)
    assert not Job.objects.exists()


def test_a_body_that_is_not_json_is_400(root):
    assert "JSON" in refused(root.post("/jobs", raw=b"{nope"), 400)


def test_creating_an_existing_id_is_refused_and_changes_nothing(root):
    JobFactory(id="inbox", name="Old")
    body = {"id": "inbox", "name": "New", "schedule": "* * * * *", "script": "echo"}
    assert "already exists" in refused(root.post("/jobs", {**body, "source_type": "inline"}), 409)
    assert Job.objects.get(pk="inbox").name == "Old"


def test_patching_a_job_changes_only_the_fields_given_and_answers_ok(root):
    JobFactory(id="inbox", name="Inbox", schedule="*/5 * * * *")
    response = root.patch("/jobs/inbox", {"name": "Mail", "timeout_seconds": 2})
    assert (response.status_code, response.json()) == (200, {"ok": True})
    job = Job.objects.get(pk="inbox")
    assert (job.name, job.schedule, job.timeout_ms) == ("Mail", "*/5 * * * *", 2000)


def test_patching_refuses_bad_input_and_unknown_jobs(root):
    JobFactory(id="inbox", schedule="*/5 * * * *")
    assert "schedule" in refused(root.patch("/jobs/inbox", {"schedule": "nope"}), 400)
    assert Job.objects.get(pk="inbox").schedule == "*/5 * * * *"
    assert refused(root.patch("/jobs/inbox", {"id": "other"}), 400)
    assert refused(root.patch("/jobs/nope", {"name": "x"}), 404) == "Job not found"


def test_deleting_a_job_removes_it_and_its_runs(root):
    job = JobFactory(id="inbox")
    RunFactory(job=job)
    assert root.delete("/jobs/inbox").json() == {"ok": True}
    assert not Job.objects.exists() and not Run.objects.exists()
    assert refused(root.delete("/jobs/inbox"), 404) == "Job not found"


def test_enable_and_disable_answer_ok_and_404_for_unknown_jobs(root):
    JobFactory(id="inbox", enabled=True)
    assert root.patch("/jobs/inbox/disable").json() == {"ok": True}
    assert not Job.objects.get(pk="inbox").enabled
    assert root.patch("/jobs/inbox/enable").json() == {"ok": True}
    assert Job.objects.get(pk="inbox").enabled
    assert refused(root.patch("/jobs/nope/enable"), 404) == "Job not found"
    assert refused(root.patch("/jobs/nope/disable"), 404) == "Job not found"


def test_replacing_a_script_answers_ok(root):
    JobFactory(id="inbox", script="echo old", source_type="inline")
    assert root.put("/jobs/inbox/script", {"script": "echo new"}).json() == {"ok": True}
    assert Job.objects.get(pk="inbox").script == "echo new"
    assert "script" in refused(root.put("/jobs/inbox/script", {"source_type": "inline"}), 400)
    assert refused(root.put("/jobs/nope/script", {"script": "echo"}), 404) == "Job not found"


def test_runs_are_rows_in_the_original_columns_newest_first(root):
    job = JobFactory(id="inbox")
    older = RunFactory(
        job=job, status="ok", started_at=NOW, stdout="out", result_meta={"meta": {"a": 1}}
    )
    newer = RunFactory(job=job, status="error", error="boom")
    runs = root.get("/jobs/inbox/runs").json()["runs"]
    assert [run["id"] for run in runs] == [newer.pk, older.pk]
    assert list(runs[1]) == RUN_COLUMNS
    assert (runs[1]["stdout_tail"], runs[1]["result_meta"]) == ("out", '{"a": 1}')
    assert (runs[1]["started_at"], runs[0]["error"]) == ("2026-03-01 09:00:00", "boom")
    assert [r["id"] for r in root.get("/jobs/inbox/runs?limit=1").json()["runs"]] == [newer.pk]


def test_runs_of_an_unknown_job_are_none_and_a_bad_limit_is_400(root):
    assert root.get("/jobs/nope/runs").json() == {"runs": []}
    assert "limit" in refused(root.get("/jobs/nope/runs?limit=100000"), 400)
    assert "limit" in refused(root.get("/jobs/nope/runs?limit=many"), 400)


@pytest.mark.django_db(transaction=True)
def test_running_a_job_waits_for_it_and_returns_the_original_result(root, workers):
    JobFactory(id="inbox", script='echo hello; echo \'JR_RESULT:{"tokens": 7, "meta": "m"}\'')
    response = root.post("/jobs/inbox/run", {})
    assert response.status_code == 200
    result = response.json()["result"]
    assert set(result) == RESULT_FIELDS
    assert (result["status"], result["exitCode"], result["tokens"]) == ("ok", 0, 7)
    # As in the original, the JR_RESULT line stays in the output.
    assert result["stdoutTail"].splitlines()[0] == "hello"
    assert (result["resultMeta"], result["error"]) == ("m", None)
    assert Run.objects.get().trigger == "manual"


@pytest.mark.django_db(transaction=True)
def test_a_run_longer_than_the_wait_answers_202_and_goes_on(root, settings, workers):
    settings.API_RUN_WAIT_MAX_S = 0.2
    JobFactory(id="inbox", script="sleep 1")
    response = root.post("/jobs/inbox/run", {})
    assert response.status_code == 202
    assert response.json()["status"] in ("pending", "running")
    assert workers.settle()
    assert Run.objects.get(pk=response.json()["runId"]).status == "ok"


def test_running_an_unknown_job_is_404_with_the_original_message(root):
    assert refused(root.post("/jobs/nope/run", {}), 404) == "Job not found: nope"


# --- queues -----------------------------------------------------------------------


def test_queues_lists_their_ids(root):
    QueueFactory(id="b")
    QueueFactory(id="a")
    assert root.get("/queues").json() == {"queues": ["a", "b"]}


def test_queue_status_counts_and_ages_in_the_original_shape(root, clock):
    queue = QueueFactory(id="tasks")
    QueueItemFactory(queue=queue)
    clock.shift(2.5)
    QueueItemFactory(queue=queue, status="claimed", lease_expires_at=NOW + timedelta(minutes=5))
    QueueItemFactory(queue=queue, status="failed")
    assert root.get("/queues/tasks/status").json() == {
        "depth": 1,
        "claimedCount": 1,
        "failedCount": 1,
        "oldestAge": 2500,
    }


def test_an_unknown_queue_reads_as_empty(root):
    assert root.get("/queues/nope/status").json() == {
        "depth": 0,
        "claimedCount": 0,
        "failedCount": 0,
        "oldestAge": None,
    }
    assert root.get("/queues/nope/peek").json() == {"items": []}


def test_peek_shows_the_next_pending_items_highest_priority_first(root):
    queue = QueueFactory(id="tasks")
    low = QueueItemFactory(queue=queue, payload={"n": 1}, priority=0)
    high = QueueItemFactory(queue=queue, payload={"n": 2}, priority=5)
    QueueItemFactory(queue=queue, status="claimed", lease_expires_at=NOW + timedelta(minutes=5))
    items = root.get("/queues/tasks/peek").json()["items"]
    assert [item["id"] for item in items] == [high.pk, low.pk]
    assert list(items[0]) == ["id", "payload", "priority", "createdAt"]
    assert (items[0]["payload"], items[0]["priority"]) == ({"n": 2}, 5)
    assert SQLITE_TIME.match(items[0]["createdAt"])
    assert len(root.get("/queues/tasks/peek?limit=1").json()["items"]) == 1


def test_a_bad_peek_limit_or_queue_name_is_400(root):
    QueueFactory(id="tasks")
    assert "limit" in refused(root.get("/queues/tasks/peek?limit=0"), 400)
    assert refused(root.get("/queues/bad%20name/status"), 400)


# --- state ------------------------------------------------------------------------


def test_a_negative_item_limit_is_refused_naming_limit(root):
    state.set_state("mail", "cursor", "abc")
    assert refused(root.get("/state/mail/cursor?limit=-1"), 400) == (
        "limit: must be at least 0, not -1"
    )


def test_state_lists_namespaces_and_a_namespaces_values(root):
    state.set_state("mail", "cursor", "abc")
    state.set_state("mail", "count", 3)
    state.set_item("seen", "ids", "m1")
    assert root.get("/state").json() == {"namespaces": ["mail", "seen"]}
    assert root.get("/state/mail").json() == {"count": 3, "cursor": "abc"}
    assert root.get("/state/empty").json() == {}


def test_a_jsonpath_query_over_a_namespace_gives_result_and_count(root):
    state.set_state("mail", "cursor", "abc")
    state.set_state("mail", "box", {"unread": 4})
    assert root.get("/state/mail?path=$.box.unread").json() == {"result": [4], "count": 1}
    assert root.get("/state/mail?path=$.*").json()["count"] == 2
    assert "path" in refused(root.get("/state/mail?path=$[?("), 400)


def test_a_jsonpath_with_more_than_one_recursive_descent_is_refused_at_once(root):
    """Each ``..`` more multiplies the work by the value's size: four over a value 60
    deep took seconds, five exhausted the server's memory (a probe). One is answered."""
    deep: dict = {}
    for _ in range(60):
        deep = {"a": deep}
    state.set_state("dos", "deep", deep)
    assert root.get("/state/dos?path=$..a").json()["count"] == 60
    for path in ("$..*..*", "$..*..*..*..*..*", "$.deep..a..a"):
        answer = refused(root.get(f"/state/dos?path={path}"), 400)
        assert "more than 1 recursive descent (..)" in answer, path


def test_a_key_reads_as_value_items_and_count_in_either_order(root, clock):
    state.set_state("mail", "seen", {"last": "m2"})
    state.set_item("mail", "seen", "m1", {"from": "a"})
    clock.shift(1)
    state.set_item("mail", "seen", "m2")
    body = root.get("/state/mail/seen").json()
    assert body == {
        "value": {"last": "m2"},
        "items": [
            {"itemKey": "m2", "value": None, "updatedAt": "2026-03-01 09:00:01"},
            {"itemKey": "m1", "value": {"from": "a"}, "updatedAt": "2026-03-01 09:00:00"},
        ],
        "count": 2,
    }
    oldest = root.get("/state/mail/seen?order=asc&limit=1").json()
    assert [item["itemKey"] for item in oldest["items"]] == ["m1"]
    assert root.get("/state/mail/seen?path=$.items[*].itemKey").json() == {
        "result": ["m2", "m1"],
        "count": 2,
    }
    assert "order" in refused(root.get("/state/mail/seen?order=up"), 400)


def test_a_missing_key_reads_as_empty(root):
    assert root.get("/state/mail/nope").json() == {"value": None, "items": [], "count": 0}


def test_unknown_root_paths_are_still_404(root):
    assert root.get("/nothing-here").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("delete", "/status", "GET"), ("put", "/jobs", "GET, POST"), ("patch", "/queues", "GET")],
)
def test_a_method_a_route_does_not_take_is_refused_in_json_with_allow(
    root, api, method, path, allowed
):
    """As every other refusal: the original's clients show ``error`` (probe finding:
    a plain-text 'Method not allowed' before), in both dialects."""
    for client in (root, api):
        response = client.request(method, path)
        assert response.status_code == 405
        assert response["Content-Type"].startswith("application/json")
        assert set(response["Allow"].split(", ")) == set(allowed.split(", "))
        error = response.json()["error"]
        assert error.startswith(f"method {method.upper()} is not allowed here; allowed: ")


def test_an_admin_page_keeps_djangos_own_405(admin_client):
    response = admin_client.put("/admin/logout/")
    assert response.status_code == 405
    assert not response["Content-Type"].startswith("application/json")


# --- the original's interpreter rule -----------------------------------------------

requires_node = pytest.mark.skipif(
    shutil.which("node") is None, reason="node runs the original's scripts"
)


def _run(job_id: str) -> Run:
    return execute_run(RunFactory(job=Job.objects.get(pk=job_id)).pk, worker="test:1")


@requires_node
@pytest.mark.django_db(transaction=True)
def test_an_inline_job_the_plugin_creates_runs_with_node_as_in_the_original(root):
    body = {"id": "js", "name": "js", "schedule": "0 3 * * *", "script": 'console.log("x")'}
    assert root.post("/jobs", {**body, "source_type": "inline"}).status_code == 201
    assert Job.objects.get(pk="js").interpreter == "node"
    finished = _run("js")
    assert (finished.status, finished.stdout) == ("ok", "x")


@requires_node
@pytest.mark.django_db(transaction=True)
def test_an_mjs_file_the_plugin_creates_runs_with_node(root, tmp_path):
    script = tmp_path / "a.mjs"
    script.write_text('console.log("from mjs")\n')
    body = {"id": "mjs", "name": "mjs", "schedule": "0 3 * * *", "script": str(script)}
    assert root.post("/jobs", body).status_code == 201
    finished = _run("mjs")
    assert (finished.status, finished.stdout) == ("ok", "from mjs")


def test_an_interpreter_the_body_names_is_kept(root):
    body = {"id": "sh", "name": "sh", "schedule": "0 3 * * *", "script": "echo"}
    root.post("/jobs", {**body, "source_type": "inline", "interpreter": "bash"})
    assert Job.objects.get(pk="sh").interpreter == "bash"


def test_changing_a_jobs_script_through_the_root_paths_gives_it_the_originals_interpreter(root):
    JobFactory(id="a", script="echo", source_type="inline")
    JobFactory(id="b", script="echo", source_type="inline")
    JobFactory(id="c", script="echo", source_type="inline", interpreter="python3")
    assert root.patch("/jobs/a", {"name": "renamed"}).json() == {"ok": True}
    assert Job.objects.get(pk="a").interpreter == ""  # how it runs did not change
    assert root.patch("/jobs/a", {"script": "console.log(1)"}).json() == {"ok": True}
    assert root.put("/jobs/b/script", {"script": "console.log(2)"}).json() == {"ok": True}
    assert root.put("/jobs/c/script", {"script": "print(3)"}).json() == {"ok": True}
    assert dict(Job.objects.values_list("id", "interpreter")) == {
        "a": "node",
        "b": "node",
        "c": "python3",
    }


def test_keys_the_original_does_not_know_are_dropped_as_its_schema_does(root, token):
    # zod's z.object() strips unknown keys: the plugin may send what it likes.
    body = {"id": "x", "name": "x", "schedule": "* * * * *", "script": "e", "colour": 1}
    assert root.post("/jobs", {**body, "source_type": "inline"}).status_code == 201
    assert root.patch("/jobs/x", {"name": "y", "colour": 2}).json() == {"ok": True}
    assert root.put("/jobs/x/script", {"script": "f", "colour": 3}).json() == {"ok": True}
    assert (Job.objects.get(pk="x").name, Job.objects.get(pk="x").script) == ("y", "f")
    # Our own /api still names them.
    api = ApiClient(token)
    assert (
        "colour" in api.post("/jobs", {**body, "id": "z", "source_type": "inline"}).json()["error"]
    )


# --- result_meta --------------------------------------------------------------------


def test_a_session_runs_result_meta_is_its_session_key_as_in_the_original(root):
    # session-executor.ts returns resultMeta: sessionKey for a finished session, null
    # when it timed out or failed.
    job = JobFactory(id="brief", type="session", script="Summarise.")
    meta = {"sessionKey": "agent:main:subagent:1", "runId": "r1"}
    failed = RunFactory(job=job, status="timeout", started_at=NOW, result_meta=meta)
    done = RunFactory(job=job, status="ok", started_at=NOW, result_meta=meta)
    rows = {row["id"]: row for row in root.get("/jobs/brief/runs").json()["runs"]}
    assert rows[done.pk]["result_meta"] == "agent:main:subagent:1"
    assert rows[failed.pk]["result_meta"] is None


def test_an_imported_runs_result_meta_text_is_shown_as_it_was(root):
    RunFactory(job=JobFactory(id="old"), status="ok", started_at=NOW, result_meta="meta-string")
    [row] = root.get("/jobs/old/runs").json()["runs"]
    assert row["result_meta"] == "meta-string"


@pytest.mark.django_db(transaction=True)
def test_running_a_session_job_returns_its_session_key_as_result_meta(root, monkeypatch):
    from runner.api.original import jobs as original_jobs

    job = JobFactory(id="brief", type="session", script="Summarise.")
    run = RunFactory(job=job, status="ok", result_meta={"sessionKey": "agent:main:s:2"})
    monkeypatch.setattr(original_jobs, "start_manual_run", lambda job: run)
    monkeypatch.setattr(original_jobs, "wait_for_run", lambda run, *a, **kw: run)
    assert root.post("/jobs/brief/run", {}).json()["result"]["resultMeta"] == "agent:main:s:2"


def test_a_cron_schedule_sent_to_the_root_paths_keeps_crons_meaning_there(root):
    body = {"id": "x", "name": "x", "script": "e", "source_type": "inline"}
    assert root.post("/jobs", {**body, "schedule": "0 9 */2 * 1"}).status_code == 201
    assert Job.objects.get(pk="x").schedule == "0 9 1-31/2 * 1"
    assert root.patch("/jobs/x", {"schedule": "0 0 31W * *"}).json() == {"ok": True}
    assert Job.objects.get(pk="x").schedule == "0 0 31W 1,3,5,7,8,10,12 *"
    assert "no equivalent" in refused(root.patch("/jobs/x", {"schedule": "0 0 L * 5"}), 400)
