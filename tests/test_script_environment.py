"""A job's env may not name a variable the runner sets or removes, at any entrance.

What a script's environment then holds is tested with real scripts in test_scripts.py.
"""

from __future__ import annotations

import json
import os
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from jeeves_site import runner_config
from runner import tokens
from runner.execution import environment, scripts
from runner.models import Job, Run
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db

# (name, what the refusal says): removed ones are the runner's own, set ones its to set.
REMOVED = "is the runner's own and is never passed to scripts"
SET = "is set by the runner and cannot be overridden"
RESERVED = [  # also used by tests/api/test_job_env.py
    ("DJANGO_SECRET_KEY", REMOVED),
    ("DJANGO_SECRET_KEY_FILE", REMOVED),
    ("OPENCLAW_GATEWAY_TOKEN", REMOVED),
    ("JEEVES_GATEWAY_TOKEN_PATH", REMOVED),
    ("JEEVES_SLACK_TOKEN_PATH", REMOVED),
    ("JEEVES_DATA_DIR", REMOVED),
    ("JEEVES_CONFIG", REMOVED),
    ("JEEVES_REDIS_URL", REMOVED),
    ("PYTHONPATH", SET),
    ("DATABASE_URL", SET),
    ("DJANGO_SETTINGS_MODULE", SET),
    ("JR_ANYTHING", SET),
]


def test_every_secret_bearing_setting_is_removed_from_scripts():
    token_settings = [
        name for name in runner_config.ENV_KEYS if "TOKEN" in name or "SECRET" in name
    ]
    assert token_settings  # the audit found the token paths
    for name in [*token_settings, tokens.GATEWAY_TOKEN_ENV, "DJANGO_SECRET_KEY"]:
        assert name in environment.REMOVED and environment.is_reserved(name)


def test_every_secret_the_runner_reads_is_removed_from_scripts_with_its_file():
    """Every ``env_secret("NAME")`` in the project's code (NAME or NAME_FILE): a secret
    added later is removed without anyone remembering to list it (a probe found
    JEEVES_METRICS_TOKEN passed to every script)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    read = set()
    for package in ("jeeves_site", "runner", "statestore", "queues"):
        for path in (root / package).rglob("*.py"):
            read.update(re.findall(r'env_secret\(\s*"([A-Z0-9_]+)"', path.read_text()))
    assert {"DJANGO_SECRET_KEY", "JEEVES_METRICS_TOKEN"} <= read
    for name in read:
        assert name in environment.REMOVED and f"{name}_FILE" in environment.REMOVED, name


def test_a_webhook_url_whose_path_is_its_secret_is_not_passed_to_scripts():
    assert "JEEVES_WEBHOOK_URL" in environment.REMOVED


def test_a_variable_the_runner_neither_sets_nor_removes_is_the_jobs():
    assert not environment.is_reserved("GREETING")
    assert not environment.is_reserved("JEEVES_TIME_ZONE")


def test_a_script_sees_the_runners_environment_as_it_is_when_the_run_is_prepared(monkeypatch):
    """The inherited part is made once and kept while os.environ is unchanged; a change
    (a variable set, changed or removed) is seen by the next run, and a secret set
    later is still removed."""
    run = RunFactory(job=JobFactory(env={"GREETING": "hello"}))
    monkeypatch.setenv("JR_TEST_EXTRA", "one")
    first = scripts.script_environment(run)
    assert (first["JR_TEST_EXTRA"], first["GREETING"]) == ("one", "hello")
    first["GREETING"] = "changed by the first run's caller"
    monkeypatch.setenv("JR_TEST_EXTRA", "two")
    monkeypatch.setenv("TEST_ONLY_ADDED", "yes")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "never-passed-on")
    second = scripts.script_environment(run)
    assert (second["JR_TEST_EXTRA"], second["TEST_ONLY_ADDED"]) == ("two", "yes")
    assert second["GREETING"] == "hello" and "DJANGO_SECRET_KEY" not in second
    monkeypatch.delenv("TEST_ONLY_ADDED")
    assert "TEST_ONLY_ADDED" not in scripts.script_environment(run)
    assert scripts.script_environment(run) == environment.script_environment(
        os.environ, run.job.env, scripts.runner_environment(run)
    )


@pytest.mark.parametrize("name,reason", RESERVED)
def test_add_job_refuses_a_reserved_name_and_writes_nothing(name, reason):
    argv = ["--id", "inbox", "--name", "Inbox", "--schedule", "*/5 * * * *"]
    argv += ["--source-type", "inline", "--script", "env", "--env", f"{name}=forged"]
    with pytest.raises(CommandError) as caught:
        call_command("add_job", *argv, stdout=StringIO(), stderr=StringIO())
    assert f"env: {name} {reason}" in str(caught.value)
    assert not Job.objects.exists()


@pytest.mark.parametrize("name,reason", RESERVED)
def test_sync_jobs_skips_a_job_with_a_reserved_name_and_says_why(tmp_path, name, reason):
    job = {"id": "poll", "name": "Poll", "schedule": "*/5 * * * *", "script": "env"}
    job.update(source_type="inline", env={name: "forged"})
    (tmp_path / "a.json").write_text(json.dumps([job]))
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("sync_jobs", str(tmp_path), stdout=StringIO(), stderr=err)
    assert f"env: {name} {reason}" in err.getvalue()
    assert not Job.objects.exists()


@pytest.mark.parametrize("name,reason", RESERVED)
def test_the_admin_form_refuses_a_reserved_name(admin_client, name, reason):
    form = {
        "id": "inbox", "name": "Poll inbox", "description": "", "enabled": "on",
        "type": "script", "source_type": "inline", "script": "env", "args": "[]",
        "env": json.dumps({name: "forged"}), "thinking": "low", "schedule": "*/5 * * * *",
        "timezone": "", "overlap_policy": "skip", "missed_fire_policy": "skip",
        "timeout_ms": "", "on_failure": "", "on_success": "", "output_channel": "",
    }  # fmt: skip
    response = admin_client.post(reverse("admin:runner_job_add"), form)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["env"] == [f"{name} {reason}"]
    assert not Job.objects.exists()


# -- a change of os.environ by another thread while a run is prepared -----------------

WAIT_S = 10


@pytest.fixture
def prepared_run() -> Run:
    made = RunFactory(job=JobFactory(env={"GREETING": "hello"}))
    return Run.objects.select_related("job").get(pk=made.pk)


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.setattr(scripts, "_inherited", ({}, {}))


def _prepare_while_another_thread_changes(monkeypatch, run: Run, change, undo) -> dict:
    """An executor thread prepares ``run`` while another thread applies ``change`` at the
    moment the executor reads os.environ; ``undo`` runs once the executor is done."""
    real = environment.inheritable
    reading, go = threading.Event(), threading.Event()

    def gated(inherited):
        reading.set()
        assert go.wait(WAIT_S)
        return real(inherited)

    monkeypatch.setattr(environment, "inheritable", gated)
    seen: dict = {}
    executor = threading.Thread(target=lambda: seen.update(scripts.script_environment(run)))
    executor.start()
    assert reading.wait(WAIT_S)
    change()  # another thread, e.g. a library setting a variable for a moment
    go.set()
    executor.join(WAIT_S)
    assert not executor.is_alive()
    monkeypatch.setattr(environment, "inheritable", real)
    undo()
    return seen


def test_a_variable_changed_and_changed_back_by_another_thread_is_seen_back(
    monkeypatch, prepared_run, fresh_cache
):
    monkeypatch.setenv("TEST_ONLY_PROBE", "original")
    during = _prepare_while_another_thread_changes(
        monkeypatch,
        prepared_run,
        change=lambda: os.environ.__setitem__("TEST_ONLY_PROBE", "temporary"),
        undo=lambda: os.environ.__setitem__("TEST_ONLY_PROBE", "original"),
    )
    assert during["TEST_ONLY_PROBE"] in ("original", "temporary")  # concurrent: either
    assert os.environ["TEST_ONLY_PROBE"] == "original"
    # The next prepared run, well after the change was undone:
    seen = scripts.script_environment(prepared_run)["TEST_ONLY_PROBE"]
    assert seen == "original"


def test_a_variable_set_for_a_moment_by_another_thread_is_not_passed_on_for_good(
    monkeypatch, prepared_run, fresh_cache
):
    """A library sets a credential for a moment (e.g. under mock.patch.dict or a
    context manager) and removes it: later scripts must not keep receiving it."""
    monkeypatch.delenv("TEST_ONLY_CREDENTIAL", raising=False)
    _prepare_while_another_thread_changes(
        monkeypatch,
        prepared_run,
        change=lambda: os.environ.__setitem__("TEST_ONLY_CREDENTIAL", "s3cr3t"),
        undo=lambda: os.environ.pop("TEST_ONLY_CREDENTIAL"),
    )
    assert "TEST_ONLY_CREDENTIAL" not in os.environ
    for _ in range(3):  # every later run
        passed_on = scripts.script_environment(prepared_run).get("TEST_ONLY_CREDENTIAL")
        assert passed_on is None
