"""Settings come from the environment and the original runner's config file."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from jeeves_site.database import database_from_environment
from jeeves_site.env import env_bool, env_int, env_secret
from jeeves_site.runner_config import load_runner_config
from jeeves_site.secret_key import resolve_secret_key

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, data) -> dict[str, str]:
    path = tmp_path / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return {"JEEVES_CONFIG": str(path)}


def test_without_database_url_the_database_is_sqlite_in_the_data_dir(tmp_path):
    db = database_from_environment(tmp_path, environ={})
    assert db["ENGINE"] == "jeeves_site.private_sqlite3"  # Django's, creating the file 0600
    assert db["NAME"] == str(tmp_path / "jeeves.sqlite3")


def test_sqlite_uses_wal_a_busy_timeout_and_immediate_transactions(tmp_path):
    options = database_from_environment(tmp_path, environ={})["OPTIONS"]
    assert "journal_mode=WAL" in options["init_command"]
    assert options["timeout"] >= 5
    assert options["transaction_mode"] == "IMMEDIATE"


def test_the_config_files_db_path_places_the_sqlite_file(tmp_path):
    db = database_from_environment(tmp_path, str(tmp_path / "x" / "runner.sqlite"), environ={})
    assert db["NAME"] == str(tmp_path / "x" / "runner.sqlite")


def test_a_postgres_url_configures_postgresql(tmp_path):
    db = database_from_environment(
        tmp_path, environ={"DATABASE_URL": "postgres://u:p@db.example:5433/jeeves"}
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"]) == ("db.example", 5433, "jeeves", "u")


def test_an_unsupported_database_url_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="sqlite:// or postgres://"):
        database_from_environment(tmp_path, environ={"DATABASE_URL": "mysql://u@h/db"})


def test_a_malformed_database_url_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_environment(tmp_path, environ={"DATABASE_URL": "nonsense"})


def test_env_bool_refuses_anything_but_a_boolean():
    assert env_bool("X", False, environ={"X": "yes"}) is True
    with pytest.raises(ImproperlyConfigured, match="X='maybe' is not a boolean"):
        env_bool("X", False, environ={"X": "maybe"})


def test_env_int_refuses_non_numbers_and_values_below_the_minimum():
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("N", 1, environ={"N": "four"})
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("N", 1, minimum=1, environ={"N": "0"})


def test_a_secret_is_read_from_its_file_variable(tmp_path):
    (tmp_path / "key").write_text("s3cret\n")
    assert env_secret("TOKEN", environ={"TOKEN_FILE": str(tmp_path / "key")}) == "s3cret"


def test_an_unreadable_secret_file_is_reported_without_its_content(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="TOKEN_FILE: cannot read"):
        env_secret("TOKEN", environ={"TOKEN_FILE": str(tmp_path / "missing")})


def test_the_embedded_default_generates_a_private_secret_key_once(tmp_path, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    first = resolve_secret_key(tmp_path, debug=False, uses_data_dir=True)
    assert len(first) >= 50
    assert resolve_secret_key(tmp_path, debug=False, uses_data_dir=True) == first
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_a_shared_database_without_a_configured_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    monkeypatch.delenv("DJANGO_SECRET_KEY_FILE", raising=False)
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        resolve_secret_key(tmp_path, debug=False, uses_data_dir=False)


def test_defaults_apply_without_a_config_file():
    config, errors = load_runner_config({})
    assert errors == []
    assert (config.port, config.bind, config.max_concurrency) == (1937, "127.0.0.1", 16)
    assert config.gateway.url == "http://127.0.0.1:18789"


def test_the_original_runners_config_file_is_read(tmp_path):
    environ = write_config(
        tmp_path,
        {
            "port": 3100,
            "dbPath": "./data/runner.sqlite",
            "maxConcurrency": 2,
            "runRetentionDays": 7,
            "shutdownGraceMs": 5000,
            "runners": {"ts": "npx tsx", ".rb": ["ruby", "-w"]},
            "notifications": {"slackTokenPath": "/etc/slack", "defaultOnFailure": "C123"},
            "log": {"level": "debug"},
            "gateway": {"url": "http://127.0.0.1:9999", "tokenPath": "/etc/gw"},
        },
    )
    config, errors = load_runner_config(environ)
    assert errors == []
    assert (config.port, config.max_concurrency, config.run_retention_days) == (3100, 2, 7)
    assert config.runners[".ts"] == ["npx", "tsx"]
    assert config.runners[".rb"] == ["ruby", "-w"]
    assert config.runners[".py"] == [sys.executable]
    assert config.notifications.default_on_failure == "C123"
    assert config.gateway.token_path == "/etc/gw"
    assert config.log.level == "debug"


def test_environment_variables_override_the_config_file(tmp_path):
    environ = write_config(tmp_path, {"maxConcurrency": 2, "gateway": {"url": "http://a:1"}})
    environ |= {"JEEVES_MAX_CONCURRENCY": "8", "JEEVES_GATEWAY_URL": "http://127.0.0.1:5"}
    config, errors = load_runner_config(environ)
    assert errors == []
    assert config.max_concurrency == 8
    assert config.gateway.url == "http://127.0.0.1:5"


@pytest.mark.parametrize(
    "data,where,needle",
    [
        ({"maxConcurrency": "four"}, "maxConcurrency", "not an integer"),
        ({"maxConcurrency": 0}, "maxConcurrency", "at least 1"),
        ({"prot": 3100}, "prot", "unknown setting"),
        ({"log": {"level": "loud"}}, "log.level", "not a log level"),
        ({"gateway": {"url": "localhost:18789"}}, "gateway.url", "not an http(s) URL"),
        ({"gateway": "http://x"}, "gateway", "must be a JSON object"),
        ({"runners": {"ts": 5}}, "runners.ts", "command string"),
        ({"notifications": {"slackToken": "xoxb"}}, "notifications.slackToken", "unknown"),
        ({"broker": "kafka"}, "broker", "'orm' or 'redis'"),
        ({"heartbeatIntervalMs": 20000, "livenessTimeoutMs": 30000}, "livenessTimeoutMs", "twice"),
    ],
)
def test_bad_config_values_are_reported_with_where_they_are(tmp_path, data, where, needle):
    _, errors = load_runner_config(write_config(tmp_path, data))
    assert any(where in w and needle in m for w, m in errors), errors


def test_a_config_file_that_is_not_json_is_reported(tmp_path):
    _, errors = load_runner_config(write_config(tmp_path, "{port: 3100"))
    assert "not valid JSON" in errors[0][1]


def test_a_missing_config_file_is_reported(tmp_path):
    _, errors = load_runner_config({"JEEVES_CONFIG": str(tmp_path / "nope.json")})
    assert "cannot read the config file" in errors[0][1]


def test_a_bad_environment_value_names_the_variable():
    _, errors = load_runner_config({"JEEVES_MAX_CONCURRENCY": "lots"})
    assert errors == [("JEEVES_MAX_CONCURRENCY", "'lots' is not an integer")]


def run_check(tmp_path: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "JEEVES_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SETTINGS_MODULE": "jeeves_site.settings",
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_manage_py_check_fails_on_bad_configuration(tmp_path):
    environ = write_config(tmp_path, {"maxConcurrency": -1, "gateway": {"tokenPath": "/nope"}})
    result = run_check(tmp_path, environ)
    assert result.returncode != 0
    assert "runner.E001" in result.stderr and "maxConcurrency" in result.stderr
    assert "runner.E002" in result.stderr and "gateway.tokenPath" in result.stderr


@pytest.mark.slow
def test_manage_py_check_passes_on_good_configuration(tmp_path):
    environ = write_config(tmp_path, {"maxConcurrency": 2})
    result = run_check(tmp_path, environ)
    assert result.returncode == 0, result.stderr
