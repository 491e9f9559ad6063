"""``GET /config`` and ``POST /config/apply``: at the root in the original's shapes, and
under ``/api/``; who may call them; what is written and what applies at once."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client

from jeeves_site import config_live
from jeeves_site.runner_config import RunnerConfig

pytestmark = pytest.mark.django_db(transaction=False)

SECRET = "gw-secret-key-123"


@pytest.fixture
def config_file(settings, tmp_path: Path):
    """A config file in use by this process; returns its path (write, then it is read)."""
    path = tmp_path / "config.json"

    def use(data: dict) -> Path:
        path.write_text(json.dumps(data))
        settings.RUNNER = dataclasses.replace(settings.RUNNER, config_file=str(path))
        config_live.refresh_runner_config(force=True)
        return path

    use({"gatewayApiKey": SECRET})
    return use


def root(client: Client, method: str, path: str, body=None, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method == "get":
        return client.get(path, headers=headers)
    return client.post(
        path, data=json.dumps(body), content_type="application/json", headers=headers
    )


def test_the_root_config_is_the_effective_config_with_camel_case_keys(config_file, token):
    answer = root(Client(), "get", "/config", token=token)
    assert answer.status_code == 200
    config = answer.json()
    assert config["port"] == 1937
    assert config["host"] == "127.0.0.1"
    assert config["notifications"]["defaultOnFailure"] is None
    assert config["logging"] == {"level": "info"}
    assert config["runners"]["sh"] == "bash"
    assert {"maxConcurrency", "runRetentionDays", "gatewayUrl", "jobsDir"} <= set(config)
    assert "configFile" not in config
    # dbPath unset: the SQLite file in use; on PostgreSQL (DATABASE_URL) it is unused.
    assert config["dbPath"] == (
        connection.settings_dict["NAME"] if connection.vendor == "sqlite" else ""
    )


def test_secrets_are_redacted(config_file, token, settings):
    redis_url = "redis://:hunter2@127.0.0.1:6379/0"
    settings.RUNNER = dataclasses.replace(settings.RUNNER, redis_url=redis_url)
    text = root(Client(), "get", "/config", token=token).content.decode()
    assert SECRET not in text and "hunter2" not in text
    config = json.loads(text)
    assert config["gatewayApiKey"] == "[redacted]"
    assert config["redisUrl"] == "redis://:[redacted]@127.0.0.1:6379/0"


def test_a_jsonpath_query_answers_result_and_count_as_the_original(config_file, token):
    answer = root(Client(), "get", "/config?path=$.port", token=token)
    assert answer.json() == {"result": [1937], "count": 1}
    answer = root(Client(), "get", "/config?path=$.notifications.*", token=token)
    assert answer.json()["count"] == 4  # slackTokenPath is left out while unset


def test_a_malformed_jsonpath_is_400_with_an_error(config_file, token):
    answer = root(Client(), "get", "/config?path=$[[", token=token)
    assert answer.status_code == 400
    assert "invalid JSONPath" in answer.json()["error"]


def test_a_config_jsonpath_has_the_same_bounds_as_the_state_ones(config_file, token):
    answer = root(Client(), "get", "/config?path=$..*..*", token=token)
    assert answer.status_code == 400
    assert "more than 1 recursive descent (..)" in answer.json()["error"]
    assert root(Client(), "get", "/config?path=$..port", token=token).json()["count"] == 1


def test_api_config_serves_the_same_document(config_file, api, token):
    assert api.get("/config").json() == root(Client(), "get", "/config", token=token).json()
    assert api.get("/config?path=$.port").json() == {"result": [1937], "count": 1}


def test_the_root_paths_refuse_a_caller_without_credentials(config_file, db):
    for method, path in (("get", "/config"), ("post", "/config/apply")):
        answer = root(Client(), method, path, {"patch": {}})
        assert answer.status_code == 401
        assert "authentication required" in answer.json()["error"]
    assert root(Client(), "get", "/config", token="jr_wrong").status_code == 401


@pytest.fixture
def staff(db):
    """A logged-in staff user with the given permissions of the api app."""

    def login(*codenames: str) -> Client:
        user = User.objects.create_user("op", password="x", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        client = Client()
        client.force_login(user)
        return client

    return login


def test_a_staff_user_without_the_permission_is_refused(config_file, staff):
    client = staff()
    assert client.get("/config").status_code == 403
    assert client.get("/api/config").status_code == 403
    answer = root(client, "post", "/config/apply", {"patch": {"runRetentionDays": 3}})
    assert answer.status_code == 403
    assert "api.change_config" in answer.json()["error"]


def test_view_config_lets_a_user_read_but_not_apply(config_file, staff):
    client = staff("view_config")
    assert client.get("/config").status_code == 200
    assert root(client, "post", "/config/apply", {"patch": {}}).status_code == 403


def test_change_config_lets_a_user_apply(config_file, staff):
    client = staff("change_config")
    answer = root(client, "post", "/config/apply", {"patch": {"runRetentionDays": 3}})
    assert answer.status_code == 200


def test_a_superuser_may_read_and_apply(config_file, admin_client):
    assert admin_client.get("/config").status_code == 200
    answer = root(admin_client, "post", "/config/apply", {"patch": {"runRetentionDays": 3}})
    assert answer.status_code == 200


def test_apply_deep_merges_writes_0600_and_applies_at_once(config_file, token, settings):
    path = config_file({"gatewayApiKey": SECRET, "notifications": {"defaultOnFailure": "C1"}})
    patch = {"runRetentionDays": 7, "notifications": {"defaultOnSuccess": "C2"}}
    answer = root(Client(), "post", "/config/apply", {"patch": patch}, token=token)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["applied"] is True
    assert body["config"]["runRetentionDays"] == 7
    assert body["config"]["gatewayApiKey"] == "[redacted]"
    assert body["restartRequired"] == []
    written = json.loads(path.read_text())
    assert written == {
        "gatewayApiKey": SECRET,
        "notifications": {"defaultOnFailure": "C1", "defaultOnSuccess": "C2"},
        "runRetentionDays": 7,
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.RUNNER.run_retention_days == 7
    assert settings.RUNNER.notifications.default_on_success == "C2"


# A pydantic dataclass: the field's default is the class attribute.
DEFAULT_CONCURRENCY = RunnerConfig.max_concurrency


def test_settings_read_at_start_wait_for_a_restart_and_say_so(config_file, token, settings):
    answer = root(
        Client(),
        "post",
        "/config/apply",
        {"patch": {"port": 3100, "maxConcurrency": 8}},
        token=token,
    )
    assert answer.json()["restartRequired"] == ["port", "maxConcurrency"]
    assert (settings.RUNNER.port, settings.RUNNER.max_concurrency) == (1937, DEFAULT_CONCURRENCY)
    assert answer.json()["config"]["port"] == 1937


def test_replace_writes_the_patch_alone(config_file, token):
    path = config_file({"runRetentionDays": 9, "gatewayApiKey": SECRET})
    answer = root(
        Client(), "post", "/config/apply", {"patch": {"port": 1937}, "replace": True}, token=token
    )
    assert answer.status_code == 200
    assert json.loads(path.read_text()) == {"port": 1937}
    assert answer.json()["config"]["runRetentionDays"] == 30
    assert "gatewayApiKey" not in answer.json()["config"]


def test_an_invalid_patch_is_400_with_zod_shaped_issues_and_nothing_written(config_file, token):
    path = config_file({"runRetentionDays": 9})
    before = path.read_text()
    patch = {"port": "high", "maxConcurrency": 0, "logging": {"level": "loud"}, "prot": 1}
    answer = root(Client(), "post", "/config/apply", {"patch": patch}, token=token)
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "Config validation failed"
    by_path = {tuple(issue["path"]): issue for issue in body["issues"]}
    assert by_path[("port",)]["code"] == "invalid_type"
    assert by_path[("maxConcurrency",)]["code"] == "too_small"
    assert by_path[("logging", "level")]["code"] == "invalid_value"
    assert by_path[()] == {
        "code": "unrecognized_keys",
        "keys": ["prot"],
        "path": [],
        "message": "Unrecognized key: 'prot'",
    }
    assert path.read_text() == before


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"dbPath": "\x00"}, ["dbPath"]),
        ({"runners": {"sh": "\x00"}}, ["runners", "sh", 0]),
        ({"scriptsDir": "\ud800"}, ["scriptsDir"]),
    ],
)
def test_a_patch_with_text_no_system_call_takes_is_400_and_nothing_written(
    config_file, token, patch, where
):
    path = config_file({"runRetentionDays": 9})
    before = path.read_text()
    answer = root(Client(), "post", "/config/apply", {"patch": patch}, token=token)
    assert answer.status_code == 400
    [issue] = answer.json()["issues"]
    assert issue["path"] == where and "must not contain" in issue["message"]
    assert path.read_text() == before


def test_deprecated_keys_in_a_patch_are_written_in_todays_form(config_file, token):
    path = config_file({})
    patch = {"log": {"level": "debug"}, "gateway": {"url": "http://127.0.0.1:9"}}
    answer = root(Client(), "post", "/config/apply", {"patch": patch}, token=token)
    assert answer.status_code == 200
    assert json.loads(path.read_text()) == {
        "logging": {"level": "debug"},
        "gatewayUrl": "http://127.0.0.1:9",
    }


@pytest.mark.parametrize(
    "body", [{"patch": 5}, {"replace": True}, [1], {"patch": {}, "replace": "yes"}]
)
def test_a_body_without_a_patch_object_is_400(config_file, token, body):
    answer = root(Client(), "post", "/config/apply", body, token=token)
    assert answer.status_code == 400
    assert set(answer.json()) == {"error"}


def test_api_config_apply_answers_as_the_root(config_file, api):
    answer = api.post("/config/apply", {"patch": {"runRetentionDays": 5}})
    assert answer.status_code == 200
    assert answer.json()["config"]["runRetentionDays"] == 5
    assert api.post("/config/apply", {"patch": {"port": 0}}).status_code == 400


def test_apply_without_a_config_file_writes_one_in_the_data_directory(
    settings, tmp_path, token, monkeypatch
):
    monkeypatch.delenv("JEEVES_CONFIG", raising=False)
    settings.DATA_DIR = tmp_path
    settings.RUNNER = dataclasses.replace(settings.RUNNER, config_file="")
    answer = root(
        Client(), "post", "/config/apply", {"patch": {"runRetentionDays": 4}}, token=token
    )
    assert answer.status_code == 200
    assert json.loads((tmp_path / "config.json").read_text()) == {"runRetentionDays": 4}
    assert settings.RUNNER.config_file == str(tmp_path / "config.json")


def test_another_process_picks_up_a_changed_file_at_its_next_check(config_file, settings):
    path = config_file({"runRetentionDays": 9})
    assert config_live.refresh_runner_config() == []
    path.write_text(json.dumps({"runRetentionDays": 11, "maxConcurrency": 2, "extra": 1}))
    assert config_live.refresh_runner_config() == ["maxConcurrency"]
    assert settings.RUNNER.run_retention_days == 11
    assert settings.RUNNER.max_concurrency == DEFAULT_CONCURRENCY


def test_a_changed_file_with_errors_is_not_applied(config_file, settings):
    path = config_file({"runRetentionDays": 9})
    path.write_text(json.dumps({"runRetentionDays": "many"}))
    assert config_live.refresh_runner_config() == []
    assert settings.RUNNER.run_retention_days == 9


def test_a_worker_re_reads_a_changed_file_before_its_next_run(config_file, settings):
    from django_q.signals import pre_execute

    path = config_file({"runRetentionDays": 9})
    path.write_text(json.dumps({"runRetentionDays": 13}))
    pre_execute.send(sender="worker", func="runner.tasks.execute", task={})
    assert settings.RUNNER.run_retention_days == 13


def test_a_config_file_that_cannot_be_written_is_500_with_the_originals_error(
    token, tmp_path, settings
):
    directory = tmp_path / "config.json"
    directory.mkdir()  # a directory where the file should be: writing it fails, even for root
    settings.RUNNER = dataclasses.replace(settings.RUNNER, config_file=str(directory))
    answer = root(Client(), "post", "/config/apply", {"patch": {"port": 3}}, token=token)
    assert answer.status_code == 500
    assert answer.json()["error"].startswith(f"Failed to write config: {directory}")
