"""Hostile values at the entrances whose refusals name the value
(``jeeves_site.echo.echoed``) must get a one-line 4xx or a refusal, never a 500 or a
traceback, on both databases."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db

NEW_JOB = {"id": "inbox", "name": "Poll inbox", "schedule": "*/5 * * * *", "script": "echo hi",
           "source_type": "inline"}  # fmt: skip
LONG_ZONE = "a" * 300  # one path component over NAME_MAX (255)
ZONES = [LONG_ZONE, "Europe/" + "b" * 256]


@pytest.fixture
def client_500s_as_responses(api: ApiClient) -> ApiClient:
    """The test client re-raises a view's exception; a real server answers 500."""
    api.client.raise_request_exception = False
    return api


@pytest.mark.parametrize("zone", ZONES)
def test_a_job_created_with_an_overlong_time_zone_is_refused_with_400(
    client_500s_as_responses, zone
):
    response = client_500s_as_responses.post("/jobs", {**NEW_JOB, "timezone": zone})
    assert response.status_code == 400, response.content[:200]
    assert "timezone" in json.dumps(response.json())


@pytest.mark.parametrize("zone", ZONES)
def test_a_recurrence_schedule_with_an_overlong_time_zone_is_refused_with_400(
    client_500s_as_responses, zone
):
    schedule = json.dumps({"freq": "minutely", "interval": 11, "timezone": zone})
    response = client_500s_as_responses.post("/jobs", {**NEW_JOB, "schedule": schedule})
    assert response.status_code == 400, response.content[:200]


@pytest.mark.parametrize("zone", ZONES)
def test_add_job_with_an_overlong_time_zone_is_a_refusal_not_a_traceback(zone):
    with pytest.raises(CommandError) as refused:
        call_command("add_job", "--id=inbox", "--name=Inbox", "--schedule=* * * * *",
                     "--script=echo hi", "--source-type=inline", f"--timezone={zone}")  # fmt: skip
    assert "time zone" in str(refused.value)
    assert len(str(refused.value)) < 400


def test_an_unknown_queue_item_names_a_huge_queue_id_by_its_start_and_size(
    client_500s_as_responses,
):
    """done/fail on an item id out of range skip the queue-id check and echo the URL's
    queue name whole in the 404."""
    name = "q" * 100_000
    response = client_500s_as_responses.post(f"/queues/{name}/items/0/done", {"token": "t"})
    assert 400 <= response.status_code < 500
    assert len(response.content) < 1000, f"{len(response.content)} bytes"


@pytest.mark.parametrize(
    "path",
    [
        "/jobs/" + "j" * 100_000,
        "/queues/" + "q" * 100_000,
        "/queues/" + "q" * 100_000 + "/items/1/done",
    ],
)
def test_a_huge_id_in_the_path_is_named_by_its_start_and_size(client_500s_as_responses, path):
    client = client_500s_as_responses
    response = client.post(path, {"token": "t"}) if path.endswith("done") else client.get(path)
    assert 400 <= response.status_code < 500
    assert len(response.content) < 1000, f"{len(response.content)} bytes"
