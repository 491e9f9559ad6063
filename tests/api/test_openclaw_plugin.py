"""The original's OpenClaw plugin, as published, against this runner started as the README
starts it: every API tool answers what it answers against the original.

The plugin (`@karmaniverous/jeeves-runner-openclaw` 0.8.1) and its dependencies come
from the npm registry, installed by this test into a cache in the temporary directory
(``jeeves-test-cache-<uid>``; reruns reuse it). Its SDK, `@karmaniverous/jeeves`, is
not on the registry: `tests/openclaw/jeeves-standin/` stands in for just the parts the
plugin imports (see its header). `tests/openclaw/call_tools.mjs` loads the plugin with
a fake OpenClaw `api` that captures `registerTool`, and calls the tools.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from queues import operations as queues
from runner.api.models import ApiToken
from runner.api.tokens import create_token
from statestore import operations as state
from tests.api.conftest import make_user
from tests.daemons import wait_for
from tests.factories import QueueFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PLUGIN = "@karmaniverous/jeeves-runner-openclaw"
PLUGIN_VERSION = "0.8.1"
HERE = Path(__file__).resolve().parents[1] / "openclaw"
JOB = "plugin-job"
CONFIG_TOOLS = ("runner_config", "runner_config_apply")
# The three tools whose URL is fixed to http://127.0.0.1:<port> by the SDK.
FIXED_URL_TOOLS = ("runner_status", *CONFIG_TOOLS)

CALLS = [
    ("runner_status", {}),
    ("runner_jobs", {}),
    (
        "runner_create_job",
        {
            "id": JOB,
            "name": "Plugin job",
            "schedule": "0 3 * * *",
            "script": "echo created",
            "source_type": "inline",
            "timeout_seconds": 30,
        },
    ),
    ("runner_job_detail", {"jobId": JOB}),
    ("runner_update_job", {"jobId": JOB, "name": "Renamed", "env": {"GREETING": "hi"}}),
    (
        "runner_update_script",
        # The original ran inline scripts with node, and so do the jobs it creates here.
        {"jobId": JOB, "script": "console.log(process.env.GREETING)", "source_type": "inline"},
    ),
    ("runner_disable", {"jobId": JOB}),
    ("runner_enable", {"jobId": JOB}),
    ("runner_trigger", {"jobId": JOB}),
    ("runner_runs", {"jobId": JOB, "limit": 5}),
    ("runner_list_queues", {}),
    ("runner_queue_status", {"queueName": "tasks"}),
    ("runner_queue_peek", {"queueName": "tasks", "limit": 2}),
    ("runner_list_namespaces", {}),
    ("runner_query_state", {"namespace": "mail"}),
    ("runner_query_state", {"namespace": "mail", "path": "$.box.unread"}),
    ("runner_query_collection", {"namespace": "mail", "key": "seen"}),
    ("runner_job_detail", {"jobId": "nope"}),
    ("runner_delete_job", {"jobId": JOB}),
    ("runner_config", {}),
    ("runner_config", {"path": "$.maxConcurrency"}),
    ("runner_config_apply", {"config": {"runRetentionDays": 20}}),
]
SQLITE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture(scope="session")
def plugin_entry() -> Path:
    """The installed plugin's entry module; npm runs only when the cache lacks it."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm and node are not installed here: cannot install the real plugin")
    manifest = {
        "name": "openclaw-plugin-harness",
        "private": True,
        "type": "module",
        "dependencies": {
            PLUGIN: PLUGIN_VERSION,
            "@karmaniverous/jeeves": f"file:{HERE / 'jeeves-standin'}",
        },
        # The plugin and its core package ask for the SDK; they get the stand-in.
        "overrides": {"@karmaniverous/jeeves": "$@karmaniverous/jeeves"},
    }
    text = json.dumps(manifest, indent=2)
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    # Not under the data directory: the runner tightens every file there at start.
    cache = Path(tempfile.gettempdir()) / f"jeeves-test-cache-{os.getuid()}"
    folder = cache / f"openclaw-plugin-{PLUGIN_VERSION}-{key}"
    entry = folder / "node_modules" / PLUGIN / "dist" / "index.js"
    if not entry.exists():
        staging = folder.with_name(f"{folder.name}.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / "package.json").write_text(text, encoding="utf-8")
        npm = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert npm.returncode == 0, f"npm install failed:\n{npm.stdout}\n{npm.stderr}"
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return entry


def start_server(daemons, *gunicorn_args: str) -> str:
    """gunicorn as scripts/start runs it (on a free port) and the scheduler; the base URL."""
    env = {"JEEVES_API_LOOPBACK_ANONYMOUS": "1"}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    daemons.start("runscheduler", **env)
    log = (daemons.workdir / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [
            str(gunicorn),
            "-c",
            "jeeves_site/gunicorn.conf.py",
            "jeeves_site.wsgi",
            "--bind",
            "127.0.0.1:0",
            *gunicorn_args,
        ],
        env={**daemons.env, **env},
        cwd=settings.BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server.log_path = log.name
    daemons.processes.append(server)
    port = wait_for(
        "gunicorn to listen",
        lambda: re.findall(r"Listening at: http://127\.0\.0\.1:(\d+)", _read(log.name)),
        timeout=60,
    )[0]
    url = f"http://127.0.0.1:{port}"
    wait_for("the scheduler's first heartbeat", lambda: _healthy(url), timeout=60, every=0.2)
    return url


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/status", timeout=10).json().get("status") == "healthy"
    except httpx.HTTPError:
        return False


def _read(path: str) -> str:
    return Path(path).read_text(errors="replace")


def call_tools(entry: Path, api_url: str, server_url: str, workspace: Path) -> dict:
    """Run every call in CALLS through the plugin; ``{"registered", "results"}``."""
    port = server_url.rsplit(":", 1)[1]
    done = subprocess.run(
        ["node", str(HERE / "call_tools.mjs"), str(entry), api_url, str(workspace)],
        input=json.dumps([{"tool": tool, "params": params} for tool, params in CALLS]),
        env={**os.environ, "JEEVES_STANDIN_RUNNER_PORT": port},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def seed() -> None:
    QueueFactory(id="tasks")
    queues.enqueue("tasks", {"n": 1}, priority=0)
    queues.enqueue("tasks", {"n": 2}, priority=5)
    queues.enqueue("tasks", {"n": 3}, priority=0)
    state.set_state("mail", "cursor", "abc")
    state.set_state("mail", "box", {"unread": 4})
    state.set_item("mail", "seen", "m1", "first")


def check_answers(results: list[dict]) -> None:
    """Each tool's answer is the original's, for the calls in CALLS (config excepted)."""
    answers = iter(results)

    def answer(tool: str):
        result = next(answers)
        assert result["tool"] == tool
        assert not result["isError"], result
        return json.loads(result["text"])

    status = answer("runner_status")
    assert (status["name"], status["status"], type(status["uptime"])) == ("runner", "healthy", int)
    assert status["health"] == {
        "totalJobs": 0,
        "running": 0,
        "failedRegistrations": 0,
        "okLastHour": status["health"]["okLastHour"],
        "errorsLastHour": 0,
    }
    assert answer("runner_jobs") == {"jobs": []}
    assert answer("runner_create_job") == {"ok": True, "id": JOB}
    job = answer("runner_job_detail")["job"]
    assert {k: job[k] for k in ("id", "name", "enabled", "timeout_ms", "source_type", "env")} == {
        "id": JOB,
        "name": "Plugin job",
        "enabled": 1,
        "timeout_ms": 30000,
        "source_type": "inline",
        "env": None,
    }
    assert SQLITE_TIME.match(job["created_at"])
    for tool in ("runner_update_job", "runner_update_script", "runner_disable", "runner_enable"):
        assert answer(tool) == {"ok": True}
    result = answer("runner_trigger")["result"]
    assert result == {
        "status": "ok",
        "exitCode": 0,
        "durationMs": result["durationMs"],
        "tokens": None,
        "resultMeta": None,
        "stdoutTail": "hi",
        "stderrTail": "",
        "error": None,
    }
    [run] = answer("runner_runs")["runs"]
    assert (run["job_id"], run["status"], run["trigger"], run["stdout_tail"]) == (
        JOB,
        "ok",
        "manual",
        "hi",
    )
    assert answer("runner_list_queues") == {"queues": ["tasks"]}
    queue = answer("runner_queue_status")
    assert queue == {
        "depth": 3,
        "claimedCount": 0,
        "failedCount": 0,
        "oldestAge": queue["oldestAge"],
    }
    assert isinstance(queue["oldestAge"], int) and queue["oldestAge"] >= 0
    items = answer("runner_queue_peek")["items"]
    assert [(item["payload"], item["priority"]) for item in items] == [({"n": 2}, 5), ({"n": 1}, 0)]
    assert answer("runner_list_namespaces") == {"namespaces": ["mail"]}
    # As in the original, a key with items has a value row too (null until set).
    assert answer("runner_query_state") == {"box": {"unread": 4}, "cursor": "abc", "seen": None}
    assert answer("runner_query_state") == {"result": [4], "count": 1}
    collection = answer("runner_query_collection")
    assert collection == {
        "value": None,
        "items": [
            {"itemKey": "m1", "value": "first", "updatedAt": collection["items"][0]["updatedAt"]}
        ],
        "count": 1,
    }
    missing = next(answers)
    assert missing == {
        "tool": "runner_job_detail",
        "isError": True,
        "text": 'Error: HTTP 404: {"error":"Job not found"}',
    }
    assert answer("runner_delete_job") == {"ok": True}


def check_config_answers(results: list[dict]) -> None:
    """runner_config (whole, and a JSONPath query) and runner_config_apply, as the
    original: the effective config with camelCase keys, ``{result, count}``, and
    ``{applied: true, config}`` holding the change."""
    config, query, applied = (r for r in results if r["tool"] in CONFIG_TOOLS)
    if any(r["isError"] and "HTTP 404" in r["text"] for r in (config, query, applied)):
        pytest.xfail("GET /config and POST /config/apply arrive with the compat-config merge")
    for result in (config, query, applied):
        assert not result["isError"], result
    effective = json.loads(config["text"])
    assert {"port", "maxConcurrency", "runRetentionDays"} <= set(effective)
    assert json.loads(query["text"]) == {"result": [effective["maxConcurrency"]], "count": 1}
    answer = json.loads(applied["text"])
    assert answer["applied"] is True and answer["config"]["runRetentionDays"] == 20


def test_every_plugin_tool_answers_as_against_the_original(plugin_entry, daemons, tmp_path):
    seed()
    server = start_server(daemons)
    first = call_tools(plugin_entry, server, server, tmp_path)
    assert len(first["registered"]) == 20  # the 19 API tools and runner_service
    check_answers(first["results"])

    # Once more with a token in the plugin's apiUrl: its 16 tools that honour apiUrl
    # authenticate with it (its 3 fixed-URL tools still come through loopback).
    secret = create_token("openclaw", make_user("openclaw", superuser=True))[1]
    again = call_tools(plugin_entry, f"{server}/t/{secret}", server, tmp_path)
    check_answers(again["results"])
    assert ApiToken.objects.get(name="openclaw").last_used_at is not None
    access_log = _read(str(daemons.workdir / "gunicorn.log"))
    assert "/t/***/jobs" in access_log and secret not in daemons.logs()

    # A wrong token in apiUrl is refused, even from loopback with the opening on.
    wrong = call_tools(plugin_entry, f"{server}/t/jr_wrong", server, tmp_path)
    for result in wrong["results"]:
        if result["tool"] not in FIXED_URL_TOOLS:
            assert result["isError"] and "HTTP 401" in result["text"], result
    check_config_answers(first["results"])
    check_config_answers(again["results"])


def test_a_run_longer_than_gunicorns_timeout_is_waited_for_and_no_worker_is_lost(daemons):
    """The root run's long wait holds a gthread thread; gunicorn's timeout (here 2 s)
    watches the worker's main loop, which goes on, so neither request nor run is cut."""
    from tests.factories import JobFactory

    JobFactory(id="slow", script="sleep 4; echo slept", timeout_ms=60_000)
    server = start_server(daemons, "--timeout", "2")
    response = httpx.post(f"{server}/jobs/slow/run", json={}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["result"]["stdoutTail"] == "slept"
    log = _read(str(daemons.workdir / "gunicorn.log"))
    assert "WORKER TIMEOUT" not in log, log
