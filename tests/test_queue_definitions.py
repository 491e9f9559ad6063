"""Queue definitions: one validation, used by the upsert, the admin form and add_queue."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from queues.definitions import upsert_queue_definition
from queues.models import Queue
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db


def refusal(data: dict) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as refused:
        upsert_queue_definition(data)
    return refused.value.message_dict


def test_an_upsert_creates_a_queue_and_says_so():
    queue, created = upsert_queue_definition(
        {"id": "mail", "name": "Mail", "dedup_config": {"path": "$.id", "scope": "all"}}
    )
    assert (queue.pk, created) == ("mail", True)
    assert Queue.objects.get(pk="mail").dedup_config == {"path": "$.id", "scope": "all"}


def test_an_upsert_of_an_existing_queue_changes_only_the_fields_given():
    QueueFactory(id="mail", name="Mail", max_attempts=5, dedup_config={"path": "$.id"})
    queue, created = upsert_queue_definition({"id": "mail", "max_attempts": 2})
    assert not created
    assert (queue.name, queue.max_attempts, queue.dedup_config) == ("Mail", 2, {"path": "$.id"})


def test_an_invalid_jsonpath_is_refused_naming_the_path():
    errors = refusal({"id": "mail", "dedup_config": {"path": "$[", "scope": "pending"}})
    assert errors["dedup_config"][0].startswith("path: '$[' is not a valid JSONPath")
    assert not Queue.objects.exists()


def test_a_dedup_config_without_a_path_is_refused():
    assert refusal({"id": "mail", "dedup_config": {"scope": "all"}})["dedup_config"] == [
        "path: required, a JSONPath such as $.id"
    ]


def test_a_dedup_scope_other_than_pending_or_all_is_refused():
    errors = refusal({"id": "mail", "dedup_config": {"path": "$.id", "scope": "done"}})
    assert errors["dedup_config"][0].startswith("scope: must be 'pending'")


def test_an_unknown_dedup_setting_is_refused():
    errors = refusal({"id": "mail", "dedup_config": {"path": "$.id", "expr": "$.x"}})
    assert errors["dedup_config"] == ["expr: unknown setting"]


def test_a_dedup_config_that_is_not_an_object_is_refused():
    assert "dedup_config" in refusal({"id": "mail", "dedup_config": "$.id"})


@pytest.mark.parametrize(
    "retention,message",
    [
        ({"completed": "7 days"}, "completed: '7 days' is not a duration"),
        ({"failed": 30}, "failed: 30 is not a duration"),
        ({"done": "7d"}, "done: unknown status"),
        ("7d", "must be an object"),
    ],
)
def test_a_bad_retention_is_refused_naming_the_status(retention, message):
    errors = refusal({"id": "mail", "retention": retention})
    assert errors["retention"][0].startswith(message)


def test_a_null_retention_per_status_keeps_items_forever():
    queue, _ = upsert_queue_definition({"id": "mail", "retention": {"failed": None}})
    assert queue.retention_for("failed") is None


@pytest.mark.parametrize("max_attempts", [0, -1, "three", True, None])
def test_an_attempt_limit_below_one_or_not_a_number_is_refused(max_attempts):
    assert "max_attempts" in refusal({"id": "mail", "max_attempts": max_attempts})


@pytest.mark.parametrize("max_attempts", [2**31, 2**63 - 1, 10**400], ids=["2^31", "2^63", "1e400"])
def test_an_attempt_limit_beyond_32_bits_is_refused_alike_on_both_databases(max_attempts):
    """PostgreSQL's integer column bounds it; SQLite's would not, and the same value
    must get the same answer (newcomer probe: accepted on SQLite only)."""
    assert refusal({"id": "mail", "max_attempts": max_attempts})["max_attempts"] == [
        "Ensure this value is less than or equal to 2147483647."
    ]
    assert upsert_queue_definition({"id": "mail", "max_attempts": 2**31 - 1})[1]


@pytest.mark.parametrize("queue_id", ["", "has space", "-x", None, 5])
def test_a_bad_queue_id_is_refused(queue_id):
    assert "id" in refusal({"id": queue_id})
    assert not Queue.objects.exists()


def test_an_unknown_field_is_refused_by_name():
    assert "dedupe" in refusal({"id": "mail", "dedupe": {"path": "$.id"}})


def test_every_bad_field_is_reported_at_once_and_nothing_changes():
    QueueFactory(id="mail", max_attempts=4)
    errors = refusal(
        {"id": "mail", "max_attempts": 0, "dedup_config": {"path": "$["}, "retention": "x"}
    )
    assert set(errors) == {"max_attempts", "dedup_config", "retention"}
    assert Queue.objects.get(pk="mail").max_attempts == 4


# -- the admin form uses the same rules ----------------------------------------------------


def test_the_admin_refuses_an_invalid_jsonpath_on_the_field(admin_client):
    response = admin_client.post(
        reverse("admin:queues_queue_add"),
        {
            "id": "mail",
            "name": "",
            "description": "",
            "dedup_config": '{"path": "$[", "scope": "pending"}',
            "retention": "{}",
            "max_attempts": "3",
        },
    )
    assert response.status_code == 200
    assert "is not a valid JSONPath" in str(response.context["adminform"].form.errors)
    assert not Queue.objects.exists()


def test_the_admin_saves_a_valid_definition(admin_client):
    response = admin_client.post(
        reverse("admin:queues_queue_add"),
        {
            "id": "mail",
            "name": "Mail",
            "description": "",
            "dedup_config": '{"path": "$.threadId", "scope": "all"}',
            "retention": "",
            "max_attempts": "2",
        },
    )
    assert response.status_code == 302
    assert Queue.objects.get(pk="mail").retention == {}


# -- add_queue -----------------------------------------------------------------------------


def test_add_queue_defines_a_queue(capsys):
    call_command(
        "add_queue",
        "--id=mail",
        "--dedup-path=$.threadId",
        "--dedup-scope=all",
        "--retention-completed=24h",
        "--retention-failed=forever",
        "--max-attempts=4",
    )
    queue = Queue.objects.get(pk="mail")
    assert queue.dedup_config == {"path": "$.threadId", "scope": "all"}
    assert queue.retention == {"completed": "24h", "failed": None}
    assert queue.max_attempts == 4
    assert "Added queue mail" in capsys.readouterr().out


def test_add_queue_changes_only_what_it_is_given():
    QueueFactory(id="mail", dedup_config={"path": "$.id"}, retention={"completed": "1d"})
    call_command("add_queue", "--id=mail", "--dedup-scope=all", "--retention-failed=2d")
    queue = Queue.objects.get(pk="mail")
    assert queue.dedup_config == {"path": "$.id", "scope": "all"}
    assert queue.retention == {"completed": "1d", "failed": "2d"}


def test_add_queue_can_stop_deduplication():
    QueueFactory(id="mail", dedup_config={"path": "$.id"})
    call_command("add_queue", "--id=mail", "--no-dedup")
    assert Queue.objects.get(pk="mail").dedup_config is None


def test_add_queue_refuses_bad_input_on_one_line_and_writes_nothing():
    with pytest.raises(CommandError) as refused:
        call_command("add_queue", "--id=mail", "--dedup-path=$[", "--max-attempts=0")
    message = str(refused.value)
    assert "\n" not in message
    assert "dedup_config: path: '$[' is not a valid JSONPath" in message
    assert "max_attempts:" in message
    assert not Queue.objects.exists()


@pytest.mark.parametrize("value", ["\uff13", " 3", "3_0", "9" * 5000, "0" * 5000 + "3x"])
def test_add_queue_takes_max_attempts_in_ascii_digits_only(value):
    with pytest.raises(CommandError) as refused:
        call_command("add_queue", "--id", "qq", "--max-attempts", value, stdout=StringIO())
    assert "max_attempts" in str(refused.value) and len(str(refused.value)) < 300
    assert not Queue.objects.exists()


def test_add_queue_reads_max_attempts_padded_with_zeros():
    call_command("add_queue", "--id", "qq", "--max-attempts", "0" * 5000 + "3", stdout=StringIO())
    assert Queue.objects.get(pk="qq").max_attempts == 3
