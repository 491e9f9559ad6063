"""HEAD of every GET route, in both dialects, answers as the GET without the body, as the
original runner (Fastify) does."""

from __future__ import annotations

import re

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from runner.api.original.site import root_api
from runner.api.site import api as ninja_api
from tests.factories import JobFactory, QueueFactory, RunFactory

pytestmark = pytest.mark.django_db

SAMPLES = {"job_id": "j", "name": "q", "namespace": "ns", "key": "k", "item_key": "i"}


def get_routes() -> list[str]:
    """Every GET route's path of both API objects, its parameters filled in."""
    routes = ["/config"]  # the root dialect's, a plain Django view
    for api, prefix in ((ninja_api, "/api"), (root_api, "")):
        for _, router in api._routers:
            for path, view in router.path_operations.items():
                if any("GET" in operation.methods for operation in view.operations):
                    routes.append(prefix + path)
    return routes


@pytest.fixture
def rows(jr):
    run = RunFactory(job=JobFactory(id="j"))
    QueueFactory(id="q")
    jr.set_state("ns", "k", 1)
    jr.set_item("ns", "k", "i", 2)
    return {"run_id": str(run.pk), **SAMPLES}


@pytest.mark.parametrize("route", get_routes())
def test_head_answers_as_get_without_the_body(token, rows, route):
    url = re.sub(r"\{(\w+)\}", lambda match: rows[match[1]], route)
    client = Client(headers={"Authorization": f"Bearer {token}"})
    with time_machine.travel(timezone.now(), tick=False):  # a pending run's age is in /status
        got, head = client.get(url), client.head(url)
    assert got.status_code == 200, got.content
    assert head.status_code == 200 and head.content == b""
    assert head["Content-Type"] == got["Content-Type"]
    assert head["Content-Length"] == str(len(got.content))


def test_head_of_a_route_without_get_is_405(api):
    response = Client().head("/api/queues/q/enqueue")
    assert response.status_code == 405 and response.content == b""
    assert response["Allow"] == "POST"


def test_head_needs_the_same_credentials_as_get():
    assert Client().head("/api/jobs").status_code == 401
