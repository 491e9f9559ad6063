"""Queues over HTTP: list, status, peek, enqueue, dequeue with a lease, done, fail."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from queues.models import Queue, QueueItem
from tests.factories import QueueFactory, QueueItemFactory

pytestmark = pytest.mark.django_db


def _claim(api, name: str = "emails", **body) -> dict:
    return api.post(f"/queues/{name}/dequeue", body or None).json()["items"][0]


def test_the_queue_list_names_every_queue(api):
    QueueFactory(id="b")
    QueueFactory(id="a")
    assert api.get("/queues").json() == {"queues": ["a", "b"]}


def test_queue_status_counts_items_and_ages_the_oldest_pending(api):
    queue = QueueFactory(id="emails")
    with time_machine.travel(timezone.now() - timedelta(seconds=30)):
        QueueItemFactory(queue=queue)
    QueueItemFactory(queue=queue)
    QueueItemFactory(queue=queue, status="failed")
    body = api.get("/queues/emails/status").json()
    assert (body["depth"], body["claimedCount"], body["failedCount"]) == (2, 0, 1)
    assert 30_000 <= body["oldestAge"] < 40_000


def test_the_status_of_an_empty_queue_has_no_oldest_age(api):
    QueueFactory(id="emails")
    assert api.get("/queues/emails/status").json()["oldestAge"] is None


@pytest.mark.parametrize("path", ["status", "peek"])
def test_an_unknown_queue_is_404(api, path):
    assert api.get(f"/queues/missing/{path}").status_code == 404


def test_peek_shows_the_next_items_in_claim_order_without_claiming(api):
    queue = QueueFactory(id="emails")
    low = QueueItemFactory(queue=queue, priority=0)
    high = QueueItemFactory(queue=queue, priority=5)
    items = api.get("/queues/emails/peek?limit=5").json()["items"]
    assert [item["id"] for item in items] == [high.pk, low.pk]
    assert set(items[0]) == {"id", "payload", "priority", "attempts", "createdAt"}
    assert not QueueItem.objects.filter(status="claimed").exists()


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_peek_refuses_a_limit_below_one(api, limit):
    QueueFactory(id="emails")
    response = api.get(f"/queues/emails/peek?limit={limit}")
    assert response.status_code == 400 and "limit" in response.json()["fields"]


def test_enqueue_answers_201_with_the_items_id_creating_the_queue(api):
    response = api.post("/queues/emails/enqueue", {"payload": {"to": "a@b"}, "priority": 2})
    assert response.status_code == 201
    item = QueueItem.objects.get(pk=response.json()["id"])
    assert (item.queue_id, item.payload, item.priority) == ("emails", {"to": "a@b"}, 2)


def test_enqueue_of_a_duplicate_answers_200_with_no_id(api):
    QueueFactory(id="emails", dedup_config={"path": "$.id", "scope": "pending"})
    api.post("/queues/emails/enqueue", {"payload": {"id": 1}})
    response = api.post("/queues/emails/enqueue", {"payload": {"id": 1}})
    assert response.status_code == 200
    assert response.json() == {"id": None, "duplicate": True}
    assert QueueItem.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "payload"),
        ({"payload": None}, "payload"),
        ({"payload": 1, "priority": "high"}, "priority"),
        ({"payload": 1, "max_attempts": 0}, "max_attempts"),
        ({"payload": 1, "colour": "red"}, "colour"),
    ],
)
def test_enqueue_refuses_a_bad_field_by_name(api, body, field):
    response = api.post("/queues/emails/enqueue", body)
    assert response.status_code == 400 and field in response.json()["fields"]
    assert not QueueItem.objects.exists()


def test_enqueue_refuses_a_bad_queue_name(api):
    response = api.post("/queues/-bad/enqueue", {"payload": 1})
    assert response.status_code == 400 and "queue" in response.json()["fields"]


def test_dequeue_claims_items_with_a_lease_and_a_token(api):
    queue = QueueFactory(id="emails")
    QueueItemFactory(queue=queue, payload={"n": 1})
    item = _claim(api, count=5, lease="2m")
    assert (item["payload"], item["attempts"]) == ({"n": 1}, 1)
    assert item["token"] and item["leaseExpiresAt"]
    stored = QueueItem.objects.get(pk=item["id"])
    assert stored.status == "claimed"
    assert timedelta(seconds=110) < stored.lease_expires_at - timezone.now() <= timedelta(minutes=2)


def test_dequeue_without_a_body_claims_one_item(api):
    queue = QueueFactory(id="emails")
    QueueItemFactory.create_batch(2, queue=queue)
    assert len(api.post("/queues/emails/dequeue").json()["items"]) == 1


def test_dequeue_of_an_empty_queue_claims_nothing(api):
    QueueFactory(id="emails")
    assert api.post("/queues/emails/dequeue").json() == {"items": []}


def test_dequeue_from_an_unknown_queue_is_404(api):
    assert api.post("/queues/missing/dequeue").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [({"count": -1}, "count"), ({"count": 0}, "count"), ({"lease": -5}, "lease"),
     ({"lease": "soon"}, "lease"), ({"count": "2"}, "count")],
)  # fmt: skip
def test_dequeue_refuses_a_bad_count_or_lease(api, body, field):
    QueueFactory(id="emails")
    response = api.post("/queues/emails/dequeue", body)
    assert response.status_code == 400 and field in response.json()["fields"]


@pytest.mark.parametrize("lease", ["1" + "0" * 400, "-1" + "0" * 400, "1e400"])
def test_a_lease_number_too_large_is_refused_not_a_crash(api, lease):
    """A JSON number beyond a float's range (probe finding: a 500 before)."""
    QueueFactory(id="emails")
    body = f'{{"lease": {lease}}}'.encode()
    response = api.post("/queues/emails/dequeue", raw=body)
    assert response.status_code == 400 and "lease" in response.json()["fields"]


@pytest.mark.parametrize("lease", [0.0001, 0.0009, 1e-300])
def test_a_lease_shorter_than_a_millisecond_is_refused(api, lease):
    """It would run out as it was granted: the item claimed and free at once."""
    QueueItemFactory(queue=QueueFactory(id="emails"))
    response = api.post("/queues/emails/dequeue", {"lease": lease})
    assert response.status_code == 400
    assert "at least 0.001 seconds (1 ms)" in str(response.json()["fields"]["lease"])
    assert QueueItem.objects.get().status == "pending"
    assert api.post("/queues/emails/dequeue", {"lease": 0.001}).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/queues/emails/dequeue", {"lease": "9" * 100_000 + "x"}, "lease"),
        ("/queues/emails/dequeue", {"lease": "9" * 100_000 + "s"}, "lease"),
        ("/queues/emails/dequeue", {"lease": ["x" * 100_000]}, "lease"),
    ],
)
def test_a_refusal_names_a_huge_value_by_its_start_and_size(api, path, body, field):
    QueueFactory(id="emails")
    response = api.post(path, body)
    assert response.status_code == 400
    reason = str(response.json()["fields"][field])
    assert len(reason) < 300
    assert "999" in reason or "xxx" in reason


def test_a_lease_too_long_is_refused_as_too_long(api):
    QueueFactory(id="emails")
    response = api.post("/queues/emails/dequeue", {"lease": "99999999999d"})
    assert response.status_code == 400
    assert "longer than 1000 years" in str(response.json()["fields"]["lease"])


def test_done_completes_a_claimed_item(api):
    QueueItemFactory(queue=QueueFactory(id="emails"))
    item = _claim(api)
    response = api.post(f"/queues/emails/items/{item['id']}/done", {"token": item["token"]})
    assert response.json() == {"ok": True}
    assert QueueItem.objects.get(pk=item["id"]).status == "completed"


def test_fail_gives_an_item_back_while_attempts_remain_then_fails_it(api):
    QueueItemFactory(queue=QueueFactory(id="emails"), max_attempts=2)
    statuses = []
    for _ in range(2):
        item = _claim(api)
        body = {"token": item["token"], "error": "smtp down"}
        statuses.append(api.post(f"/queues/emails/items/{item['id']}/fail", body).json()["status"])
    assert statuses == ["pending", "failed"]
    assert QueueItem.objects.get().error == "smtp down"


def test_done_with_a_claim_that_no_longer_holds_the_item_is_409(api):
    QueueItemFactory(queue=QueueFactory(id="emails"))
    item = _claim(api, lease=1)
    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        again = _claim(api)  # the lease ran out; another consumer has it now
        response = api.post(f"/queues/emails/items/{item['id']}/done", {"token": item["token"]})
    assert response.status_code == 409
    assert "not held by this claim" in response.json()["error"]
    assert QueueItem.objects.get().claim_token == again["token"]


def test_fail_with_a_wrong_token_is_409(api):
    QueueItemFactory(queue=QueueFactory(id="emails"))
    item = _claim(api)
    response = api.post(f"/queues/emails/items/{item['id']}/fail", {"token": "not-it"})
    assert response.status_code == 409


def test_done_needs_the_claims_token(api):
    QueueItemFactory(queue=QueueFactory(id="emails"))
    item = _claim(api)
    response = api.post(f"/queues/emails/items/{item['id']}/done", {})
    assert response.status_code == 400 and "token" in response.json()["fields"]


@pytest.mark.parametrize("action", ["done", "fail"])
def test_an_unknown_item_is_404(api, action):
    QueueFactory(id="emails")
    response = api.post(f"/queues/emails/items/999999/{action}", {"token": "x"})
    assert response.status_code == 404


def test_an_item_of_another_queue_is_404(api):
    QueueFactory(id="emails")
    QueueItemFactory(queue=QueueFactory(id="other"))
    item = _claim(api, "other")
    response = api.post(f"/queues/emails/items/{item['id']}/done", {"token": item["token"]})
    assert response.status_code == 404
    assert Queue.objects.count() == 2
