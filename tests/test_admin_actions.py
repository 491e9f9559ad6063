"""The job list's actions: Run now (handed to the workers), Enable, Disable."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from runner.models import Job, Run
from tests.factories import JobFactory

# Run now hands the run to the workers, whose threads must see the committed rows.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def act(client, action: str, *job_ids: str):
    url = reverse("admin:runner_job_changelist")
    return client.post(url, {"action": action, "_selected_action": job_ids}, follow=True)


def test_run_now_answers_before_the_job_finishes_and_the_run_then_ends_ok(
    admin_client, tmp_path, workers
):
    flag = tmp_path / "go"
    JobFactory(id="waits", script=f"until [ -e {flag} ]; do sleep 0.01; done; echo done")

    response = act(admin_client, "run_now", "waits")

    assert response.status_code == 200
    assert Run.objects.get().status in ("pending", "running")
    flag.touch()
    assert workers.settle()
    run = Run.objects.get()
    assert (run.status, run.trigger, run.stdout) == ("ok", "manual", "done")


def test_run_now_links_each_queued_run(admin_client, workers):
    JobFactory(id="a", script="true")
    JobFactory(id="b", script="true")
    response = act(admin_client, "run_now", "a", "b")
    assert workers.settle()
    assert sorted(workers.dispatched) == sorted(Run.objects.values_list("pk", flat=True))
    for run in Run.objects.all():
        link = reverse("admin:runner_run_change", args=[run.pk])
        assert f'<a href="{link}">#{run.pk} ({run.job_id})</a>' in response.text


def test_disable_and_enable_change_only_the_selected_jobs(admin_client):
    JobFactory(id="a")
    JobFactory(id="b")
    act(admin_client, "disable", "a")
    assert dict(Job.objects.values_list("id", "enabled")) == {"a": False, "b": True}
    response = act(admin_client, "enable", "a")
    assert "Enabled 1 job(s)." in response.text
    assert Job.objects.get(pk="a").enabled


def test_a_user_who_may_only_view_jobs_cannot_run_them(client):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(user)
    JobFactory(id="a", script="true")
    act(client, "run_now", "a")
    assert not Run.objects.exists()
