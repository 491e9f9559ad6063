"""The admin answers staff, turns away anonymous users, and validates job forms."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from runner.models import Job, Run
from tests.factories import (
    JobFactory,
    QueueFactory,
    QueueItemFactory,
    RunFactory,
    StateEntryFactory,
    StateItemFactory,
)

pytestmark = pytest.mark.django_db

MODELS = {
    "runner_job": JobFactory,
    "runner_run": RunFactory,
    "statestore_stateentry": StateEntryFactory,
    "statestore_stateitem": StateItemFactory,
    "queues_queue": QueueFactory,
    "queues_queueitem": QueueItemFactory,
}
ADDABLE = [name for name in MODELS if name != "runner_run"]


@pytest.mark.parametrize("name", MODELS)
def test_every_changelist_answers_a_superuser(admin_client, name):
    MODELS[name]()
    assert admin_client.get(reverse(f"admin:{name}_changelist")).status_code == 200


@pytest.mark.parametrize("name", MODELS)
def test_every_change_page_answers_a_superuser(admin_client, name):
    obj = MODELS[name]()
    assert admin_client.get(reverse(f"admin:{name}_change", args=[obj.pk])).status_code == 200


@pytest.mark.parametrize("name", ADDABLE)
def test_every_add_page_answers_a_superuser(admin_client, name):
    assert admin_client.get(reverse(f"admin:{name}_add")).status_code == 200


def test_runs_cannot_be_added_by_hand(admin_client):
    assert admin_client.get(reverse("admin:runner_run_add")).status_code == 403


@pytest.mark.parametrize("name", MODELS)
def test_anonymous_users_are_sent_to_log_in(client, name):
    response = client.get(reverse(f"admin:{name}_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_job_list_shows_the_last_run_status(admin_client):
    job = JobFactory(id="inbox")
    RunFactory(job=job, status="ok")
    RunFactory(job=job, status="error")
    response = admin_client.get(reverse("admin:runner_job_changelist"))
    assert b"error" in response.content


def test_a_skipped_missed_fire_does_not_hide_the_last_run_that_ran(admin_client):
    job = JobFactory(id="inbox")
    RunFactory(job=job, status="ok")
    skip = RunFactory(job=job, status="skipped", error="missed fire")
    response = admin_client.get(reverse("admin:runner_job_changelist"))
    [listed] = response.context["cl"].result_list
    assert listed.last_status == "ok"
    assert listed.last_skipped_at == skip.created_at


def test_the_pending_next_run_is_not_the_job_lists_last_status(admin_client):
    """An every-second job always has its next run pending: the last status is of the
    newest run that ran, in the page's own query and sorted or filtered by it."""
    job = JobFactory(id="inbox")
    RunFactory(job=job, status="error")
    RunFactory(job=job, status="pending")
    for query in ("", "?o=7", "?last_status=error"):
        response = admin_client.get(reverse("admin:runner_job_changelist") + query)
        [listed] = response.context["cl"].result_list
        assert listed.last_status == "error", query
    page = admin_client.get(reverse("admin:runner_job_changelist")).text
    assert "?last_status=pending" not in page  # not offered as a last status
    response = admin_client.get(reverse("admin:runner_job_changelist") + "?last_status=running")
    assert list(response.context["cl"].result_list) == []


def test_the_job_list_filters_by_last_status(admin_client):
    RunFactory(job=JobFactory(id="failing"), status="error")
    RunFactory(job=JobFactory(id="passing"), status="ok")
    response = admin_client.get(reverse("admin:runner_job_changelist") + "?last_status=error")
    listed = [job.id for job in response.context["cl"].result_list]
    assert listed == ["failing"]


def test_the_run_list_filters_by_a_job_chosen_from_a_list(admin_client):
    RunFactory(job=JobFactory(id="a"))
    RunFactory(job=JobFactory(id="b"))
    response = admin_client.get(reverse("admin:runner_run_changelist") + "?job=b&status=ok")
    assert [run.job_id for run in response.context["cl"].result_list] == []  # b's run is pending
    response = admin_client.get(reverse("admin:runner_run_changelist") + "?job=b&o=-1")
    assert [run.job_id for run in response.context["cl"].result_list] == ["b"]
    # A choice in a list, not a free-text box; the other parameters ride along.
    form = response.text.split('class="jr-select-filter"')[1].split("</form>")[0]
    assert '<option value="a">a</option>' in form
    assert '<option value="b" selected>b</option>' in form
    assert '<input type="hidden" name="o" value="-1">' in form


def test_the_run_list_links_the_job_and_reads_durations_and_times_to_the_second(admin_client):
    from datetime import UTC, datetime

    started = datetime(2026, 3, 1, 9, 0, 7, tzinfo=UTC)
    RunFactory(job=JobFactory(id="inbox"), status="ok", duration_ms=184_000, started_at=started)
    page = admin_client.get(reverse("admin:runner_run_changelist")).text
    assert f'<a href="{reverse("admin:runner_job_change", args=["inbox"])}">inbox</a>' in page
    assert "3 min 4 s" in page
    assert '<span class="jr-badge jr-ok">ok</span>' in page
    assert timezone.localtime(started).strftime("%Y-%m-%d %H:%M:%S") in page


def test_the_run_page_links_the_previous_and_next_run_of_its_job(admin_client):
    job = JobFactory(id="inbox")
    first, middle, last = RunFactory.create_batch(3, job=job)
    RunFactory(job=JobFactory(id="other"))
    page = admin_client.get(reverse("admin:runner_run_change", args=[middle.pk])).text
    assert (
        f'{reverse("admin:runner_run_change", args=[first.pk])}">← previous (#{first.pk})' in page
    )
    assert f'{reverse("admin:runner_run_change", args=[last.pk])}">next → (#{last.pk})' in page


def test_a_truncated_output_is_a_note_not_an_error(admin_client):
    run = RunFactory(status="ok", output_truncated=True, stdout="tail")
    page = admin_client.get(reverse("admin:runner_run_change", args=[run.pk])).text
    assert "only the last lines are kept (outputTailLines in the configuration)" in page
    assert 'class="jr-note"' in page
    assert "icon-no.svg" not in page


def test_re_run_starts_a_manual_run_of_the_same_job_and_opens_it(admin_client):
    run = RunFactory(job=JobFactory(id="inbox", script="true"), status="error")
    page = admin_client.get(reverse("admin:runner_run_change", args=[run.pk])).text
    url = reverse("admin:runner_run_rerun", args=[run.pk])
    assert f'action="{url}"' in page
    response = admin_client.post(url)
    again = Run.objects.exclude(pk=run.pk).get()
    assert (again.job_id, again.trigger, again.status) == ("inbox", "manual", "pending")
    assert response["Location"] == reverse("admin:runner_run_change", args=[again.pk])


def test_re_run_refuses_a_get_and_a_user_without_the_run_job_permission(admin_client, client):
    from django.contrib.auth.models import Permission, User

    run = RunFactory()
    url = reverse("admin:runner_run_rerun", args=[run.pk])
    assert admin_client.get(url).status_code == 403
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_job", "view_run", "change_job"])
    )
    client.force_login(viewer)
    assert "Re-run" not in client.get(reverse("admin:runner_run_change", args=[run.pk])).text
    assert client.post(url).status_code == 403
    assert Run.objects.count() == 1


def test_the_run_detail_shows_output_and_error(admin_client):
    run = RunFactory(stdout="hello out", stderr="warn err", error="exit code 3")
    response = admin_client.get(reverse("admin:runner_run_change", args=[run.pk]))
    assert b"hello out" in response.content and b"exit code 3" in response.content


def job_form(**overrides) -> dict:
    data = {
        "id": "inbox",
        "name": "Poll inbox",
        "description": "",
        "enabled": "on",
        "type": "script",
        "source_type": "inline",
        "script": "echo hi",
        "args": "[]",
        "env": "{}",
        "thinking": "low",
        "schedule": "*/5 * * * *",
        "timezone": "",
        "overlap_policy": "skip",
        "missed_fire_policy": "skip",
        "timeout_ms": "",
        "on_failure": "",
        "on_success": "",
        "output_channel": "",
    }
    data.update(overrides)
    return data


def test_a_valid_job_is_created_from_the_admin_form(admin_client):
    response = admin_client.post(reverse("admin:runner_job_add"), job_form())
    assert response.status_code == 302
    assert Job.objects.get(id="inbox").schedule == "*/5 * * * *"


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("schedule", "61 * * * *", "not a valid cron expression"),
        ("schedule", "0 0 30 2 *", "never fires"),
        ("schedule", "R * * * *", "drawn again each time"),
        ("timezone", "Nowhere/City", "not a known IANA time zone"),
        ("env", '{"A": 1}', "must be a string"),
        ("env", "{not json", "Enter a valid JSON"),
        ("args", '"--x"', "list of strings"),
        ("timeout_ms", "0", "greater than or equal to 1"),
        ("type", "lambda", "not one of the available choices"),
        ("overlap_policy", "queue", "not one of the available choices"),
    ],
)
def test_the_job_form_refuses_bad_input_naming_the_field(admin_client, field, value, needle):
    response = admin_client.post(reverse("admin:runner_job_add"), job_form(**{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and any(needle in message for message in errors[field])
    assert not Job.objects.exists()


@pytest.mark.parametrize("value", ["-5", "0"])
def test_the_timeout_field_gives_one_message_for_every_value_below_one(admin_client, value):
    response = admin_client.post(reverse("admin:runner_job_add"), job_form(timeout_ms=value))
    errors = response.context["adminform"].form.errors["timeout_ms"]
    assert errors == ["Ensure this value is greater than or equal to 1."]


def test_the_job_form_saves_a_missing_script_file_with_a_warning(admin_client, tmp_path):
    form = job_form(source_type="path", script=str(tmp_path / "gone.py"))
    response = admin_client.post(reverse("admin:runner_job_add"), form, follow=True)
    assert Job.objects.get(pk="inbox").script == str(tmp_path / "gone.py")
    messages = [str(message) for message in response.context["messages"]]
    assert any("script not found" in message for message in messages)


def test_the_job_form_takes_a_recurrence_object_and_refuses_a_bad_one(admin_client):
    schedule = '{"freq": "minutely", "interval": 97, "timezone": "Europe/Berlin"}'
    admin_client.post(reverse("admin:runner_job_add"), job_form(schedule=schedule))
    assert Job.objects.get(pk="inbox").schedule == (
        '{"freq":"minutely","interval":97,"timezone":"Europe/Berlin"}'
    )
    bad = job_form(id="other", schedule='{"freq": "minutely", "interval": 0}')
    response = admin_client.post(reverse("admin:runner_job_add"), bad)
    errors = response.context["adminform"].form.errors["schedule"]
    assert errors == ["interval: Input should be greater than 0"]


def test_django_q2s_own_models_are_not_in_the_admin(admin_client):
    from django.contrib import admin
    from django_q.models import Failure, OrmQ, Schedule, Success

    for model in (Schedule, Success, Failure, OrmQ):
        assert not admin.site.is_registered(model)
    index = admin_client.get(reverse("admin:index")).text
    assert "Scheduled tasks" not in index and "django_q" not in index


def test_editing_a_queues_id_cannot_save_a_copy(admin_client):
    from queues.models import Queue

    QueueFactory(id="q2", name="Second")
    url = reverse("admin:queues_queue_change", args=["q2"])
    page = admin_client.get(url)
    assert "id" not in page.context["adminform"].form.fields
    form = {"id": "q3", "name": "Renamed", "description": "", "dedup_config": "null",
            "retention": '{"completed": "7d", "failed": "30d"}', "max_attempts": "3"}  # fmt: skip
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert list(Queue.objects.values_list("id", "name")) == [("q2", "Renamed")]


def test_state_items_are_listed_under_their_collection_with_a_link_to_it(admin_client):
    StateItemFactory(namespace="mail", key="seen", item_key="m1", value=None)
    StateItemFactory(namespace="mail", key="other", item_key="m2", value={"n": 1})
    response = admin_client.get(reverse("admin:statestore_stateitem_changelist"))
    assert "(member, no value)" in response.text
    assert "?namespace=mail&amp;key=seen" in response.text
    only = admin_client.get(
        reverse("admin:statestore_stateitem_changelist") + "?namespace=mail&key=seen"
    )
    assert [item.item_key for item in only.context["cl"].result_list] == ["m1"]


def test_the_admin_is_branded_with_a_favicon_and_links_to_the_api_docs(admin_client):
    page = admin_client.get(reverse("admin:index")).text
    assert "Django administration" not in page and "Django site admin" not in page
    assert '<a href="/admin/">jeeves-runner</a>' in page
    assert "View site" not in page
    assert '<a href="/api/docs">API docs</a>' in page
    favicon = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">', page)[1]
    assert admin_client.get(favicon).status_code == 200


def test_the_job_list_shows_schedule_words_next_fire_in_the_jobs_zone_badges_and_strip(
    admin_client, clock
):
    job = JobFactory(id="inbox", schedule="30 9 * * 1-5", timezone="Europe/Berlin")
    JobFactory(id="off", enabled=False)
    ok = RunFactory(job=job, status="ok", duration_ms=1000)
    RunFactory(job=job, status="error", duration_ms=3000, created_at=ok.created_at)
    page = admin_client.get(reverse("admin:runner_job_changelist")).text
    assert "At 09:30, Monday through Friday" in page
    # 2026-03-01 09:00 UTC is a Sunday: next fire Monday 09:30 in Berlin (CET).
    assert "2026-03-02 09:30:00 CET <small>(in 23 h)</small>" in page
    assert '<span class="jr-badge jr-error">error</span>' in page
    assert '<span class="jr-badge jr-disabled">disabled</span>' in page
    assert page.count('<a class="jr-badge jr-') == 2
    assert "2.0 s" in page  # the median of 1 s and 3 s


def test_a_recurrence_objects_own_zone_is_the_one_its_next_fire_is_shown_in(
    admin_client, clock, settings
):
    """As list_jobs shows it (newcomer probe: the admin said 12:48 UTC, list_jobs 13:48 CET)."""
    settings.TIME_ZONE = "UTC"
    schedule = '{"freq": "daily", "byhour": [9], "byminute": [30], "timezone": "Europe/Berlin"}'
    JobFactory(id="rr", schedule=schedule, timezone="")
    page = admin_client.get(reverse("admin:runner_job_changelist")).text
    assert "2026-03-02 09:30:00 CET" in page  # 2026-03-01 09:00 UTC is past 09:30 Berlin


def test_a_runs_time_in_the_console_is_its_instant_not_its_record(admin_client):
    """A scheduled run is recorded up to the dispatch lead before its instant: shown by its
    record, a run of 13:02:00 read 13:01:59 (newcomer probe)."""
    from datetime import UTC, datetime, timedelta

    instant = datetime(2026, 3, 1, 13, 2, 0, tzinfo=UTC)
    job = JobFactory(id="minutely", schedule="* * * * *")
    RunFactory(
        job=job,
        status="ok",
        scheduled_for=instant,
        created_at=instant - timedelta(milliseconds=250),
        started_at=instant + timedelta(milliseconds=3),
    )
    shown = timezone.localtime(instant).strftime("%Y-%m-%d %H:%M:%S")
    for query in ("", "?o=7", "?last_status=ok"):
        page = admin_client.get(reverse("admin:runner_job_changelist") + query).text
        assert f'<small class="jr-when">{shown}</small>' in page, query
    page = admin_client.get(reverse("admin:runner_job_change", args=["minutely"])).text
    assert f"<td>{shown}</td>" in page


def test_the_job_list_makes_no_query_per_job(admin_client, django_assert_max_num_queries):
    for number in range(30):
        job = JobFactory(id=f"job-{number}")
        RunFactory.create_batch(3, job=job, status="ok", duration_ms=10)
    admin_client.get(reverse("admin:runner_job_changelist"))  # the session and user, warmed
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("admin:runner_job_changelist"))
    assert len(response.context["cl"].result_list) == 30


def test_the_queue_list_shows_pending_claimed_failed_and_oldest_pending_age(
    admin_client, clock, django_assert_max_num_queries
):
    from datetime import timedelta

    from queues.models import QueueItem

    queue = QueueFactory(id="mail")
    QueueFactory(id="empty")
    QueueItemFactory.create_batch(3, queue=queue)
    QueueItemFactory(queue=queue, status="claimed", lease_expires_at=timezone.now())
    QueueItemFactory(queue=queue, status="failed")
    QueueItem.objects.filter(status="pending").update(
        created_at=timezone.now() - timedelta(seconds=184)
    )
    admin_client.get(reverse("admin:queues_queue_changelist"))
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("admin:queues_queue_changelist"))
    rows = {queue.id: queue for queue in response.context["cl"].result_list}
    mail = rows["mail"]
    assert (mail.pending_n, mail.claimed_n, mail.failed_n) == (3, 1, 1)
    assert "3 min 4 s" in response.text
    assert (rows["empty"].pending_n, rows["empty"].oldest_pending_at) == (0, None)


def test_the_job_page_lists_its_last_runs_with_links_and_shows_thinking_only_for_sessions(
    admin_client,
):
    script = JobFactory(id="inbox", type="script")
    run = RunFactory(job=script, status="ok", duration_ms=1234)
    page = admin_client.get(reverse("admin:runner_job_change", args=["inbox"]))
    assert f'<a href="{reverse("admin:runner_run_change", args=[run.pk])}">#{run.pk}</a>' in (
        page.text
    )
    assert "1.2 s" in page.text
    assert "thinking" not in page.context["adminform"].form.fields
    help_text = page.context["adminform"].form.fields["schedule"].help_text
    assert "'*/10 * * * * *' every 10 seconds" in help_text and help_text in page.text
    session = JobFactory(id="digest", type="session")
    page = admin_client.get(reverse("admin:runner_job_change", args=[session.pk]))
    assert "thinking" in page.context["adminform"].form.fields
