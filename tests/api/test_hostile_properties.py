"""Generated hostile payloads against every write entrance: the API's job, state and queue
writes, the commands and the Python client (issue 10).

Whatever is thrown at them, the API answers below 500 with the JSON error shape, the
commands exit with one line, the client raises ValidationError (or a lookup error),
and nothing else escapes. The examples are derandomized, so each database sees the
same ones: every test records its answers in a ledger under JEEVES_DATA_DIR, and the
run on the other database (``scripts/test`` runs SQLite, then PostgreSQL) compares
its answers with it, so the same input must get the same answer on both.
"""

from __future__ import annotations

import json
import os
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queues.exceptions import ClaimLost
from runner.api.jobs import CREATE_FIELDS
from tests.factories import JobFactory, QueueFactory, QueueItemFactory

pytestmark = pytest.mark.django_db

PROPERTY = settings(
    max_examples=40,
    derandomize=True,  # the same examples on every run and database
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Characters the back-ends disagree on or a careless check lets through.
TRICKY = ["\x00", "\ud800", "\udfff", "\n", "\r", "\u2028", "\x1f", "\x7f", "é", "😀", "$", "'"]
text = st.text(st.characters(codec=None) | st.sampled_from(TRICKY), max_size=12)
numbers = (
    st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**20, 10**300])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -0.0, 5e-324])
)
scalars = st.none() | st.booleans() | numbers | text
# Small trees, and chains around the depth limit (64) up to where Python still encodes.
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3)
) | st.integers(min_value=60, max_value=300).map(lambda depth: _nested(depth))
names = text.filter(lambda value: value and "/" not in value) | st.sampled_from(["ok", "a.b"])

NEW_JOB = {"id": "inbox", "name": "Inbox", "schedule": "*/5 * * * *", "script": "true",
           "source_type": "inline"}  # fmt: skip


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


class Ledger:
    """The answers of one test, compared with the other database's run of the same test."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entries: list[list[Any]] = []

    def record(self, request: Any, answer: Any) -> None:
        self.entries.append([_printable(request), answer])

    def compare_and_save(self) -> None:
        directory = os.environ.get("JEEVES_DATA_DIR")
        if not directory:
            return
        folder = Path(directory) / "hostile-answers"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # the data directory is private
        mine = folder / f"{self.name}.{connection.vendor}.json"
        mine.write_text(json.dumps(self.entries))
        mine.chmod(0o600)
        for other in folder.glob(f"{self.name}.*.json"):
            if other == mine:
                continue
            theirs = json.loads(other.read_text())
            if [entry[0] for entry in theirs] != [entry[0] for entry in self.entries]:
                continue  # made by another version of the test
            differ = [
                (mine_entry[0], their_entry[1], mine_entry[1])
                for mine_entry, their_entry in zip(self.entries, theirs, strict=True)
                if mine_entry[1] != their_entry[1]
            ]
            assert not differ, f"answers differ from {other.name}: {differ[:3]}"


def _printable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr, allow_nan=True).replace("NaN", '"NaN"'))


@pytest.fixture
def ledger(request):
    book = Ledger(request.node.name)
    yield book
    book.compare_and_save()


def isolated(call):
    """Run ``call`` in a savepoint rolled back after, so examples do not see each other."""
    with transaction.atomic():
        try:
            return call()
        finally:
            transaction.set_rollback(True)


def answer_of(response) -> list:
    """What the API said, without what legitimately varies (ids, times)."""
    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    if response.status_code >= 400:
        assert set(body) <= {"error", "fields"} and isinstance(body["error"], str)
        return [response.status_code, body]
    return [response.status_code]


def _raw(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


@PROPERTY
@given(
    overrides=st.dictionaries(st.sampled_from([*CREATE_FIELDS, "junk"]), json_values, max_size=3)
)
def test_creating_a_job_from_hostile_fields_never_fails_inside(api, ledger, overrides):
    body = {**NEW_JOB, **overrides}
    response = isolated(lambda: api.post("/jobs", raw=_raw(body)))
    ledger.record(body, answer_of(response))


@PROPERTY
@given(overrides=st.dictionaries(st.sampled_from(CREATE_FIELDS), json_values, max_size=3))
def test_changing_a_job_with_hostile_fields_never_fails_inside(api, ledger, overrides):
    def change():
        JobFactory(id="inbox")
        return api.patch("/jobs/inbox", raw=_raw(overrides))

    response = isolated(change)
    ledger.record(overrides, answer_of(response))


@PROPERTY
@given(
    namespace=names,
    key=names,
    item=st.none() | names,
    value=json_values,
    ttl=st.none() | text | st.sampled_from(["90s", "0s", "9999999999d", "5m\n"]),
)
def test_state_writes_of_hostile_values_never_fail_inside(
    api, ledger, namespace, key, item, value, ttl
):
    path = f"/state/{quote(namespace, safe='')}/{quote(key, safe='')}"
    if item is not None:
        path += f"/items/{quote(item, safe='')}"
    body = {"value": value, **({} if ttl is None else {"ttl": ttl})}
    response = isolated(lambda: api.put(path, raw=_raw(body)))
    ledger.record([path, body], answer_of(response))


@PROPERTY
@given(
    name=names,
    payload=json_values,
    priority=st.none() | numbers,
    max_attempts=st.none() | numbers,
    dedup=st.none() | st.sampled_from(["$.id", "$.a[0]", "$['x']", "$.*"]),
)
def test_enqueueing_hostile_payloads_never_fails_inside(
    api, ledger, name, payload, priority, max_attempts, dedup
):
    body: dict[str, Any] = {"payload": payload}
    body.update({"priority": priority} if priority is not None else {})
    body.update({"max_attempts": max_attempts} if max_attempts is not None else {})

    def enqueue():
        QueueFactory(id="q", dedup_config={"path": dedup} if dedup else None)
        first = api.post(f"/queues/{quote(name, safe='')}/enqueue", raw=_raw(body))
        # Whatever was accepted must read back: peek and dequeue still work.
        peeked = api.get(f"/queues/{quote(name, safe='')}/peek")
        claimed = api.post(f"/queues/{quote(name, safe='')}/dequeue")
        return first, peeked, claimed

    responses = isolated(enqueue)
    ledger.record([name, body, dedup], [answer_of(response) for response in responses])


@PROPERTY
@given(count=st.none() | numbers | text, lease=st.none() | numbers | text)
def test_dequeueing_with_hostile_counts_and_leases_never_fails_inside(api, ledger, count, lease):
    body = {key: value for key, value in (("count", count), ("lease", lease)) if value is not None}

    def dequeue():
        QueueFactory(id="q")
        return api.post("/queues/q/dequeue", raw=_raw(body))

    response = isolated(dequeue)
    ledger.record(body, answer_of(response))


@PROPERTY
@given(
    action=st.sampled_from(["done", "fail"]),
    token=st.none() | text | text.map(lambda value: value + "\x00") | json_values,
    error=st.none() | text | json_values,
    item=st.sampled_from(["{item}", "0", "-1", str(2**63), str(10**20), "x"]),
)
def test_finishing_items_with_hostile_tokens_never_fails_inside(
    api, ledger, action, token, error, item
):
    body = {key: value for key, value in (("token", token), ("error", error)) if value is not None}
    if action == "done":
        body.pop("error", None)

    def finish():
        QueueItemFactory(queue=QueueFactory(id="q"))
        claimed = api.post("/queues/q/dequeue").json()["items"][0]
        path = f"/queues/q/items/{item.format(item=claimed['id'])}/{action}"
        return api.post(path, raw=_raw(body))

    ledger.record([action, body, item], answer_of(isolated(finish)))


@PROPERTY
@given(
    path=st.sampled_from(["/jobs/inbox/runs", "/state/ns", "/state/ns/k", "/queues/q/peek"]),
    limit=numbers.map(str) | text.map(lambda value: quote(value, safe="")),
    run_id=numbers.map(str),
)
def test_hostile_query_and_path_numbers_never_fail_inside(api, ledger, path, limit, run_id):
    def read():
        JobFactory(id="inbox")
        return [api.get(f"{path}?limit={limit}"), api.get(f"/runs/{quote(run_id, safe='')}")]

    responses = isolated(read)
    ledger.record([path, limit, run_id], [answer_of(response) for response in responses])


# -- the commands and the client ------------------------------------------------------------


def _command_answer(name: str, *argv: str) -> list:
    """``[None, report]`` when the command succeeded, else ``[its one-line refusal, report]``
    (the report: what it wrote to stderr, one line per skipped entry)."""
    err = StringIO()
    try:
        call_command(name, *argv, stdout=StringIO(), stderr=err)
    except CommandError as exc:
        message = str(exc)
        assert "\n" not in message and "Traceback" not in message
        message.encode("utf-8")  # printable on a UTF-8 terminal
        return [message, err.getvalue()]
    return [None, err.getvalue()]


@PROPERTY
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "--name": text,
            "--schedule": text,
            "--script": text,
            "--description": text,
            "--timezone": text,
            "--timeout": numbers.map(str) | text,
            "--env": text,
            "--arg": text,
            "--on-failure": text,
        },
    ),
    job_id=st.sampled_from(["inbox"]) | text,
)
def test_add_job_answers_hostile_arguments_in_one_line(ledger, fields, job_id):
    argv = ["--id", job_id, "--source-type", "inline"]
    defaults = {"--name": "Inbox", "--schedule": "*/5 * * * *", "--script": "true"}
    for flag, value in {**defaults, **fields}.items():
        argv += [flag, value]
    answer = isolated(lambda: _command_answer("add_job", *argv))
    ledger.record(argv, answer)


@PROPERTY
@given(
    jobs=st.lists(
        st.dictionaries(st.sampled_from([*CREATE_FIELDS, "domain"]), json_values, max_size=4).map(
            lambda overrides: {**NEW_JOB, **overrides}
        ),
        max_size=3,
    ),
    queues=st.lists(
        st.dictionaries(st.sampled_from(["id", "name", "dedup_config", "retention"]), json_values),
        max_size=2,
    ),
)
def test_sync_jobs_answers_hostile_files_in_one_line(tmp_path_factory, ledger, jobs, queues):
    directory = tmp_path_factory.mktemp("jobs")
    (directory / "jobs.json").write_text(
        json.dumps({"jobs": jobs, "queues": queues}, allow_nan=True)
    )
    answer = isolated(lambda: _command_answer("sync_jobs", str(directory)))
    ledger.record([jobs, queues], [part and part.replace(str(directory), "DIR") for part in answer])


@PROPERTY
@given(
    call=st.sampled_from(["set_state", "set_item", "enqueue", "get_state", "dequeue"]),
    name=names,
    value=json_values,
    extra=st.none() | numbers | text,
)
def test_the_client_refuses_hostile_input_with_validation_errors_only(
    jr, ledger, call, name, value, extra
):
    calls = {
        "set_state": lambda: jr.set_state(name, "k", value, extra),
        "set_item": lambda: jr.set_item("ns", name, "i", value, extra),
        "enqueue": lambda: jr.enqueue(name, value, *(() if extra is None else (extra,))),
        "get_state": lambda: jr.get_state(name, name),
        "dequeue": lambda: jr.dequeue(name, 1, extra),
    }

    def attempt() -> list:
        try:
            calls[call]()
        except ValidationError as exc:
            return ["refused", sorted(exc.message_dict) if hasattr(exc, "error_dict") else []]
        except (ObjectDoesNotExist, ClaimLost):
            return ["missing"]
        return ["ok"]

    ledger.record([call, name, value, extra], isolated(attempt))
