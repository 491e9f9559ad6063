"""The API refuses a job env naming a variable the runner sets or removes."""

from __future__ import annotations

import pytest

from runner.models import Job
from tests.factories import JobFactory
from tests.test_script_environment import RESERVED

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name,reason", RESERVED)
def test_the_api_refuses_a_reserved_name_on_create_and_on_update(api, name, reason):
    job = {"id": "inbox", "name": "Poll", "schedule": "*/5 * * * *", "script": "env"}
    created = api.post("/jobs", {**job, "source_type": "inline", "env": {name: "forged"}})
    assert created.status_code == 400
    assert created.json()["fields"]["env"] == [f"{name} {reason}"]
    assert not Job.objects.exists()
    JobFactory(id="inbox", env={"A": "1"})
    updated = api.patch("/jobs/inbox", {"env": {name: "forged"}})
    assert updated.status_code == 400 and "env" in updated.json()["fields"]
    assert Job.objects.get(pk="inbox").env == {"A": "1"}
