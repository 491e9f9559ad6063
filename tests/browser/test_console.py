"""The operator's console in a real browser: a job made through the form, its next
fires previewed by the server, Run now with the script's output appearing live on the
run page, the failure on the dashboard, and lists that fit a 1366 px window.

The Run-now case runs real ``runscheduler`` workers against the live server's database.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from selenium.webdriver.support.ui import Select

from runner.models import Job, Run
from tests.browser import console_data
from tests.factories import JobFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]


def fill(browser, field: str, text: str) -> None:
    box = browser.find(f"#id_{field}")
    box.clear()
    box.send_keys(text)


def test_a_job_made_through_the_form_previews_its_next_fires_from_the_server(browser, operator):
    browser.log_in("operator")
    browser.get("/admin/runner/job/add/")
    fill(browser, "id", "nightly-report")
    fill(browser, "name", "Nightly report")
    Select(browser.find("#id_source_type")).select_by_value("inline")
    fill(browser, "script", "echo report")
    assert not browser.find(".field-interpreter").get_attribute("hidden")
    assert browser.find(".field-thinking").get_attribute("hidden")  # a script job has no thinking
    fill(browser, "schedule", "not a schedule")
    browser.wait_text("#jr-preview .jr-preview-error", "Schedule")
    fill(browser, "schedule", "30 0 9 * * 1-5")  # six fields: 09:00:30 on weekdays
    fill(browser, "timezone", "Europe/Berlin")
    preview = browser.wait_text("#jr-preview", "Next 5 fires (Europe/Berlin)")
    fires = browser.find_all("#jr-preview li")
    assert len(fires) == 5
    assert all(" 09:00:30 CE" in fire.text for fire in fires), preview.text
    browser.find("input[name=_save]").click()
    browser.wait_text(".messagelist", "was added successfully")
    job = Job.objects.get(pk="nightly-report")
    assert (job.schedule, job.timezone) == ("30 0 9 * * 1-5", "Europe/Berlin")


def test_run_now_shows_a_running_scripts_output_live_and_the_failure_on_the_dashboard(
    browser, operator, daemons, tmp_path
):
    release = tmp_path / "release"
    script = (
        "echo 'fetching 3 feeds'; echo 'feed 1 of 3: 12 new items'\n"
        f"while [ ! -e {release} ]; do sleep 0.1; done\n"
        "echo 'feed 2 of 3: unreachable' >&2; exit 2\n"
    )
    JobFactory(id="fetch-feeds", name="Fetch feeds", schedule="0 3 * * *", script=script)
    daemons.start("runscheduler", JEEVES_Q_NAME=settings.Q_CLUSTER["name"])
    browser.log_in("operator")
    browser.get("/admin/runner/job/fetch-feeds/change/")
    browser.find("#jr-run-now").click()
    browser.wait_text(".messagelist", "Queued run #")
    run = Run.objects.get(job_id="fetch-feeds")
    assert browser.driver.current_url.endswith(f"/admin/runner/run/{run.pk}/change/")
    browser.wait_text("#jr-stdout", "feed 1 of 3: 12 new items")  # while the script waits
    assert Run.objects.get(pk=run.pk).status == "running"
    browser.wait_text("#jr-live-status", "running")
    browser.show("run-live", whole_page=True)
    release.touch()
    browser.wait_text(".field-status_badge", "error")  # the page reloaded with the final record
    assert "feed 2 of 3: unreachable" in browser.find(".field-stderr_text").text
    assert not browser.find_all("#jr-live")

    browser.get("/admin/")
    failure = browser.wait_text("#jr-failures", "fetch-feeds")
    assert "feed 2 of 3: unreachable" in failure.text or "exit code 2" in failure.text


def test_the_console_pages_fit_a_1366_px_window_with_a_night_of_runs(browser, operator):
    console_data.build()
    browser.log_in("operator")
    pages = [
        ("/admin/", "#jr-failures", "scrape-prices", "dashboard"),
        ("/admin/runner/job/", "#result_list", "Every 10 minutes", "job-list"),
        ("/admin/runner/job/scrape-prices/change/", ".jr-chart", "longest", "job-page"),
        ("/admin/runner/run/", "#result_list", "sync-crm", "run-list"),
        ("/admin/queues/queue/", "#result_list", "thumbnails", "queue-list"),
    ]
    for path, where, text, name in pages:
        browser.get(path)
        browser.wait_text(where, text) if where != ".jr-chart" else browser.wait(
            "the duration chart", lambda d: browser.find_all(".jr-chart rect")
        )
        assert not browser.scrolls_sideways(), path
        browser.show(name, whole_page=name in ("job-page", "dashboard", "job-list"))
    browser.get("/admin/runner/job/scrape-prices/change/")
    preview = browser.wait_text("#jr-preview", "Next 5 fires")
    assert len(browser.find_all("#jr-preview li")) == 5, preview.text
