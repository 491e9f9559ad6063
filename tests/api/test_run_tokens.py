"""Per-run tokens: JR_API_URL and JR_API_TOKEN reach state and queues while the run runs,
and nothing else; the README's bash and Node scripts use them against a live server.

A token is derived from the run's id and worker (``runner.api.run_tokens``), so these
tests also pin what the stored rows used to guarantee: refused once the run ends or
another worker takes it over, and no forged or mangled token ever gets more than 401.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
from django.utils.crypto import salted_hmac
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from queues import operations as queues
from queues.models import QueueItem
from runner.api.run_tokens import authenticate, environment_for, token_for
from runner.execution.executor import execute_run
from runner.models import RunStatus
from statestore import operations as state
from tests.api.conftest import ApiClient
from tests.factories import JobFactory, QueueFactory, RunFactory

README = Path(__file__).resolve().parents[2] / "README.md"
REFUSED = {"error": "the run's API token is not valid, or its run has ended"}


def readme_script(language: str) -> str:
    """The README's ``language`` code block that uses JR_API_TOKEN."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    [script] = [block for block in blocks if "JR_API_TOKEN" in block]
    return script


@pytest.fixture
def running_run(db):
    """A run that worker ``host:1`` started and is running."""
    return RunFactory(status="running", worker="host:1")


@pytest.fixture
def run_token(running_run):
    """The running run's token."""
    return environment_for(running_run)["JR_API_TOKEN"]


def refused(token: str, path: str = "/state", prefix: str = "/api") -> bool:
    """True when the API answers ``token`` with the run token's 401."""
    response = ApiClient(token, prefix=prefix).get(path)
    return response.status_code == 401 and response.json() == REFUSED


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
@pytest.mark.parametrize("status", sorted(set(RunStatus) - {RunStatus.RUNNING}))
def test_a_token_is_refused_once_its_run_is_no_longer_running(running_run, run_token, status):
    assert ApiClient(run_token).get("/state").status_code == 200
    running_run.status = status
    running_run.save(update_fields=["status"])
    assert refused(run_token)
    assert refused(run_token, "/queues/q/status")
    assert refused(run_token, "/state", prefix="")


@pytest.mark.django_db
def test_issuing_a_token_costs_no_query(running_run, django_assert_num_queries, served_api):
    with django_assert_num_queries(0):
        env = environment_for(running_run)
    assert env == {
        "JR_API_URL": served_api,
        "JR_API_TOKEN": token_for(running_run.pk, "host:1"),
    }
    assert env["JR_API_TOKEN"].startswith(f"jrr_{running_run.pk}.")


@pytest.mark.django_db
def test_a_run_taken_over_by_another_worker_refuses_the_old_holders_token(running_run, run_token):
    running_run.worker = "other-host:2"
    running_run.save(update_fields=["worker"])
    assert refused(run_token)
    assert ApiClient(environment_for(running_run)["JR_API_TOKEN"]).get("/state").status_code == 200


@pytest.mark.django_db
def test_a_new_secret_key_refuses_the_tokens_of_running_runs(run_token, settings):
    settings.SECRET_KEY = "another-test-only-key"
    assert refused(run_token)


def test_a_runs_token_is_djangos_salted_sha256_hmac_of_its_id_and_worker(settings):
    """The token's form is fixed: runs started before an upgrade keep working after it."""
    for secret in ("test-only-key-one", "test-only-key-two"):
        settings.SECRET_KEY = secret
        mac = salted_hmac("jeeves-runner.run-token", "42:host:7", algorithm="sha256").digest()
        expected = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        assert token_for(42, "host:7") == f"jrr_42.{expected}"


@pytest.mark.django_db
def test_a_runs_mac_does_not_open_another_running_run(running_run, run_token):
    other = RunFactory(status="running", worker="host:1")
    mac = run_token.partition(".")[2]
    assert refused(f"jrr_{other.pk}.{mac}")


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "mangle",
    [
        lambda t, i, m: _flip(t, len(t) - 10),  # one character of the MAC
        lambda t, i, m: _flip(t, len(t) - 1),
        lambda t, i, m: t[:-1],
        lambda t, i, m: t + "A",
        lambda t, i, m: f"jrr_{i}.",  # no MAC
        lambda t, i, m: f"jrr_{i}",
        lambda t, i, m: f"jrr_.{m}",
        lambda t, i, m: f"jrr_x{i}.{m}",  # not a number
        lambda t, i, m: f"jrr_0{i}.{m}",  # the same number written otherwise
        lambda t, i, m: f"jrr_+{i}.{m}",
        lambda t, i, m: f"jrr_-{i}.{m}",
        lambda t, i, m: f"jrr_{i}.{m}.",  # extra dots
        lambda t, i, m: f"jrr_{i}..{m}",
        lambda t, i, m: f"jrr_{i}.{m}.{m}",
        lambda t, i, m: f"jrr_{i}.0.{m}",
        lambda t, i, m: f"jrr_{'٣' * len(str(i))}.{m}",  # Arabic-Indic digits
        lambda t, i, m: f"jrr_{i}.{m[:-1]}é",
        lambda t, i, m: f"jrr_{i}.{m[:20]}\n{m[20:]}",
        lambda t, i, m: f"jrr_{i}.{m}\x00",
        lambda t, i, m: f"jrr_{2**63}.{m}",  # beyond any database's integer
        lambda t, i, m: f"jrr_{2**63 - 1}.{m}",
        lambda t, i, m: f"jrr_{10**40}.{m}",
        lambda t, i, m: f"jrr_{i}.{m.upper() if m != m.upper() else m.lower()}",
        lambda t, i, m: f"JRR_{i}.{m}",
    ],
)
def test_a_mangled_token_is_refused_with_401(running_run, run_token, mangle):
    mac = run_token.partition(".")[2]
    secret = mangle(run_token, running_run.pk, mac)
    assert secret != run_token
    response = ApiClient(secret).get("/state")
    assert response.status_code == 401
    assert authenticate(secret) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "secret", ["jrr_", "jrr_abc.def", "jrr_1.short", f"jrr_{2**63}.{'A' * 43}", "jrr_1.é" * 9]
)
def test_a_malformed_token_is_refused_without_a_query(secret, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert authenticate(secret) is None


@pytest.mark.django_db
def test_a_well_formed_token_costs_one_query(run_token, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert authenticate(run_token) is not None


# Characters the back-ends or a careless parser disagree on.
TRICKY = ["\x00", "\ud800", "\n", "\r", "\t", " ", ".", "-", "_", "=", "٣", "é", "😀", "+", "/"]
URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
hostile_text = st.text(st.characters(codec=None) | st.sampled_from(TRICKY), max_size=60)


@st.composite
def hostile_tokens(draw, valid: str, run_id: int) -> str:
    """Forged and mangled run tokens, many of them one step from ``valid``."""
    mac = valid.partition(".")[2]
    kind = draw(st.sampled_from(["text", "forged", "mutated", "numbered"]))
    if kind == "text":
        return "jrr_" + draw(hostile_text)
    if kind == "forged":
        return f"jrr_{draw(st.integers(-(10**30), 10**30))}.{draw(st.text(URLSAFE, max_size=50))}"
    if kind == "numbered":
        number = draw(st.integers(-5, 10**20) | st.sampled_from([run_id, 2**63 - 1, 2**63]))
        return f"jrr_{number}.{mac}"
    index = draw(st.integers(0, len(valid) - 1))
    return valid[:index] + draw(st.sampled_from([*TRICKY, "A", "0"])) + valid[index + 1 :]


@pytest.mark.django_db
@settings(
    max_examples=80,
    derandomize=True,  # the same examples on every run and database
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), prefix=st.sampled_from(["/api", ""]))
def test_a_hostile_token_only_ever_gets_401(running_run, run_token, data, prefix):
    secret = data.draw(hostile_tokens(run_token, running_run.pk))
    assume(secret != run_token)
    response = ApiClient(secret, prefix=prefix).get("/state")
    assert response.status_code == 401, response.content[:300]
    assert set(response.json()) == {"error"}


@pytest.mark.django_db(transaction=True)
def test_every_script_run_gets_the_url_and_a_token_refused_once_it_ends(served_api):
    job = JobFactory(script='echo "$JR_API_URL ${JR_API_TOKEN:0:4}"; env | grep -c JR_API_TOKEN')
    run = execute_run(RunFactory(job=job).pk, worker="test:1")
    assert run.stdout.splitlines() == [f"{served_api} jrr_", "1"], run.error
    assert refused(token_for(run.pk, "test:1"))


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


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_a_runs_token_is_refused_for_the_schema_and_docs_with_a_403_not_a_500(run_token, path):
    response = ApiClient(run_token).get(path)
    assert response.status_code == 403
    assert "state and queue" in response.json()["error"]
