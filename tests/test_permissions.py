"""Who may do what: the same Django permissions on every entrance (issue 10).

A matrix of roles by every API operation (through a bearer token and through the
admin session) and by every admin action. A refused request answers 403 with the
API's error shape (the admin: its own refusal) and writes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

import runner.dispatch
from queues.models import Queue, QueueItem
from runner.api.permissions import OPERATIONS, missing
from runner.api.site import api as ninja_api
from runner.api.tokens import create_token
from runner.models import Job, Run
from statestore.models import StateEntry, StateItem
from tests.api.conftest import ApiClient, make_user
from tests.factories import JobFactory, QueueFactory, QueueItemFactory, RunFactory

pytestmark = pytest.mark.django_db

APPS = ("runner", "queues", "statestore")
ROLES = ("none", "view", "change", "run", "superuser")
ALL = set(ROLES)
VIEW = {"view", "change", "run", "superuser"}
WRITE = {"change", "superuser"}
RUN = {"run", "superuser"}

# operation, method, path, body, roles that may do it. {run}/{item} are filled in.
API_MATRIX: list[tuple[str, str, str, Any, set[str]]] = [
    ("status", "get", "/status", None, ALL),
    ("jobs.list", "get", "/jobs", None, VIEW),
    ("jobs.detail", "get", "/jobs/inbox", None, VIEW),
    (
        "jobs.create",
        "post",
        "/jobs",
        {
            "id": "new",
            "name": "New",
            "schedule": "0 * * * *",
            "script": "true",
            "source_type": "inline",
        },
        WRITE,
    ),
    ("jobs.update", "patch", "/jobs/inbox", {"name": "Renamed"}, WRITE),
    ("jobs.enable", "post", "/jobs/paused/enable", None, WRITE),
    ("jobs.disable", "post", "/jobs/inbox/disable", None, WRITE),
    ("jobs.script", "put", "/jobs/inbox/script", {"script": "echo changed"}, WRITE),
    ("jobs.delete", "delete", "/jobs/inbox", None, WRITE),
    ("jobs.run", "post", "/jobs/inbox/run?wait=false", None, RUN),
    ("runs.list", "get", "/jobs/inbox/runs", None, VIEW),
    ("runs.detail", "get", "/runs/{run}", None, VIEW),
    ("incidents.list", "get", "/incidents", None, VIEW),
    ("queues.list", "get", "/queues", None, VIEW),
    ("queues.status", "get", "/queues/emails/status", None, VIEW),
    ("queues.peek", "get", "/queues/emails/peek", None, VIEW),
    ("queues.enqueue", "post", "/queues/emails/enqueue", {"payload": {"n": 99}}, WRITE),
    ("queues.enqueue", "post", "/queues/brand-new/enqueue", {"payload": {"n": 1}}, WRITE),
    ("queues.dequeue", "post", "/queues/emails/dequeue", {}, WRITE),
    ("queues.done", "post", "/queues/emails/items/{item}/done", {"token": "t"}, WRITE),
    ("queues.fail", "post", "/queues/emails/items/{item}/fail", {"token": "t"}, WRITE),
    ("state.namespaces", "get", "/state", None, VIEW),
    ("state.values", "get", "/state/ns", None, VIEW),
    ("state.key", "get", "/state/ns/k", None, VIEW),
    ("state.set", "put", "/state/ns/k", {"value": 2}, WRITE),
    ("state.delete", "delete", "/state/ns/k", None, WRITE),
    ("state.item", "get", "/state/ns/k/items/i", None, VIEW),
    ("state.set_item", "put", "/state/ns/k/items/i", {"value": 3}, WRITE),
    ("state.delete_item", "delete", "/state/ns/k/items/i", None, WRITE),
]


def _perms(*prefixes: str) -> list[str]:
    found = Permission.objects.filter(content_type__app_label__in=APPS)
    return [
        f"{perm.content_type.app_label}.{perm.codename}"
        for perm in found.select_related("content_type")
        if perm.codename.startswith(prefixes)
    ]


def role_user(role: str):
    """A staff user for ``role``: none, view, change (view/add/change/delete), run, superuser."""
    if role == "superuser":
        return make_user(role, superuser=True)
    granted = {
        "none": (),
        "view": ("view_",),
        "change": ("view_", "add_", "change_", "delete_"),
        "run": ("view_", "run_"),
    }[role]
    return make_user(role, *(_perms(*granted) if granted else ()))


@pytest.fixture
def started(monkeypatch) -> list[list[int]]:
    """Runs handed to the workers, recorded instead of queued: the thing under test is
    who may start one."""
    started: list[list[int]] = []
    monkeypatch.setattr(runner.dispatch, "dispatch", _record(started))
    return started


@pytest.fixture
def world(started) -> dict[str, int]:
    """A job with a run, a paused job, a queue with an item, a state key with an item."""
    run = RunFactory(job=JobFactory(id="inbox"))
    JobFactory(id="paused", enabled=False)
    item = QueueItemFactory(queue=QueueFactory(id="emails"))
    StateEntry.objects.create(namespace="ns", key="k", value=1)
    StateItem.objects.create(namespace="ns", key="k", item_key="i", value=1)
    return {"run": run.pk, "item": item.pk}


def _record(started: list):
    def dispatch(run_ids) -> int:
        started.append(list(run_ids))
        return len(started[-1])

    return dispatch


def snapshot() -> list:
    """Every row an operation or action could write, to show that a refusal wrote nothing."""
    models = (Job, Run, Queue, QueueItem, StateEntry, StateItem)
    return [sorted(map(repr, model.objects.values_list())) for model in models]


def _client(entrance: str, user, client):
    if entrance == "token":
        return ApiClient(create_token("matrix", user)[1])
    client.force_login(user)
    session = ApiClient()
    session.client = client
    return session


# Every role through a token; the admin session (the same check, another way to name
# the user) with a role that may read and one that may write.
ENTRANCES = [*(("token", role) for role in ROLES), ("session", "view"), ("session", "change")]


@pytest.mark.parametrize(("entrance", "role"), ENTRANCES)
@pytest.mark.parametrize(
    ("operation", "method", "path", "body", "allowed"),
    API_MATRIX,
    ids=[f"{row[1]} {row[2]}" for row in API_MATRIX],
)
def test_every_api_operation_answers_each_role_as_the_admin_would(
    world, client, entrance, role, operation, method, path, body, allowed
):
    api = _client(entrance, role_user(role), client)
    before = snapshot()
    response = api.request(method, path.format(**world), body)
    if role in allowed:
        assert response.status_code not in (401, 403), response.content
        assert response.status_code < 500
    else:
        assert response.status_code == 403
        error = response.json()["error"]
        assert error.startswith(f"permission denied: {operation} needs ")
        assert set(response.json()) == {"error"}
        assert snapshot() == before


def test_the_matrix_covers_every_api_route_and_every_declared_operation():
    paths = ninja_api.get_openapi_schema()["paths"]
    routes = {
        (method, path.removeprefix("/api")) for path, methods in paths.items() for method in methods
    }
    tried = {(method, _template(path)) for _, method, path, _, _ in API_MATRIX}
    # enable/disable answer PATCH as well as POST: the same view, the same check.
    tried |= {("patch", path) for method, path in tried if path.endswith(("enable", "disable"))}
    # /config checks api.view_config / api.change_config itself (runner/api/config.py).
    routes -= {("get", "/config"), ("post", "/config/apply")}
    assert routes == tried
    assert {row[0] for row in API_MATRIX} == set(OPERATIONS)


def _template(path: str) -> str:
    path = path.split("?")[0].replace("/jobs/inbox", "/jobs/{job_id}")
    path = path.replace("/jobs/paused", "/jobs/{job_id}").replace("{run}", "{run_id}")
    path = path.replace("/queues/emails", "/queues/{name}").replace(
        "/queues/brand-new", "/queues/{name}"
    )
    path = path.replace("{item}", "{item_id}").replace(
        "/state/ns/k/items/i", "/state/{namespace}/{key}/items/{item_key}"
    )
    return path.replace("/state/ns/k", "/state/{namespace}/{key}").replace(
        "/state/ns", "/state/{namespace}"
    )


def test_enqueueing_into_a_new_queue_also_needs_the_right_to_add_queues(world, client):
    user = make_user("producer", "queues.add_queueitem")
    api = _client("token", user, client)
    assert api.post("/queues/emails/enqueue", {"payload": {"n": 5}}).status_code == 201
    response = api.post("/queues/brand-new/enqueue", {"payload": {"n": 5}})
    assert response.status_code == 403 and "queues.add_queue" in response.json()["error"]
    assert not Queue.objects.filter(pk="brand-new").exists()


def test_changing_a_job_does_not_imply_running_it():
    editor = make_user("editor", *_perms("view_", "change_"))
    assert missing(editor, "jobs.run") == ["runner.run_job"]
    assert missing(editor, "jobs.update") == []


def test_a_token_acts_with_its_users_permissions_as_they_change(world):
    user = make_user("grows")
    api = ApiClient(create_token("grows", user)[1])
    assert api.get("/jobs").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    assert api.get("/jobs").status_code == 200


# -- admin actions -----------------------------------------------------------------------


def _admin_world() -> None:
    JobFactory(id="on")
    JobFactory(id="off", enabled=False)
    queue = QueueFactory(id="q")
    QueueItemFactory(queue=queue, status="failed", attempts=3)
    QueueItemFactory(queue=queue, status="completed")
    StateEntry.objects.create(namespace="ns", key="k", value=1)
    StateItem.objects.create(namespace="ns", key="k", item_key="i", value=1)


def _selected(model) -> list:
    return list(model.objects.values_list("pk", flat=True))


# model admin, action, what it selects, roles that may run it.
ADMIN_MATRIX: list[tuple[str, str, Any, set[str]]] = [
    ("runner_job", "run_now", lambda: ["on"], RUN),
    ("runner_job", "enable", lambda: ["off"], WRITE),
    ("runner_job", "disable", lambda: ["on"], WRITE),
    ("runner_job", "delete_selected", lambda: ["on"], WRITE),
    ("runner_run", "delete_selected", lambda: _selected(Run), WRITE),
    ("queues_queue", "retry_failed", lambda: ["q"], WRITE),
    ("queues_queue", "purge_completed", lambda: ["q"], WRITE),
    ("queues_queue", "delete_selected", lambda: ["q"], WRITE),
    ("queues_queueitem", "retry_failed", lambda: _selected(QueueItem), WRITE),
    ("queues_queueitem", "purge_completed", lambda: _selected(QueueItem), WRITE),
    ("queues_queueitem", "delete_selected", lambda: _selected(QueueItem), WRITE),
    ("statestore_stateentry", "delete_selected", lambda: _selected(StateEntry), WRITE),
    ("statestore_stateitem", "delete_selected", lambda: _selected(StateItem), WRITE),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("admin_name", "action", "selection", "allowed"),
    ADMIN_MATRIX,
    ids=[f"{row[0]}.{row[1]}" for row in ADMIN_MATRIX],
)
def test_every_admin_action_answers_each_role(
    started, client, role, admin_name, action, selection, allowed
):
    _admin_world()
    if admin_name == "runner_run":
        RunFactory(job=Job.objects.get(pk="on"))
    client.force_login(role_user(role))
    before = snapshot()
    data = {"action": action, "_selected_action": selection(), "post": "yes"}
    response = client.post(reverse(f"admin:{admin_name}_changelist"), data, follow=True)
    if role in allowed:
        assert response.status_code == 200
        assert snapshot() != before
    else:
        assert response.status_code in (200, 403)  # 403: the user may not even view the list
        assert snapshot() == before


def test_run_now_is_offered_only_to_users_who_may_run_jobs(client):
    JobFactory(id="on")
    for role, offered in (("change", False), ("run", True)):
        client.force_login(role_user(role))
        actions = client.get(reverse("admin:runner_job_changelist")).context["action_form"]
        assert ("run_now" in dict(actions.fields["action"].choices)) is offered
