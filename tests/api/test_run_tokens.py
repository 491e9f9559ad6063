"""Per-run tokens: JR_API_URL and JR_API_TOKEN reach state and queues while the run runs,
and nothing else; the README's bash and Node scripts use them against a live server."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from queues import operations as queues
from queues.models import QueueItem
from runner.api.models import RunToken
from runner.api.run_tokens import issued_for
from runner.api.tokens import hash_secret
from runner.execution.executor import execute_run
from statestore import operations as state
from tests.api.conftest import ApiClient
from tests.factories import JobFactory, QueueFactory, RunFactory

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_script(language: str) -> str:
    """The README's ``language`` code block that uses JR_API_TOKEN."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    [script] = [block for block in blocks if "JR_API_TOKEN" in block]
    return script


@pytest.fixture
def run_token(db):
    """A running run's token secret, revoked when the test ends."""
    run = RunFactory(status="running")
    with issued_for(run) as env:
        yield env["JR_API_TOKEN"]


@pytest.mark.django_db
def test_a_running_runs_token_reads_and_writes_state_and_queues(run_token):
    api = ApiClient(run_token)
    assert api.put("/state/ns/k", {"value": 1}).json() == {"ok": True}
    assert api.get("/state/ns").json() == {"k": 1}
    assert api.post("/queues/q/enqueue", {"payload": {"n": 1}}).status_code == 201
    assert api.post("/queues/q/dequeue").json()["items"][0]["payload"] == {"n": 1}
    root = ApiClient(run_token, prefix="")
    assert root.get("/state/ns").json() == {"k": 1}
    assert root.get("/queues/q/status").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("prefix", "path"),
    [
        ("/api", "/jobs"),
        ("/api", "/jobs/x/runs"),
        ("/api", "/runs/1"),
        ("/api", "/status"),
        ("", "/jobs"),
        ("", "/jobs/x/runs"),
        ("", "/status"),
    ],
)
def test_a_runs_token_is_refused_for_jobs_runs_and_status(run_token, prefix, path):
    response = ApiClient(run_token, prefix=prefix).get(path)
    assert response.status_code == 403
    assert "state and queue" in response.json()["error"]


@pytest.mark.django_db
def test_a_runs_token_cannot_create_or_run_jobs(run_token):
    JobFactory(id="inbox")
    api = ApiClient(run_token)
    body = {"id": "x", "name": "x", "schedule": "* * * * *", "script": "echo"}
    assert api.post("/jobs", body).status_code == 403
    assert api.post("/jobs/inbox/run").status_code == 403
    assert ApiClient(run_token, prefix="").post("/jobs/inbox/run", {}).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/config", "/api/config"])
def test_a_runs_token_is_refused_for_config(run_token, path):
    assert ApiClient(run_token, prefix="").get(path).status_code == 403


@pytest.mark.django_db
def test_a_token_is_refused_once_its_run_has_ended():
    run = RunFactory(status="running")
    with issued_for(run) as env:
        api = ApiClient(env["JR_API_TOKEN"])
        assert api.get("/state").status_code == 200
        run.status = "ok"
        run.save(update_fields=["status"])
        assert api.get("/state").status_code == 401  # ended, even before the row goes
    assert api.get("/state").status_code == 401
    assert not RunToken.objects.exists()


@pytest.mark.django_db
def test_only_a_hash_of_the_token_is_stored():
    with issued_for(RunFactory(status="running")) as env:
        secret = env["JR_API_TOKEN"]
        [row] = RunToken.objects.values_list("secret_hash", flat=True)
        assert row == hash_secret(secret) and secret not in row


@pytest.mark.django_db(transaction=True)
def test_every_script_run_gets_the_url_and_a_token_revoked_when_it_ends(settings):
    settings.RUN_API_URL = "http://127.0.0.1:9/api"
    job = JobFactory(script='echo "$JR_API_URL ${JR_API_TOKEN:0:4}"; env | grep -c JR_API_TOKEN')
    run = execute_run(RunFactory(job=job).pk, worker="test:1")
    assert run.stdout.splitlines() == ["http://127.0.0.1:9/api jrr_", "1"], run.error
    assert not RunToken.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.parametrize(
    ("language", "file_name", "tool"),
    [("bash", "drain.sh", "curl"), ("js", "drain.js", "node")],
)
def test_the_readme_scripts_count_runs_and_drain_a_queue_with_the_runs_token(
    live_server, settings, script_file, language, file_name, tool
):
    if shutil.which(tool) is None:
        pytest.skip(f"needs {tool}")
    settings.RUN_API_URL = f"{live_server.url}/api"
    QueueFactory(id="tasks")
    for n in range(3):
        queues.enqueue("tasks", {"n": n})
    state.set_state("demo", "runs", 4)
    job = JobFactory(
        source_type="path", script=str(script_file(file_name, readme_script(language)))
    )
    run = execute_run(RunFactory(job=job).pk, worker="test:1")
    assert run.status == "ok", (run.error, run.stderr)
    assert len(run.stdout.splitlines()) == 3
    assert set(QueueItem.objects.values_list("status", flat=True)) == {"completed"}
    assert state.get_state("demo", "runs") == 5
    assert not RunToken.objects.exists()


@pytest.mark.django_db
def test_a_run_executed_again_after_its_worker_died_gets_a_new_token_and_the_old_one_stops():
    run = RunFactory(status="running")
    with issued_for(run) as dead_workers, issued_for(run) as resumed:
        assert ApiClient(dead_workers["JR_API_TOKEN"]).get("/state").status_code == 401
        assert ApiClient(resumed["JR_API_TOKEN"]).get("/state").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_a_runs_token_is_refused_for_the_schema_and_docs_with_a_403_not_a_500(run_token, path):
    response = ApiClient(run_token).get(path)
    assert response.status_code == 403
    assert "state and queue" in response.json()["error"]
