"""/metrics: parsed with prometheus_client's own parser and checked against the database."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from runner.metrics import DURATION_BUCKETS, LAG_BUCKETS
from runner.models import Run, SchedulerHeartbeat
from tests.factories import JobFactory, QueueFactory, QueueItemFactory, RunFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def scrape(client: Client | None = None, **extra) -> dict[str, list]:
    """``{family name: [samples]}`` of one GET /metrics from loopback."""
    response = (client or Client()).get("/metrics", REMOTE_ADDR="127.0.0.1", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    families = text_string_to_metric_families(response.content.decode())
    return {family.name: family.samples for family in families}


def values(samples, name: str, **labels) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_runs_by_job_and_status_match_the_runs_table():
    jobs = JobFactory.create_batch(3)
    rng = random.Random(16)
    for _ in range(60):
        status = rng.choice(["ok", "error", "timeout", "skipped", "running", "pending"])
        RunFactory(job=rng.choice(jobs), status=status)
    expected = Counter(
        (job, status)
        for job, status in Run.objects.values_list("job_id", "status")
        if status in ("ok", "error", "timeout", "skipped")
    )
    samples = scrape()["jeeves_runs"]
    got = {
        (s.labels["job"], s.labels["status"]): s.value for s in samples if s.name.endswith("_total")
    }
    assert got == {key: float(n) for key, n in expected.items()}
    families = scrape()
    assert (
        values(families["jeeves_runs_running"], "jeeves_runs_running")
        == Run.objects.filter(status="running").count()
    )
    assert (
        values(families["jeeves_runs_pending"], "jeeves_runs_pending")
        == Run.objects.filter(status="pending").count()
    )


def test_the_duration_histogram_counts_each_finished_run_once_in_cumulative_buckets():
    job = JobFactory()
    durations_ms = [50, 100, 999, 1000, 1001, 70_000, 20_000_000]
    for ms in durations_ms:
        RunFactory(job=job, status="ok", duration_ms=ms, finished_at=NOW)
    RunFactory(job=job, status="running")  # no duration yet: not counted
    samples = scrape()["jeeves_run_duration_seconds"]
    for bound in DURATION_BUCKETS:
        expected = sum(ms <= bound * 1000 for ms in durations_ms)
        got = values(samples, "jeeves_run_duration_seconds_bucket", le=str(float(bound)))
        assert got == expected, bound
    inf = values(samples, "jeeves_run_duration_seconds_bucket", le="+Inf")
    assert inf == len(durations_ms)
    assert values(samples, "jeeves_run_duration_seconds_count") == len(durations_ms)
    assert values(samples, "jeeves_run_duration_seconds_sum") == pytest.approx(
        sum(durations_ms) / 1000
    )


def test_the_fire_lag_histogram_reads_started_at_minus_scheduled_for_of_scheduled_runs():
    job = JobFactory()
    lags_s = [-1.0, 0.0, 0.04, 0.3, 2.0, 45.0, 900.0]
    for i, lag in enumerate(lags_s):
        fire = NOW + timedelta(minutes=5 * i)
        RunFactory(
            job=job,
            trigger="schedule",
            scheduled_for=fire,
            started_at=fire + timedelta(seconds=lag),
            status="ok",
        )
    RunFactory(job=job, trigger="manual", started_at=NOW, status="ok")  # not a fire
    RunFactory(job=job, trigger="schedule", scheduled_for=NOW - timedelta(hours=1))  # not started
    samples = scrape()["jeeves_run_fire_lag_seconds"]
    for bound in LAG_BUCKETS:
        expected = sum(lag <= bound for lag in lags_s)
        got = values(samples, "jeeves_run_fire_lag_seconds_bucket", le=str(float(bound)))
        assert got == expected, bound
    assert values(samples, "jeeves_run_fire_lag_seconds_count") == len(lags_s)
    assert values(samples, "jeeves_run_fire_lag_seconds_sum") == pytest.approx(
        sum(max(0.0, lag) for lag in lags_s)
    )


def test_queue_items_per_queue_and_status():
    first, second = QueueFactory(id="a"), QueueFactory(id="b")
    for status, n in (("pending", 3), ("claimed", 1), ("failed", 2), ("completed", 4)):
        lease = NOW if status == "claimed" else None
        QueueItemFactory.create_batch(n, queue=first, status=status, lease_expires_at=lease)
    QueueItemFactory(queue=second)
    samples = scrape()["jeeves_queue_items"]
    got = {(s.labels["queue"], s.labels["status"]): s.value for s in samples}
    assert got == {
        ("a", "pending"): 3,
        ("a", "claimed"): 1,
        ("a", "failed"): 2,
        ("b", "pending"): 1,
    }


def test_scheduler_heartbeat_age_and_live_schedulers(time_machine):
    time_machine.move_to(NOW, tick=False)
    families = scrape()
    assert families["jeeves_scheduler_heartbeat_age_seconds"] == []
    assert values(families["jeeves_schedulers_alive"], "jeeves_schedulers_alive") == 0
    SchedulerHeartbeat.objects.create(
        worker="h:1", started_at=NOW - timedelta(hours=1), seen_at=NOW - timedelta(seconds=7)
    )
    SchedulerHeartbeat.objects.create(
        worker="h:2", started_at=NOW - timedelta(hours=2), seen_at=NOW - timedelta(hours=1)
    )
    families = scrape()
    age = families["jeeves_scheduler_heartbeat_age_seconds"]
    assert values(age, "jeeves_scheduler_heartbeat_age_seconds") == 7.0
    assert values(families["jeeves_schedulers_alive"], "jeeves_schedulers_alive") == 1


def test_open_incidents_by_kind():
    from runner.models import Incident

    job = JobFactory()
    Incident.objects.create(job=job, kind="failing", opened_at=NOW)
    Incident.objects.create(job=JobFactory(), kind="failing", opened_at=NOW, closed_at=NOW)
    Incident.objects.create(job=JobFactory(), kind="failing", opened_at=NOW)
    Incident.objects.create(job=job, kind="late", opened_at=NOW)
    Incident.objects.create(job=job, kind="slow", opened_at=NOW, closed_at=NOW)
    samples = scrape()["jeeves_incidents_open"]
    assert values(samples, "jeeves_incidents_open", kind="failing") == 2
    assert values(samples, "jeeves_incidents_open", kind="late") == 1
    assert values(samples, "jeeves_incidents_open", kind="slow") == 0


def test_runs_by_trigger_count_retries_and_match_the_runs_table():
    jobs = JobFactory.create_batch(2)
    rng = random.Random(7)
    for _ in range(80):
        status = rng.choice(["ok", "error", "timeout", "skipped", "running", "pending"])
        trigger = rng.choice(["schedule", "manual", "retry"])
        RunFactory(job=rng.choice(jobs), status=status, trigger=trigger)
    expected = Counter(
        (trigger, status)
        for trigger, status in Run.objects.values_list("trigger", "status")
        if status in ("ok", "error", "timeout", "skipped")
    )
    samples = scrape()["jeeves_runs_by_trigger"]
    got = {
        (s.labels["trigger"], s.labels["status"]): s.value
        for s in samples
        if s.name.endswith("_total")
    }
    assert {key: n for key, n in got.items() if n} == {k: float(n) for k, n in expected.items()}
    assert len(got) == 3 * 4  # every trigger and final status, zeros included


def test_an_empty_database_scrapes_cleanly():
    families = scrape()
    assert families["jeeves_runs"] == []
    assert values(families["jeeves_run_duration_seconds"], "jeeves_run_duration_seconds_count") == 0


# Refusals


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.1.2", "2001:db8::1", "", "bogus"])
def test_without_a_token_only_loopback_may_scrape(settings, address):
    settings.METRICS_TOKEN = ""
    response = Client().get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 403
    assert b"jeeves_" not in response.content


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.9", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses_may_scrape_without_a_token(settings, address):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", REMOTE_ADDR=address).status_code == 200


def test_a_forwarded_header_does_not_make_a_remote_client_local(settings):
    settings.METRICS_TOKEN = ""
    response = Client().get(
        "/metrics",
        REMOTE_ADDR="203.0.113.9",
        HTTP_X_FORWARDED_FOR="127.0.0.1",
        HTTP_X_REAL_IP="127.0.0.1",
        HTTP_FORWARDED="for=127.0.0.1",
    )
    assert response.status_code == 403


def test_with_a_token_set_the_bearer_token_is_required_even_from_loopback(settings):
    settings.METRICS_TOKEN = "s3cret-metrics"
    client = Client()
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    for header in ("Bearer wrong", "Basic s3cret-metrics", "Bearer", "s3cret-metrics"):
        response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401, header
        assert b"s3cret" not in response.content
    ok = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-metrics"
    )
    assert ok.status_code == 200
    assert b"jeeves_runs_running" in ok.content


def test_only_get_and_head(settings):
    settings.METRICS_TOKEN = ""
    response = Client().post("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 405


def test_the_token_is_read_from_a_file(tmp_path):
    from jeeves_site.env import env_secret

    path = tmp_path / "metrics-token"
    path.write_text("from-file\n")
    assert (
        env_secret("JEEVES_METRICS_TOKEN", {"JEEVES_METRICS_TOKEN_FILE": str(path)}) == "from-file"
    )
