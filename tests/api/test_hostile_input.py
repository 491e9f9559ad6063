"""No input reaches a 500 (issue 10): each known hostile input gets a 4xx JSON error that
names the field (API) or a one-line refusal (commands, client), and writes nothing;
the same answer on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from queues.definitions import upsert_queue_definition
from queues.models import Queue, QueueItem
from runner.api.handlers import server_error
from runner.checks import check_missing_scripts
from runner.execution.executor import execute_run
from runner.execution.output import parse_result_line
from runner.models import Job, RunOutcome
from statestore.models import StateEntry, StateItem
from statestore.values import MAX_JSON_BYTES, MAX_JSON_DEPTH
from tests.api.conftest import ApiClient
from tests.factories import JobFactory, QueueFactory, QueueItemFactory, RunFactory

pytestmark = pytest.mark.django_db

NEW_JOB = {"id": "inbox", "name": "Inbox", "schedule": "*/5 * * * *", "script": "true",
           "source_type": "inline"}  # fmt: skip


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_text(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def counts() -> tuple[int, ...]:
    models = (Job, Queue, QueueItem, StateEntry, StateItem)
    return tuple(model.objects.count() for model in models)


def refused(response, field: str, status: int = 400) -> str:
    """The reason given for ``field`` of a refused request."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]
    return " ".join(body["fields"][field]) if "fields" in body else body["error"]


# -- the API ------------------------------------------------------------------------------


JOB_TEXT = json.dumps(NEW_JOB)[:-1]


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/jobs", JOB_TEXT + ', "env": ' + nested_text(1000) + "}", "env"),
        ("/jobs", JOB_TEXT + ', "description": ' + nested_text(200) + "}", "description"),
        ("/state/ns/k", '{"value": ' + nested_text(1000) + "}", "value"),
        ("/state/ns/k", '{"value": ' + nested_text(MAX_JSON_DEPTH + 1) + "}", "value"),
        ("/queues/q/enqueue", '{"payload": ' + nested_text(960) + "}", "payload"),
        ("/queues/q/enqueue", '{"payload": ' + nested_text(MAX_JSON_DEPTH + 1) + "}", "payload"),
    ],
    ids=["job-1000", "job-200", "state-1000", "state-65", "queue-960", "queue-65"],
)
def test_json_nested_too_deep_is_refused_naming_the_field(api, path, raw, field):
    method = api.put if path.startswith("/state") else api.post
    response = method(path, raw=raw.encode())
    assert response.status_code == 400
    # Past Python's own recursion limit the body cannot be parsed to find the field.
    [(named, [reason])] = response.json()["fields"].items()
    assert named in (field, "body") and "nested more than 64 levels" in reason
    assert counts() == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 2000], ids=["65", "2000"])
def test_a_schedule_nested_too_deep_is_refused_at_every_entrance(api, admin_client, depth):
    """A recurrence schedule is JSON text: nested past the limit, or past what Python's
    parser can read, it is refused in one line by the API, ``add_job`` and the admin
    (newcomer probe: a 500 and a traceback)."""
    schedule = '{"a": ' * depth + "1" + "}" * depth
    response = api.post("/jobs", {**NEW_JOB, "schedule": schedule})
    assert "nested more than 64 levels" in refused(response, "schedule")
    with pytest.raises(CommandError, match=r"schedule: .*nested more than 64 levels"):
        call_command("add_job", *_argv({**NEW_JOB, "schedule": schedule}), stdout=StringIO())
    page = admin_client.post(
        "/admin/runner/job/add/", {**NEW_JOB, "schedule": schedule, "type": "script"}
    )
    assert page.status_code == 200 and "nested more than 64 levels" in page.content.decode()
    assert not Job.objects.exists()


def test_a_job_name_with_control_characters_is_refused_by_the_api_and_add_job(api):
    """A job's name is shown in lists and logs ("run 12 of <name>"): a terminal escape
    or a line break in it would forge what an operator reads (newcomer probe)."""
    name = "Inbox\x1b[2J"
    reason = refused(api.post("/jobs", {**NEW_JOB, "name": name}), "name")
    assert "control characters (found \\x1b)" in reason
    with pytest.raises(CommandError, match=r"name: must not contain control characters"):
        call_command("add_job", *_argv({**NEW_JOB, "name": "a\nb"}), stdout=StringIO())
    assert not Job.objects.exists()


TOO_LARGE = [
    '{"freq": "minutely", "interval": 100000000000000000000}',
    '{"freq": "minutely", "interval": 1' + "0" * 400 + "}",
    '{"freq": "daily", "interval": 1000000000}',
    '{"rules": [{"effect": "event", "options": {"freq": "daily"}}, {"effect": "blackout",'
    ' "duration": {"years": 1000000000}, "options": {"freq": "daily"}}]}',
]


@pytest.mark.parametrize(
    "schedule", TOO_LARGE, ids=["interval-1e20", "interval-400", "days", "dur"]
)
def test_a_schedule_with_numbers_too_large_is_refused_at_every_entrance(
    api, admin_client, tmp_path, schedule
):
    """A recurrence whose interval or duration overflows date arithmetic is refused in
    one line by the API, ``add_job``, ``sync_jobs`` (which goes on with the other jobs)
    and the admin's form and preview (newcomer probe: an OverflowError, a 500)."""
    reason = "holds a number too large to compute its fires with"
    assert reason in refused(api.post("/jobs", {**NEW_JOB, "schedule": schedule}), "schedule")
    with pytest.raises(CommandError, match=f"schedule: {reason}"):
        call_command("add_job", *_argv({**NEW_JOB, "schedule": schedule}), stdout=StringIO())
    page = admin_client.post(
        "/admin/runner/job/add/", {**NEW_JOB, "schedule": schedule, "type": "script"}
    )
    assert page.status_code == 200 and reason in page.content.decode()
    preview = admin_client.get(reverse("admin:runner_job_preview"), {"schedule": schedule})
    assert preview.status_code == 400 and reason in preview.content.decode()
    jobs = [{**NEW_JOB, "schedule": json.loads(schedule)}, {**NEW_JOB, "id": "good"}]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    out = StringIO()
    with pytest.raises(CommandError, match="1 skipped"):
        call_command("sync_jobs", str(tmp_path), stdout=out, stderr=out)
    assert reason in out.getvalue()
    assert list(Job.objects.values_list("id", flat=True)) == ["good"]


HUGE = "9" * 5000  # past Python's int() limit of 4,300 digits


def test_a_schedule_holding_an_integer_of_5000_digits_is_refused_at_every_entrance(
    api, token, tmp_path
):
    """As JSON text or as an object (newcomer probe: a 500 from both dialects, a
    traceback from add_job, and sync_jobs aborted on the object form)."""
    text = '{"freq": "minutely", "interval": ' + HUGE + "}"
    reason = "holds an integer of 5000 digits (at most 4300)"
    assert reason in refused(api.post("/jobs", {**NEW_JOB, "schedule": text}), "schedule")
    body = json.dumps({**NEW_JOB, "schedule": "@"}).replace('"@"', json.dumps(text))
    response = ApiClient(token, prefix="").post("/jobs", raw=body.encode())
    assert response.status_code == 400 and reason in response.json()["error"]
    with pytest.raises(CommandError, match=re.escape(f"schedule: {reason}")):
        call_command("add_job", *_argv({**NEW_JOB, "schedule": text}), stdout=StringIO())
    for form in (json.dumps(text), text):  # in the job file: JSON text, then an object
        good = json.dumps({**NEW_JOB, "id": "good"})
        (tmp_path / "jobs.json").write_text(
            "[" + json.dumps({**NEW_JOB, "schedule": "@"}).replace('"@"', form) + "," + good + "]"
        )
        out = StringIO()
        with pytest.raises(CommandError, match="1 skipped"):
            call_command("sync_jobs", str(tmp_path), stdout=out, stderr=out)
        assert reason in out.getvalue() and len(out.getvalue()) < 2000
        assert list(Job.objects.values_list("id", flat=True)) == ["good"]
        Job.objects.all().delete()


def test_a_payload_at_the_depth_limit_is_accepted_and_reads_back(api):
    payload = nested(MAX_JSON_DEPTH - 1)
    assert api.post("/queues/q/enqueue", {"payload": payload}).status_code == 201
    assert api.get("/queues/q/peek").json()["items"][0]["payload"] == payload
    assert api.post("/queues/q/dequeue").json()["items"][0]["payload"] == payload


def test_a_deep_payload_refused_at_enqueue_leaves_peek_and_dequeue_working(api):
    api.post("/queues/q/enqueue", raw=('{"payload": ' + nested_text(960) + "}").encode())
    api.post("/queues/q/enqueue", {"payload": {"ok": 1}})
    assert api.get("/queues/q/peek").status_code == 200
    assert [item["payload"] for item in api.post("/queues/q/dequeue").json()["items"]] == [
        {"ok": 1}
    ]


@pytest.mark.parametrize(
    ("path", "method", "raw", "field"),
    [
        ("/jobs", "post", '{"id": "a", "name": "A", "timeout_ms": 1%s}', "timeout_ms"),
        ("/state/ns/k", "put", '{"value": 1%s}', "value"),
        ("/queues/q/enqueue", "post", '{"payload": {"n": 1%s}}', "payload"),
        ("/queues/q/enqueue", "post", '{"payload": 1, "priority": 1%s}', "priority"),
    ],
)
def test_an_integer_with_5000_digits_is_refused_naming_the_field(api, path, method, raw, field):
    response = getattr(api, method)(path, raw=(raw % ("0" * 4999)).encode())
    assert "integer" in refused(response, field) or "whole number" in refused(response, field)
    assert counts() == (0, 0, 0, 0, 0)


def test_a_timeout_of_1e308_seconds_is_refused_naming_the_field(api):
    response = api.post("/jobs", {**NEW_JOB, "timeout_seconds": 1e308})
    assert "at most" in refused(response, "timeout_seconds")
    assert not Job.objects.exists()


def test_a_timeout_beyond_a_year_is_refused_on_every_entrance(api):
    assert refused(api.post("/jobs", {**NEW_JOB, "timeout_ms": 2**62}), "timeout_ms")
    with pytest.raises(CommandError, match="timeout_ms"):
        call_command("add_job", *_argv(NEW_JOB), "--timeout", str(2**62), stdout=StringIO())
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("path", "method", "raw", "field"),
    [
        ("/jobs", "post", json.dumps(NEW_JOB)[:-1] + ', "name": "a\\ud800b"}', "name"),
        ("/jobs", "post", json.dumps(NEW_JOB)[:-1] + ', "env": {"A": "\\udfff"}}', "env"),
        ("/state/ns/k", "put", '{"value": {"\\ud83d": 1}}', "value"),
        ("/queues/q/enqueue", "post", '{"payload": ["\\ud83d"]}', "payload"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field(api, path, method, raw, field):
    assert "surrogate" in refused(getattr(api, method)(path, raw=raw.encode()), field)
    assert counts() == (0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    "path",
    ["/jobs/x/runs", "/state/ns", "/state/ns/k", "/queues/q/peek"],
)
def test_a_limit_of_10_to_the_20_is_refused(api, path):
    JobFactory(id="x")
    assert "limit" in refused(api.get(f"{path}?limit={10**20}"), "limit") + "limit"
    assert api.get(f"{path}?limit={10**20}").status_code == 400


@pytest.mark.parametrize(
    ("path", "lowest"),
    [("/jobs/x/runs", 1), ("/queues/q/peek", 1), ("/state/ns", 1), ("/state/ns/k", 0)],
)
def test_every_list_limit_is_at_most_1000(api, jr, path, lowest):
    JobFactory(id="x")
    QueueFactory(id="q")
    jr.set_state("ns", "k", 1)
    assert api.get(f"{path}?limit=1000").status_code == 200
    assert api.get(f"{path}?limit={lowest}").status_code == 200
    assert "1000" in refused(api.get(f"{path}?limit=1001"), "limit")
    assert refused(api.get(f"{path}?limit={2**63 - 1}"), "limit")
    assert refused(api.get(f"{path}?limit={lowest - 1}"), "limit")


@pytest.mark.parametrize("path", ["/runs/{n}", "/jobs/x/runs/{n}"])
def test_an_id_beyond_64_bits_is_not_found(api, path):
    JobFactory(id="x")
    assert api.get(path.format(n=10**20)).status_code == 404


def test_done_and_fail_with_an_item_id_beyond_64_bits_are_not_found(api):
    QueueFactory(id="q")
    for action in ("done", "fail"):
        assert api.post(f"/queues/q/items/{10**20}/{action}", {"token": "t"}).status_code == 404


# A NUL (a%00b) is refused in any URL before the route: tests/api/test_nul_in_url.py.
@pytest.mark.parametrize("job_id", ["abc%0A", "a%C3%28"])
def test_a_job_id_no_job_could_have_is_not_found_on_every_job_route(api, job_id):
    JobFactory(id="abc")
    assert api.get(f"/jobs/{job_id}").status_code == 404
    assert api.delete(f"/jobs/{job_id}").status_code == 404
    assert api.patch(f"/jobs/{job_id}", {"name": "x"}).status_code == 404
    assert api.post(f"/jobs/{job_id}/disable").status_code == 404
    assert Job.objects.get().enabled


@pytest.mark.parametrize("job_id", ["abc%0A", "a%C3%28"])
def test_a_job_id_no_job_could_have_is_not_found_in_the_root_dialect(token, job_id):
    JobFactory(id="abc")
    root = ApiClient(token, prefix="")
    for method, path, body in [
        ("get", "", None),
        ("delete", "", None),
        ("patch", "", {"name": "x"}),
        ("patch", "/enable", None),
        ("patch", "/disable", None),
        ("put", "/script", {"script": "echo"}),
        ("post", "/run", {}),
    ]:
        response = root.request(method, f"/jobs/{job_id}{path}", body)
        assert response.status_code == 404, (method, path, response.content)
        assert response.json()["error"].startswith("Job not found")
    assert root.get(f"/jobs/{job_id}/runs").json() == {"runs": []}
    assert Job.objects.get().enabled and not Job.objects.get().runs.exists()


def test_incidents_of_a_job_id_no_job_could_have_are_none(api):
    response = api.get("/incidents?job_id=a%0Ab")
    assert response.status_code == 200 and response.json() == {"incidents": []}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "a\x00b"),
        ("description", "\x00"),
        ("script", "echo \x00"),
        ("env", {"A": "x\x00"}),
        ("args", ["\x00"]),
        ("timezone", "Europe/Berlin\x00"),
        ("schedule", "* * * * *\x00"),
    ],
)
def test_a_nul_in_any_job_field_is_refused_naming_it(api, field, value):
    response = api.post("/jobs", {**NEW_JOB, field: value})
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("path", "method", "body", "field"),
    [
        ("/state/ns/k", "put", {"value": "a\x00"}, "value"),
        ("/state/ns/k/items/i", "put", {"value": {"\x00": 1}}, "value"),
        ("/queues/q/enqueue", "post", {"payload": {"a": "\x00"}}, "payload"),
    ],
)
def test_a_nul_in_a_state_or_queue_value_is_refused(api, path, method, body, field):
    assert "NUL" in refused(getattr(api, method)(path, body), field)
    assert counts() == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("action", ["done", "fail"])
def test_a_nul_in_a_claim_token_is_refused(api, action):
    item = QueueItemFactory(queue=QueueFactory(id="q"))
    api.post("/queues/q/dequeue")
    response = api.post(f"/queues/q/items/{item.pk}/{action}", {"token": "a\x00"})
    assert "NUL" in refused(response, "token")
    assert QueueItem.objects.get().status == "claimed"


def test_a_nul_in_a_state_name_is_refused(api):
    assert "NUL" in refused(api.put("/state/a%00b/k", {"value": 1}), "namespace")
    assert "NUL" in refused(api.put("/state/ns/k/items/a%00", {}), "item_key")


@pytest.mark.parametrize(
    ("path", "method"),
    [("/queues/a%0A/enqueue", "post"), ("/queues/a%0A/status", "get"),
     ("/queues/a%0A/peek", "get"), ("/queues/a%0A/dequeue", "post")],
)  # fmt: skip
def test_a_queue_name_no_queue_could_have_is_refused(api, path, method):
    body = {"payload": 1} if path.endswith("enqueue") else None
    response = api.get(path) if method == "get" else api.post(path, body)
    assert response.status_code == 400 and "queue" in response.json()["fields"]


def test_a_body_that_is_not_utf8_is_refused(api):
    assert "UTF-8" in refused(api.post("/jobs", raw=b'{"id": "\xff"}'), "body")


def test_a_body_over_the_limit_is_refused_with_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/queues/q/enqueue", {"payload": "x" * 2000})
    assert response.status_code == 413 and "larger than the limit" in response.json()["error"]


def test_a_multipart_body_is_refused_with_415(api):
    response = api.client.post(
        "/api/queues/q/enqueue", {"payload": "x"}, headers=api.headers
    )  # the test client's default: multipart/form-data
    assert response.status_code == 415 and "application/json" in response.json()["error"]
    assert not QueueItem.objects.exists()


def test_a_json_body_with_curls_default_form_type_is_still_read(api):
    response = api.client.post(
        "/api/state/ns/k",
        data='{"value": 1}',
        content_type="application/x-www-form-urlencoded",
        headers=api.headers,
    )
    assert response.status_code in (200, 405)  # the route is PUT; read, not refused as 415
    response = api.client.put(
        "/api/state/ns/k",
        data='{"value": 1}',
        content_type="application/x-www-form-urlencoded",
        headers=api.headers,
    )
    assert response.status_code == 200


def test_a_value_over_the_size_limit_is_refused(jr, settings):
    with pytest.raises(ValidationError, match="the limit is"):
        jr.set_state("ns", "k", "x" * (MAX_JSON_BYTES + 1))
    assert not StateEntry.objects.exists()


# -- ids with a trailing newline ------------------------------------------------------------


def test_a_job_id_with_a_trailing_newline_is_refused_everywhere(api):
    assert refused(api.post("/jobs", {**NEW_JOB, "id": "abc\n"}), "id")
    with pytest.raises(CommandError, match="id"):
        call_command("add_job", *_argv({**NEW_JOB, "id": "abc\n"}), stdout=StringIO())
    assert not Job.objects.exists()


def test_a_queue_id_with_a_trailing_newline_is_refused_everywhere(api, jr):
    assert "queue" in api.post("/queues/q%0A/enqueue", {"payload": 1}).json()["fields"]
    with pytest.raises(ValidationError):
        jr.enqueue("q\n", {"a": 1})
    with pytest.raises(ValidationError):
        upsert_queue_definition({"id": "q\n"})
    with pytest.raises(CommandError):
        call_command("add_queue", "--id", "q\n", stdout=StringIO())
    assert not Queue.objects.exists()


def test_an_env_name_or_a_duration_with_a_trailing_newline_is_refused(api, jr):
    assert refused(api.post("/jobs", {**NEW_JOB, "env": {"A\n": "x"}}), "env")
    assert refused(api.put("/state/ns/k", {"value": 1, "ttl": "90s\n"}), "ttl")
    with pytest.raises(ValidationError):
        jr.dequeue("q", lease="5m\n")


# -- the commands ---------------------------------------------------------------------------


def _argv(fields: dict) -> list[str]:
    argv = []
    for name in ("id", "name", "schedule", "script"):
        argv += [f"--{name}", fields[name]]
    return [*argv, "--source-type", fields["source_type"]]


def test_add_job_refuses_a_lone_surrogate_from_invalid_utf8_arguments_in_one_line():
    # Python decodes invalid UTF-8 in argv with surrogateescape: b"\xff" -> "\udcff".
    with pytest.raises(CommandError) as caught:
        call_command("add_job", *_argv({**NEW_JOB, "name": "a\udcff"}), stdout=StringIO())
    message = str(caught.value)
    assert message.startswith("--name:") and "\n" not in message
    message.encode("utf-8")  # printable
    assert not Job.objects.exists()


def _write(directory: Path, data: object, raw: str | None = None) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "jobs.json").write_text(raw if raw is not None else json.dumps(data))


def _sync(directory: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError):
        call_command("sync_jobs", str(directory), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_sync_jobs_skips_a_job_with_a_nul_and_applies_the_others(tmp_path):
    good = {**NEW_JOB, "id": "good"}
    _write(tmp_path / "jobs", [{**NEW_JOB, "id": "bad", "script": "echo \x00"}, good])
    out, err = _sync(tmp_path / "jobs")
    assert "job bad: skipped: script: must not contain NUL" in err
    assert list(Job.objects.values_list("id", flat=True)) == ["good"]
    assert "1 added" in out


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (nested_text(5000), "nested too deeply"),
        ("[" + "1" * 5000 + "]", "a job must be a JSON object"),
        ('[{"id": "x", "timeout_seconds": 1e308}]', "timeout_seconds"),
        (
            '[{"id": "x\\ud800", "name": "X", "schedule": "* * * * *", "script": "echo"}]',
            "surrogate",
        ),
        ("[NaN]", "not valid JSON"),
    ],
    ids=["deep", "huge-int", "1e308", "surrogate", "nan"],
)
def test_sync_jobs_reports_hostile_files_in_one_line_each(tmp_path, raw, reason):
    _write(tmp_path / "jobs", None, raw)
    _, err = _sync(tmp_path / "jobs")
    assert reason in err
    assert not Job.objects.exists()


def test_sync_jobs_refuses_a_queue_with_an_extended_jsonpath(tmp_path):
    queue = {"id": "mail", "dedup_config": {"path": "$.a[?(@.b > 1)]"}}
    _write(tmp_path / "jobs", {"jobs": [], "queues": [queue]})
    _, err = _sync(tmp_path / "jobs")
    assert "queue mail: skipped: dedup_config: path: '$.a[?(@.b > 1)]' is not a valid" in err
    assert not Queue.objects.exists()


# -- queue de-duplication paths ------------------------------------------------------------

REDOS = "$.a.`sub(/(a+)+$/, x)`"


@pytest.mark.parametrize(
    "path", ["$.id", "$.a.b", "$.a[0]", "$.a[*].b", "$['x']", '$["x y"]', "$.*", "$"]
)
def test_plain_jsonpaths_are_accepted(path):
    queue, _ = upsert_queue_definition({"id": "q", "dedup_config": {"path": path}})
    assert queue.dedup_config["path"] == path


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (REDOS, "unsupported syntax at character 4"),
        ("$..id", "unsupported syntax at character 2"),
        ("$.a[?(@.b)]", "unsupported syntax"),
        ("$.a | $.b", "unsupported syntax"),
        ("id", "must start with $"),
        ("$" + ".a" * 17, "the limit is 16"),
        ("$." + "a" * 300, "the limit is 200"),
    ],
)
def test_other_jsonpaths_are_refused_with_a_clear_message(path, reason):
    with pytest.raises(ValidationError) as caught:
        upsert_queue_definition({"id": "q", "dedup_config": {"path": path}})
    assert reason in caught.value.message_dict["dedup_config"][0]
    assert not Queue.objects.exists()


def test_the_admin_and_add_queue_refuse_an_extended_jsonpath(admin_client):
    form = {"id": "q", "name": "", "description": "", "max_attempts": 3, "retention": "{}"}
    response = admin_client.post(
        "/admin/queues/queue/add/", {**form, "dedup_config": json.dumps({"path": REDOS})}
    )
    assert response.status_code == 200 and "not a valid JSONPath" in response.text
    with pytest.raises(CommandError, match="not a valid JSONPath"):
        call_command("add_queue", "--id", "q", "--dedup-path", REDOS, stdout=StringIO())
    assert not Queue.objects.exists()


def test_a_stored_extended_path_is_refused_at_enqueue_without_being_evaluated(api, jr):
    QueueFactory(id="q", dedup_config={"path": REDOS})  # stored before the subset was enforced
    started = time.monotonic()
    response = api.post("/queues/q/enqueue", {"payload": {"a": "a" * 40 + "!"}})
    assert time.monotonic() - started < 2
    assert "change the queue" in refused(response, "dedup_config")
    with pytest.raises(ValidationError, match="dedup path"):
        jr.enqueue("q", {"a": "b"})
    assert not QueueItem.objects.exists()


# -- the client and script results -----------------------------------------------------------


def test_the_client_refuses_a_deep_payload_so_peek_and_dequeue_keep_working(jr):
    QueueItemFactory(queue=QueueFactory(id="q"), payload={"ok": 1})
    with pytest.raises(ValidationError, match="nested more than"):
        jr.enqueue("q", nested(960))
    assert [item.payload for item in jr.dequeue("q")] == [{"ok": 1}]


@pytest.mark.parametrize(
    "call",
    [
        lambda jr: jr.set_state("ns", "k", nested(1000)),
        lambda jr: jr.set_item("ns", "k", "i", {"a": nested(100)}),
        lambda jr: jr.set_state("a\ud800", "k", 1),
        lambda jr: jr.set_item("ns", "k", "i\x00", 1),
        lambda jr: jr.set_state("ns", "k", 10**5000),
        lambda jr: jr.enqueue("q", {"n": float("inf")}),
    ],
    ids=["deep-state", "deep-item", "surrogate-name", "nul-item-key", "huge-int", "infinity"],
)
def test_the_client_refuses_what_cannot_be_stored_alike(jr, call):
    with pytest.raises(ValidationError):
        call(jr)
    assert counts() == (0, 0, 0, 0, 0)


def test_a_consumers_error_text_with_a_surrogate_is_kept_replaced(jr):
    QueueItemFactory(queue=QueueFactory(id="q"))
    [item] = jr.dequeue("q")
    jr.fail(item.id, "bad \ud800 \x00")
    assert QueueItem.objects.get().error == "bad \ufffd \\0"


@pytest.mark.parametrize(
    "line",
    [
        "JR_RESULT:" + '{"a": ' + nested_text(MAX_JSON_DEPTH + 1) + "}",
        "JR_RESULT:" + '{"a": ' + nested_text(5000) + "}",
        "JR_RESULT:" + '{"tokens": 1' + "0" * 5000 + "}",
    ],
    ids=["deep", "deeper-than-python", "huge-int"],
)
def test_a_result_line_too_deep_or_with_a_huge_integer_is_ignored(line):
    assert parse_result_line(line) is None


def test_a_result_with_a_lone_surrogate_is_stored_with_it_replaced():
    meta = parse_result_line('JR_RESULT:{"note": "a\\ud800", "\\udfff": 1}')
    stored = RunOutcome(status="ok", result_meta=meta).storable().result_meta
    assert stored == {"note": "a\ufffd", "\ufffd": 1}


# -- the admin ------------------------------------------------------------------------------

DEEP = nested_text(5000)
HOSTILE_JSON = [
    (DEEP, "valid JSON"),
    ("[1" + "0" * 5000 + "]", "integer of 5001 digits"),
    ('{"a": "\\u0000"}', "NUL"),
    ('["\\ud800"]', "surrogate"),
    (nested_text(MAX_JSON_DEPTH + 1), "nested more than 64"),
    ("[NaN]", "valid JSON"),
]


@pytest.mark.parametrize(("text", "needle"), HOSTILE_JSON, ids=lambda v: str(v)[:12])
@pytest.mark.parametrize(
    ("page", "form", "field"),
    [
        ("runner_job", lambda: _job_form(), "env"),
        ("statestore_stateentry", lambda: {"namespace": "ns", "key": "k"}, "value"),
        (
            "statestore_stateitem",
            lambda: {"namespace": "ns", "key": "k", "item_key": "i"},
            "value",
        ),
        (
            "queues_queueitem",
            lambda: {
                "queue": QueueFactory(id="q").pk,
                "status": "pending",
                "priority": 0,
                "attempts": 0,
                "max_attempts": 3,
                "error": "",
            },
            "payload",
        ),
        (
            "queues_queue",
            lambda: {
                "id": "q",
                "name": "",
                "description": "",
                "max_attempts": 3,
                "retention": "{}",
            },
            "dedup_config",
        ),
    ],
    ids=["job", "state", "item", "queue-item", "queue"],
)
def test_the_admin_refuses_hostile_json_on_the_field(admin_client, page, form, field, text, needle):
    data = {**form(), field: text}
    before = counts()
    response = admin_client.post(reverse(f"admin:{page}_add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert needle in " ".join(errors[field])
    assert counts() == before


def test_the_admin_refuses_a_nul_in_a_jobs_env(admin_client):
    response = admin_client.post(
        reverse("admin:runner_job_add"), _job_form(env='{"A": "x\\u0000"}')
    )
    assert "NUL" in " ".join(response.context["adminform"].form.errors["env"])
    assert not Job.objects.exists()


def _job_form(**overrides: str) -> dict:
    return {
        "id": "inbox", "name": "Poll", "description": "", "enabled": "on", "type": "script",
        "source_type": "inline", "script": "echo hi", "args": "[]", "env": "{}",
        "thinking": "low", "schedule": "*/5 * * * *", "timezone": "", "overlap_policy": "skip",
        "missed_fire_policy": "skip", "timeout_ms": "", "on_failure": "", "on_success": "",
        "output_channel": "", **overrides,
    }  # fmt: skip


# -- a script path under an unknown user's home ------------------------------------------

UNKNOWN_HOME = "~no-such-user-here/poll.sh"


@pytest.mark.parametrize("job_type", ["script", "session"])
def test_a_script_under_an_unknown_users_home_is_saved_with_a_warning_not_a_500(api, job_type):
    script = UNKNOWN_HOME.replace(".sh", ".md") if job_type == "session" else UNKNOWN_HOME
    body = {**NEW_JOB, "type": job_type, "source_type": "path", "script": script}
    response = api.post("/jobs", body)
    assert response.status_code == 201, response.content
    assert "not found" in " ".join(response.json()["warnings"])


def test_add_job_and_sync_jobs_take_a_script_under_an_unknown_users_home(tmp_path):
    argv = [*_argv({**NEW_JOB, "script": UNKNOWN_HOME}), "--source-type", "path"]
    call_command("add_job", *argv, stdout=StringIO(), stderr=StringIO())
    assert Job.objects.get(id="inbox").script.endswith(UNKNOWN_HOME)
    _write(tmp_path / "jobs", [{**NEW_JOB, "id": "synced", "script": UNKNOWN_HOME,
                               "source_type": "path"}])  # fmt: skip
    call_command("sync_jobs", str(tmp_path / "jobs"), stdout=StringIO(), stderr=StringIO())
    assert Job.objects.get(id="synced").script.endswith(UNKNOWN_HOME)


def test_the_admin_takes_a_script_under_an_unknown_users_home(admin_client):
    form = _job_form(source_type="path", script=UNKNOWN_HOME)
    response = admin_client.post(reverse("admin:runner_job_add"), form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Job.objects.get().script == UNKNOWN_HOME


# -- JR_RESULT lines ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_result_line_with_tokens_beyond_64_bits_still_lets_the_run_finish():
    job = JobFactory(script='echo \'JR_RESULT:{"tokens": 100000000000000000000000, "n": 1}\'')
    run = execute_run(RunFactory(job=job).pk, worker="test:1")
    assert (run.status, run.tokens) == ("ok", None), run.error
    assert run.result_meta == {"tokens": 10**23, "n": 1}


# -- a script path no file system can hold -------------------------------------------------

LONG_NAME = "/tmp/" + "a" * 300 + ".sh"


def test_a_script_path_with_a_name_too_long_for_any_file_is_refused_not_a_500(api):
    response = api.post("/jobs", {**NEW_JOB, "source_type": "path", "script": LONG_NAME})
    assert "part of it is longer than 255 bytes" in refused(response, "script")
    long_path = "/tmp/" + "/".join(["a" * 200] * 25)
    response = api.post("/jobs", {**NEW_JOB, "source_type": "path", "script": long_path})
    assert "longer than 4095 bytes" in refused(response, "script")
    assert not Job.objects.exists()


def test_a_stored_job_with_such_a_path_does_not_break_manage_py_check():
    Job.objects.bulk_create([JobFactory.build(source_type="path", script=LONG_NAME)])
    [warning] = check_missing_scripts()
    assert warning.id == "runner.W020"


def test_a_session_prompt_sentence_ending_in_a_long_md_name_is_a_prompt(api):
    prompt = "summarise " + "x" * 300 + ".md"
    body = {**NEW_JOB, "type": "session", "source_type": "path", "script": prompt}
    assert api.post("/jobs", body).status_code == 201


# -- Django's own refusals on the API's paths ----------------------------------------------


@pytest.mark.parametrize("path", ["/api/jobs", "/jobs", "/status"])
def test_a_host_the_server_does_not_answer_to_is_a_json_400(api, path):
    response = api.get(path, HTTP_HOST="evil.example")
    assert "DJANGO_ALLOWED_HOSTS" in refused(response, "host")
    assert "evil.example" not in response.json()["error"]


@pytest.mark.parametrize("path", ["/api/jobz", "/api/jobs/inbox/nothing/here", "/jobs/a/b/c/d"])
def test_a_path_no_route_has_is_a_json_404(api, path):
    response = api.client.get(path, headers=api.headers)
    assert response.status_code == 404
    assert response.json()["error"].startswith("no such API path")


def test_the_admin_keeps_its_own_pages(admin_client):
    response = admin_client.get("/admin/nothing-here/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_crash_on_an_api_path_answers_in_the_one_shape(rf):
    response = server_error(rf.get("/api/jobs"))
    assert response.status_code == 500
    assert json.loads(response.content) == {
        "error": "internal error; the runner's log has the details"
    }


# -- env and args a program can be given -----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("env", {"A": "x" * 131_070}, "longer than a program can be given"),
        ("args", ["--x", "y" * 131_072], "item 1 is longer than a program can be given"),
        ("env", {f"V{i}": "x" * 100_000 for i in range(11)}, "larger than 1,048,576 bytes"),
        ("args", ["x" * 100_000] * 11, "larger than 1,048,576 bytes"),
    ],
    ids=["env-string", "arg-string", "env-total", "args-total"],
)
def test_env_or_args_no_program_could_be_started_with_are_refused(api, field, value, needle):
    assert needle in refused(api.post("/jobs", {**NEW_JOB, field: value}), field)
    assert not Job.objects.exists()


def test_env_and_args_up_to_the_limit_run(api):
    body = {**NEW_JOB, "env": {"A": "x" * 131_069}, "args": ["y" * 131_071]}
    assert api.post("/jobs", body).status_code == 201


def test_a_5000_digit_integer_is_named_as_such_not_as_an_object(api, tmp_path):
    """Messages that show the refused value (pydantic's, Django's) say what it is
    (newcomer probe: ``<statestore.values.HugeInteger object at 0x…>``)."""
    (tmp_path / "queues.json").write_text(
        '{"queues": [{"id": "q5", "max_attempts": ' + HUGE + "}]}"
    )
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("sync_jobs", str(tmp_path), stdout=out, stderr=out)
    assert "an integer of 5000 digits" in out.getvalue() and "object at 0x" not in out.getvalue()
    response = api.post("/config/apply", raw=('{"patch": {"port": ' + HUGE + "}}").encode())
    assert response.status_code == 400 and "object at 0x" not in response.content.decode()
