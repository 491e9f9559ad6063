"""One alert per incident, end to end: runs finish, the loopback Slack receives exactly
the expected posts. The runs' ``finished_at`` is the clock (set per run, never read
from the wall)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from runner import incidents, notify
from runner.execution.executor import execute_run
from runner.models import Incident, Job, Run, RunOutcome
from tests.factories import JobFactory, RunFactory
from tests.fakes.slack_server import FakeSlack

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("drained_outbox")]

TOKEN = "xoxb-incident-test-token"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def slack(settings, tmp_path: Path) -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as server:
        token_path = tmp_path / "slack-token"
        token_path.write_text(TOKEN, encoding="utf-8")
        config = settings.RUNNER
        notifications = dataclasses.replace(
            config.notifications,
            slack_api_url=server.url,
            slack_token_path=str(token_path),
            timeout_s=2.0,
            default_on_failure="C-FAIL",
            default_on_success="",
        )
        settings.RUNNER = dataclasses.replace(config, notifications=notifications, base_url="")
        yield server


def posts(server: FakeSlack) -> list[tuple[str, str]]:
    assert notify.flush(10)
    return [(m.channel, m.text) for m in server.messages]


def finish(job: Job, status: str, at: datetime) -> Run:
    """A run of ``job`` that finished with ``status`` at ``at``, announced as a worker does."""
    run = RunFactory(
        job=job,
        status=status,
        started_at=at - timedelta(seconds=2),
        finished_at=at,
        duration_ms=2000,
        error="exit code 1" if status != "ok" else "",
    )
    notify.run_finished(run)
    return run


def test_fifty_failures_post_once_and_the_recovery_once(slack):
    job = JobFactory(id="backup", name="Nightly backup")
    for i in range(50):
        finish(job, "error" if i % 7 else "timeout", T0 + timedelta(minutes=3 * i))
    sent = posts(slack)
    assert len(sent) == 1
    channel, text = sent[0]
    assert channel == "C-FAIL"
    assert "failing since 2026-03-02 12:00:00 UTC, 1 failure" in text
    incident = Incident.objects.get()
    assert (incident.failures, incident.closed_at) == (50, None)
    assert list(incidents.open_incidents()) == [incident]

    finish(job, "ok", T0 + timedelta(hours=3))
    sent = posts(slack)
    assert len(sent) == 2
    assert sent[1] == (
        "C-FAIL",
        ":white_check_mark: *Nightly backup* (`backup`) recovered after 50 failures over 3 h",
    )
    incident.refresh_from_db()
    assert incident.closed_at == T0 + timedelta(hours=3)
    assert list(incidents.open_incidents()) == []

    # A new failure is a new incident, with its own single post.
    finish(job, "error", T0 + timedelta(hours=4))
    finish(job, "error", T0 + timedelta(hours=5))
    assert len(posts(slack)) == 3
    assert Incident.objects.count() == 2


def test_a_runs_finish_reads_whether_its_job_has_an_open_incident(slack, django_assert_num_queries):
    """The finish statement says whether the job has an open incident, so an ok run of a
    job without one costs no further read, and one with one still closes it (issue 12)."""
    troubled, fine = JobFactory(id="troubled"), JobFactory(id="fine")
    finish(troubled, "error", T0)
    done = {}
    for job in (troubled, fine):
        run = RunFactory(job=job, status="pending")
        run.start("host:1", T0 + timedelta(hours=1))
        assert run.finish(RunOutcome(status="ok", exit_code=0), T0 + timedelta(hours=1, seconds=1))
        done[job.pk] = run
    assert (done["troubled"].job_had_open_incident, done["fine"].job_had_open_incident) == (
        True,
        False,
    )
    with django_assert_num_queries(0):
        assert incidents.record(done["fine"]) == []
    incidents.record(done["troubled"])
    assert Incident.objects.get(job=troubled).closed_at == T0 + timedelta(hours=1, seconds=1)


def test_alert_after_n_consecutive_failures(slack):
    job = JobFactory(id="flaky", alert_after_failures=3)
    finish(job, "error", T0)
    finish(job, "error", T0 + timedelta(minutes=1))
    assert posts(slack) == []
    finish(job, "ok", T0 + timedelta(minutes=2))  # closed before raised: silent
    assert posts(slack) == []
    for i in range(4):
        finish(job, "error", T0 + timedelta(minutes=10 + i))
    sent = posts(slack)
    assert len(sent) == 1
    assert "failing since 2026-03-02 12:10:00 UTC, 3 failures" in sent[0][1]
    finish(job, "ok", T0 + timedelta(minutes=30))
    assert posts(slack)[-1][1].endswith("recovered after 4 failures over 20 min")
    assert [i.alerted_at is not None for i in Incident.objects.order_by("id")] == [False, True]


def test_reminders_every_n_hours_carry_the_count(slack):
    job = JobFactory(id="sync", name="Sync", alert_reminder_hours=2)
    for i in range(13):  # every 30 min for 6 h
        finish(job, "error", T0 + timedelta(minutes=30 * i))
    sent = [text for _, text in posts(slack)]
    assert len(sent) == 4  # raised at 0 h, reminded at 2 h, 4 h, 6 h
    still = ":rotating_light: *Sync* (`sync`) is still failing since 2026-03-02 12:00:00 UTC"
    assert sent[1:] == [f"{still}, 5 failures", f"{still}, 9 failures", f"{still}, 13 failures"]
    assert Incident.objects.get().reminders == 3


def test_no_reminders_by_default(slack):
    job = JobFactory()
    for i in range(10):
        finish(job, "error", T0 + timedelta(hours=5 * i))
    assert len(posts(slack)) == 1


def test_skipped_runs_and_older_runs_do_not_count_or_reopen(slack):
    job = JobFactory()
    late_ok = RunFactory(job=job, status="ok", finished_at=T0)  # lower id, finishes late
    finish(job, "error", T0 + timedelta(minutes=1))
    finish(job, "skipped", T0 + timedelta(minutes=2))
    notify.run_finished(late_ok)
    notify.run_finished(Run.objects.filter(status="error").get())  # announced twice
    incident = Incident.objects.get()
    assert (incident.failures, incident.closed_at) == (1, None)
    assert len(posts(slack)) == 1


def test_each_job_has_its_own_incident(slack):
    first, second = JobFactory(), JobFactory()
    finish(first, "error", T0)
    finish(second, "error", T0)
    finish(first, "error", T0 + timedelta(minutes=1))
    assert Incident.objects.filter(closed_at=None).count() == 2
    assert len(posts(slack)) == 2


def test_without_a_failure_channel_incidents_are_still_recorded(slack, settings):
    settings.RUNNER = dataclasses.replace(
        settings.RUNNER,
        notifications=dataclasses.replace(settings.RUNNER.notifications, default_on_failure=""),
    )
    job = JobFactory()
    finish(job, "error", T0)
    assert posts(slack) == []
    assert Incident.objects.get().failures == 1


def test_a_real_failing_script_then_a_passing_one(slack, settings, tmp_path):
    job = JobFactory(id="real", name="Real", script="exit 3", source_type="inline")
    for _ in range(3):
        execute_run(Run.create_manual(job, datetime.now(UTC)).pk)
    Job.objects.filter(pk=job.pk).update(script="true")
    execute_run(Run.create_manual(job, datetime.now(UTC)).pk)
    sent = [text for _, text in posts(slack)]
    assert len(sent) == 2
    assert "failing since" in sent[0] and ", 1 failure" in sent[0]
    assert "recovered after 3 failures" in sent[1]


# -- admin and API (read-only) ----------------------------------------------------


def test_the_admin_lists_incidents_read_only(slack):
    job = JobFactory(id="shown")
    finish(job, "error", T0)
    admin = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client = Client()
    client.force_login(admin)
    listing = client.get("/admin/runner/incident/")
    assert listing.status_code == 200
    assert b"shown" in listing.content
    incident = Incident.objects.get()
    assert client.get("/admin/runner/incident/add/").status_code == 403
    page = client.get(f"/admin/runner/incident/{incident.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.post(f"/admin/runner/incident/{incident.pk}/delete/").status_code == 403


def test_the_api_lists_incidents(slack):
    job = JobFactory(id="api-job")
    finish(job, "error", T0)
    finish(job, "error", T0 + timedelta(minutes=1))
    other = JobFactory(id="api-other")
    finish(other, "error", T0)
    finish(other, "ok", T0 + timedelta(minutes=5))
    admin = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client = Client()
    client.force_login(admin)
    body = client.get("/api/incidents").json()
    assert {(i["jobId"], i["failures"], i["open"]) for i in body["incidents"]} == {
        ("api-job", 2, True),
        ("api-other", 1, False),
    }
    open_only = client.get("/api/incidents?open=true").json()
    assert [i["jobId"] for i in open_only["incidents"]] == ["api-job"]
    by_job = client.get("/api/incidents?job_id=api-other").json()
    assert by_job["incidents"][0]["closedAt"] is not None


def test_the_api_refuses_anonymous_callers_and_users_without_view_incident(slack):
    response = Client().get("/api/incidents")
    assert response.status_code == 401
    user = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get("/api/incidents").status_code == 403


def test_the_job_admin_form_sets_the_alert_settings_and_keeps_them_when_left_out():
    from django.urls import reverse

    from tests.test_admin import job_form

    admin = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client = Client()
    client.force_login(admin)
    url = reverse("admin:runner_job_add")
    form = job_form(alert_after_failures="3", alert_reminder_hours="6")
    assert client.post(url, form).status_code == 302
    job = Job.objects.get(id="inbox")
    assert (job.alert_after_failures, job.alert_reminder_hours) == (3, 6)
    assert client.post(url, job_form(id="other")).status_code == 302
    other = Job.objects.get(id="other")
    assert (other.alert_after_failures, other.alert_reminder_hours) == (1, 0)
    refused = client.post(url, job_form(id="bad", alert_after_failures="0"))
    assert refused.status_code == 200
    assert "alert_after_failures" in refused.context["adminform"].form.errors


def test_the_api_filters_incidents_by_kind_and_refuses_an_unknown_kind(slack):
    job = JobFactory(id="kinds")
    finish(job, "error", T0)
    Incident.objects.create(job=job, kind="late", opened_at=T0, failures=3, detail="grace 6 min")
    admin = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client = Client()
    client.force_login(admin)
    late = client.get("/api/incidents?kind=late").json()["incidents"]
    assert [(i["kind"], i["failures"], i["detail"]) for i in late] == [("late", 3, "grace 6 min")]
    assert {i["kind"] for i in client.get("/api/incidents").json()["incidents"]} == {
        "failing",
        "late",
    }
    refused = client.get("/api/incidents?kind=lateish")
    assert refused.status_code == 400 and "kind" in refused.json()["fields"]
