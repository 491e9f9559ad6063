"""The job page and run page as a console: the next-fires preview (its refusals
too), Run now, the duration chart, fields by job type, and a run page that follows
a running run. The browser tests (tests/browser/) drive the same pages for real."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from django.urls import reverse
from django.utils.html import escape

import runner.dispatch
from runner import schedule
from runner.admin_views import MAX_PREVIEW_SCHEDULE
from runner.models import Run
from tests.factories import JobFactory, RunFactory
from tests.test_permissions import role_user

pytestmark = pytest.mark.django_db

PREVIEW = reverse("admin:runner_job_preview")


def preview(client, schedule_text: str, zone: str = ""):
    return client.get(PREVIEW, {"schedule": schedule_text, "timezone": zone})


def test_the_preview_lists_the_next_five_fires_in_the_zone_by_the_schedulers_code(admin_client):
    body = preview(admin_client, "30 0 9 * * 1-5", "Europe/Berlin").json()
    assert body["zone"] == "Europe/Berlin"
    assert body["words"]
    assert [fire["local"][10:] for fire in body["fires"]] == [" 09:00:30 CET"] * 5
    fires = [datetime.fromisoformat(fire["at"]) for fire in body["fires"]]
    for before, after in itertools.pairwise(fires):
        assert schedule.next_fire_after("30 0 9 * * 1-5", "Europe/Berlin", before) == after
    assert all(fire["relative"].startswith("in ") for fire in body["fires"])


def test_the_preview_reads_a_recurrence_object_in_its_own_zone(admin_client):
    text = '{"freq": "daily", "byhour": 7, "byminute": 15, "timezone": "America/Chicago"}'
    body = preview(admin_client, text, "Europe/Berlin").json()
    assert body["zone"] == "America/Chicago"
    assert {fire["local"][11:19] for fire in body["fires"]} == {"07:15:00"}


@pytest.mark.parametrize(
    ("schedule_text", "zone", "field", "needle"),
    [
        ("", "", "schedule", "is empty"),
        ("   ", "", "schedule", "is empty"),
        ("* " * (MAX_PREVIEW_SCHEDULE // 2 + 1), "", "schedule", "longer than"),
        ("61 * * * *", "", "schedule", "61"),
        ("0 0 30 2 *", "", "schedule", "never"),
        ('{"freq": "daily",', "", "schedule", "not valid JSON"),
        ('{"freq": "fortnightly"}', "", "schedule", "freq"),
        ("*/5 * * * *", "Mars/Olympus", "timezone", "not a known IANA time zone"),
    ],
)
def test_the_preview_refuses_bad_input_naming_the_field(
    admin_client, schedule_text, zone, field, needle
):
    response = preview(admin_client, schedule_text, zone)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert needle in response.json()["error"]


def test_the_preview_needs_a_staff_login_and_the_view_job_permission(client):
    assert preview(client, "* * * * *").status_code == 302  # to the login page
    client.force_login(role_user("none"))
    assert preview(client, "* * * * *").status_code == 403
    client.force_login(role_user("view"))
    assert preview(client, "* * * * *").status_code == 200


def test_run_now_on_the_job_page_queues_a_run_and_opens_its_page(admin_client, monkeypatch):
    handed = []
    monkeypatch.setattr(runner.dispatch, "dispatch", handed.append)
    JobFactory(id="inbox")
    page = admin_client.get(reverse("admin:runner_job_change", args=["inbox"]))
    assert 'id="jr-run-now"' in page.text
    response = admin_client.post(reverse("admin:runner_job_run", args=["inbox"]))
    run = Run.objects.get()
    assert (run.job_id, run.trigger, run.status) == ("inbox", "manual", "pending")
    assert response["Location"] == reverse("admin:runner_run_change", args=[run.pk])
    assert handed == [[run.pk]]


def test_run_now_refuses_a_get_and_users_without_the_run_job_permission(client, monkeypatch):
    monkeypatch.setattr(runner.dispatch, "dispatch", lambda ids: None)
    JobFactory(id="inbox")
    url = reverse("admin:runner_job_run", args=["inbox"])
    runner_user = role_user("run")
    client.force_login(runner_user)
    assert client.get(url).status_code == 403
    for role in ("view", "change"):
        client.force_login(role_user(role))
        page = client.get(reverse("admin:runner_job_change", args=["inbox"]))
        assert 'id="jr-run-now"' not in page.text
        assert client.post(url).status_code == 403
    assert not Run.objects.exists()
    client.force_login(runner_user)
    assert client.post(reverse("admin:runner_job_run", args=["missing"])).status_code == 404


def test_the_job_page_shows_only_the_fields_its_type_uses(admin_client):
    JobFactory(id="script", type="script")
    JobFactory(id="session", type="session", script="Summarise the inbox")
    fields = {
        job: set(
            admin_client.get(reverse("admin:runner_job_change", args=[job]))
            .context["adminform"]
            .form.fields
        )
        for job in ("script", "session")
    }
    assert {"interpreter", "args", "env"} <= fields["script"]
    assert "thinking" not in fields["script"]
    assert "thinking" in fields["session"]
    assert not {"interpreter", "args", "env"} & fields["session"]


def test_the_job_page_charts_the_durations_of_its_last_runs(admin_client):
    job = JobFactory(id="inbox")
    runs = [
        RunFactory(job=job, status=status, duration_ms=ms)
        for status, ms in (("ok", 1000), ("error", 4000), ("ok", 2000))
    ]
    RunFactory(job=job, status="pending")  # not timed: no bar
    page = admin_client.get(reverse("admin:runner_job_change", args=["inbox"])).text
    start = page.index('<svg class="jr-chart"')
    chart = page[start : page.index("</svg>", start)]
    assert chart.count("<rect") == 3
    assert "longest 4.0 s" in chart
    for run in runs:
        assert reverse("admin:runner_run_change", args=[run.pk]) in chart
    assert 'fill="#c62828"' in chart  # the failed run's bar is red


def test_a_running_runs_page_follows_it_and_a_finished_ones_does_not(admin_client):
    run = RunFactory(status="running", stdout="feed 1 of 3\n")
    page = admin_client.get(reverse("admin:runner_run_change", args=[run.pk])).text
    live = reverse("admin:runner_run_live", args=[run.pk])
    assert f'data-url="{live}"' in page and "run_live.js" in page
    assert '<pre class="jr-output" id="jr-stdout">feed 1 of 3\n</pre>' in page
    assert '<pre class="jr-output" id="jr-stderr"></pre>' in page
    Run.objects.filter(pk=run.pk).update(status="ok")
    page = admin_client.get(reverse("admin:runner_run_change", args=[run.pk])).text
    assert "jr-live" not in page and "run_live.js" not in page


def test_the_live_record_gives_the_tails_so_far_and_says_when_the_run_ended(admin_client):
    run = RunFactory(status="running", stdout="feed 1 of 3\n", stderr="slow feed")
    url = reverse("admin:runner_run_live", args=[run.pk])
    body = admin_client.get(url).json()
    assert (body["status"], body["final"], body["stdout"], body["stderr"]) == (
        "running",
        False,
        "feed 1 of 3\n",
        "slow feed",
    )
    Run.objects.filter(pk=run.pk).update(status="error", stdout="all\n", duration_ms=3100)
    body = admin_client.get(url).json()
    assert (body["final"], body["stdout"], body["elapsed"]) == (True, "all\n", "3.1 s")
    assert admin_client.get(reverse("admin:runner_run_live", args=[999999])).status_code == 404


def test_the_live_record_needs_the_view_run_permission(client):
    run = RunFactory(status="running")
    url = reverse("admin:runner_run_live", args=[run.pk])
    assert client.get(url).status_code == 302
    client.force_login(role_user("none"))
    assert client.get(url).status_code == 403
    client.force_login(role_user("view"))
    assert client.get(url).status_code == 200


def test_the_queue_list_counts_the_same_sorted_by_a_count_or_not(admin_client):
    from tests.factories import QueueFactory, QueueItemFactory

    busy, idle = QueueFactory(id="busy"), QueueFactory(id="idle")  # "busy" first by id
    QueueItemFactory.create_batch(3, queue=busy)
    QueueItemFactory(queue=busy, status="failed")
    QueueItemFactory.create_batch(5, queue=idle)  # more pending, fewer failed
    url = reverse("admin:queues_queue_changelist")
    plain = admin_client.get(url).context["cl"].result_list
    # list_display: the checkbox, id, name, pending: "-3" sorts by pending, most first.
    ordered = admin_client.get(url + "?o=-3").context["cl"].result_list
    assert [queue.pk for queue in ordered] == ["idle", "busy"]
    for queues in (plain, ordered):
        counts = {q.pk: (q.pending_n, q.claimed_n, q.failed_n) for q in queues}
        assert counts == {"busy": (3, 0, 1), "idle": (5, 0, 0)}
        assert all(q.oldest_pending_at is not None for q in queues)


def test_the_job_list_cuts_a_long_recurrence_short_and_keeps_it_whole_in_the_tooltip(
    admin_client,
):
    text = '{"freq":"monthly","bymonthday":1,"byhour":6,"byminute":0,"timezone":"Europe/Paris"}'
    JobFactory(id="billing", schedule=text)
    page = admin_client.get(reverse("admin:runner_job_changelist")).text
    assert f'<code title="{escape(text)}">{escape(text[:23])}…</code>' in page
    assert "every month on the 1st day at 06:00 (Europe/Paris)" in page


def test_the_job_list_reads_the_same_last_runs_sorted_or_not(admin_client):
    ran = JobFactory(id="ran")
    RunFactory(job=ran, status="error")
    RunFactory(job=ran, status="skipped")
    JobFactory(id="never")
    url = reverse("admin:runner_job_changelist")
    for query in ("", "?o=7", "?last_status=error"):
        listed = {job.pk: job for job in admin_client.get(url + query).context["cl"].result_list}
        assert listed["ran"].last_status == "error", query
        assert listed["ran"].last_skipped_at is not None, query
        if "never" in listed:
            assert listed["never"].last_status is None and listed["never"].last_run_at is None
