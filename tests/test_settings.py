"""Settings come from the environment and the original runner's config file."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from jeeves_site.database import database_from_environment
from jeeves_site.env import env_bool, env_int, env_secret
from jeeves_site.listen_address import bind_address
from jeeves_site.runner_config import load_runner_config, log_file_problem
from jeeves_site.secret_key import resolve_secret_key

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "original_runner"


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


def errors_of(problems):
    return [(p.where, p.message) for p in problems if p.level == "error"]


def warnings_of(problems):
    return [(p.where, p.message) for p in problems if p.level == "warning"]


def test_defaults_apply_without_a_config_file():
    config, problems = load_runner_config({})
    assert problems == []
    assert (config.port, config.host, config.max_concurrency) == (1937, "127.0.0.1", 128)
    assert config.gateway_url == "http://127.0.0.1:18789"
    assert config.jobs_dir == ""


def test_the_file_the_original_runners_init_writes_is_accepted_whole():
    config, problems = load_runner_config({"JEEVES_CONFIG": str(FIXTURES / "config.init.json")})
    assert problems == []
    assert (config.port, config.host) == (1937, "0.0.0.0")
    assert config.db_path == str(FIXTURES / "data" / "runner.sqlite")
    assert (config.state_cleanup_interval_ms, config.reconcile_interval_ms) == (3600000, 60000)
    assert config.notifications.default_on_failure == ""
    assert config.logging.level == "info"
    assert config.jobs_dir == str(FIXTURES / "scripts" / "jobs")


def test_every_key_of_the_original_runners_current_config_is_read():
    config, problems = load_runner_config({"JEEVES_CONFIG": str(FIXTURES / "config.full.json")})
    assert problems == []
    assert (config.port, config.host, config.max_concurrency) == (3100, "127.0.0.1", 2)
    assert (config.run_retention_days, config.shutdown_grace_ms) == (14, 10000)
    assert config.notifications.slack_token_path == str(FIXTURES / "secrets" / "slack-token")
    assert config.notifications.default_on_failure == "C0FAIL"
    assert (config.logging.level, config.logging.file) == (
        "debug",
        str(FIXTURES / "logs" / "runner.log"),
    )
    assert config.gateway_api_key == "gw-secret-key"
    assert "gw-secret-key" not in repr(config)
    assert config.runners[".ts"] == ["node", "--import", "tsx/esm"]
    assert config.runners[".py"] == [sys.executable]
    assert config.jobs_dir == str(FIXTURES / "scripts" / "jobs")


def test_the_original_runners_deprecated_keys_are_migrated_with_a_warning(tmp_path):
    environ = write_config(
        tmp_path,
        {
            "gateway": {"url": "http://127.0.0.1:9999", "tokenPath": "/etc/gw"},
            "log": {"level": "DEBUG"},
            "cursorCleanupIntervalMs": 5000,
            "bind": "127.0.0.2",
        },
    )
    config, problems = load_runner_config(environ)
    assert errors_of(problems) == []
    assert config.gateway_url == "http://127.0.0.1:9999"
    assert config.gateway_token_path == "/etc/gw"
    assert config.logging.level == "debug"
    assert config.state_cleanup_interval_ms == 5000
    assert config.host == config.bind == "127.0.0.2"
    deprecated = {w.rsplit(": ", 1)[1]: m for w, m in warnings_of(problems)}
    assert set(deprecated) == {
        "gateway",
        "gateway.tokenPath",
        "log",
        "cursorCleanupIntervalMs",
        "bind",
    }
    assert deprecated["log"] == "is deprecated: use logging"


def test_a_new_key_wins_over_its_deprecated_form(tmp_path):
    environ = write_config(
        tmp_path, {"gatewayUrl": "http://127.0.0.1:1", "gateway": {"url": "http://127.0.0.1:2"}}
    )
    config, _ = load_runner_config(environ)
    assert config.gateway_url == "http://127.0.0.1:1"


def test_environment_variables_override_the_config_file(tmp_path):
    environ = write_config(
        tmp_path, {"maxConcurrency": 2, "gatewayUrl": "http://a:1", "port": 3100}
    )
    environ |= {
        "JEEVES_MAX_CONCURRENCY": "8",
        "JEEVES_GATEWAY_URL": "http://127.0.0.1:5",
        "JEEVES_PORT": "4000",
    }
    config, problems = load_runner_config(environ)
    assert problems == []
    assert (config.max_concurrency, config.port) == (8, 4000)
    assert config.gateway_url == "http://127.0.0.1:5"


def test_a_config_json_in_the_data_directory_is_read_when_jeeves_config_is_unset(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"port": 3200}))
    config, _ = load_runner_config({}, data_dir=tmp_path)
    assert (config.port, config.config_file) == (3200, str(tmp_path / "config.json"))


@pytest.mark.parametrize(
    "data,where,needle",
    [
        ({"maxConcurrency": "four"}, "maxConcurrency", "not an integer"),
        ({"maxConcurrency": 0}, "maxConcurrency", "at least 1"),
        ({"maxConcurrency": True}, "maxConcurrency", "True is not an integer"),
        ({"port": 70000}, "port", "at most 65535"),
        ({"logging": {"level": "loud"}}, "logging.level", "must be 'trace'"),
        ({"gatewayUrl": "localhost:18789"}, "gatewayUrl", "not an http(s) URL"),
        ({"notifications": "C1"}, "notifications", "must be a JSON object"),
        ({"runners": {"ts": 5}}, "runners.ts", "command string"),
        ({"runners": {"ts": []}}, "runners.ts", "command string"),
        ({"notifications": {"defaultOnFailure": 5}}, "notifications.defaultOnFailure", "string"),
        ({"broker": "kafka"}, "broker", "'orm' or 'redis'"),
        ({"heartbeatIntervalMs": 20000, "livenessTimeoutMs": 30000}, "livenessTimeoutMs", "twice"),
        ({"dbPath": "a\x00b"}, "dbPath", "NUL"),
        ({"dbPath": "\ud800"}, "dbPath", "lone surrogate"),
        ({"host": "\x00"}, "host", "NUL"),
        ({"host": "127.0.0.1\n"}, "host", "not an address or host name"),
        ({"host": "0.0.0.0 "}, "host", "not an address or host name"),
        ({"runners": {"sh": "bash \x00"}}, "runners.sh.1", "NUL"),
        ({"runners": {"s\x00h": "bash"}}, "runners.s\\x00h.[key]", "NUL"),  # shown, not sent
        ({"logging": {"file": "\x00"}}, "logging.file", "NUL"),
        ({"notifications": {"slackTokenPath": "\x00"}}, "notifications.slackTokenPath", "NUL"),
        ({"redisUrl": "redis://\x00"}, "redisUrl", "NUL"),
    ],
)
def test_bad_config_values_are_reported_with_where_they_are(tmp_path, data, where, needle):
    config, problems = load_runner_config(write_config(tmp_path, data))
    assert any(w.endswith(f": {where}") and needle in m for w, m in errors_of(problems)), problems
    assert config.max_concurrency == 128  # a bad value falls back to its default


def test_a_path_under_an_unknown_users_home_stays_as_written_as_in_a_shell(tmp_path):
    config, problems = load_runner_config(
        write_config(tmp_path, {"scriptsDir": "~no-such-user-here/x"})
    )
    assert config.scripts_dir == str(tmp_path / "~no-such-user-here" / "x")
    assert not errors_of(problems)


def test_unknown_keys_are_warnings_and_ignored_as_the_original_ignores_them(tmp_path):
    config, problems = load_runner_config(
        write_config(tmp_path, {"prot": 3100, "notifications": {"slackToken": "x"}, "port": 3101})
    )
    assert errors_of(problems) == []
    assert {w.rsplit(": ", 1)[1] for w, _ in warnings_of(problems)} == {
        "prot",
        "notifications.slackToken",
    }
    assert config.port == 3101


def test_a_config_file_that_is_not_json_is_reported(tmp_path):
    _, problems = load_runner_config(write_config(tmp_path, "{port: 3100"))
    assert "not valid JSON" in problems[0].message


def test_a_missing_config_file_is_reported(tmp_path):
    _, problems = load_runner_config({"JEEVES_CONFIG": str(tmp_path / "nope.json")})
    assert "cannot read the config file" in problems[0].message


def test_a_bad_environment_value_names_the_variable():
    _, problems = load_runner_config({"JEEVES_MAX_CONCURRENCY": "lots"})
    assert errors_of(problems) == [("JEEVES_MAX_CONCURRENCY", "'lots' is not an integer")]


def test_code_and_tests_change_the_runtime_object_by_field_name_types_still_checked():
    config, _ = load_runner_config({})
    assert dataclasses.replace(config, port=8080, heartbeat_interval_ms=50).port == 8080
    with pytest.raises(ValueError, match="valid integer"):
        dataclasses.replace(config, port="eighty")


def test_the_listen_address_is_host_and_port_in_gunicorns_form():
    assert bind_address("0.0.0.0", 1937) == "0.0.0.0:1937"
    assert bind_address("::1", 3100) == "[::1]:3100"


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
    assert (
        "(runner.E001)" in result.stderr
        and "maxConcurrency: -1 must be at least 1" in result.stderr
    )


@pytest.mark.slow
def test_manage_py_check_passes_the_original_init_file_warning_of_the_exposed_host(tmp_path):
    # A copy, so that its relative dbPath lands in tmp_path and not in the source tree.
    config = tmp_path / "config.json"
    config.write_text((FIXTURES / "config.init.json").read_text())
    result = run_check(tmp_path, {"JEEVES_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert "ERRORS" not in result.stderr + result.stdout
    assert "(runner.W003) host: the web server listens on 0.0.0.0" in result.stderr + result.stdout


@pytest.mark.slow
def test_start_binds_the_host_and_port_of_the_config_file(tmp_path):
    environ = write_config(tmp_path, {"port": 3111, "host": "127.0.0.2"})
    env = {"PATH": "/usr/bin:/bin", "JEEVES_DATA_DIR": str(tmp_path / "data"), **environ}
    result = subprocess.run(
        [sys.executable, "-m", "jeeves_site.listen_address"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "127.0.0.2:3111", result.stderr
    assert "jeeves_site.listen_address" in (ROOT / "scripts" / "start").read_text()


@pytest.mark.slow
def test_manage_py_check_passes_on_good_configuration(tmp_path):
    environ = write_config(tmp_path, {"maxConcurrency": 2})
    result = run_check(tmp_path, environ)
    assert result.returncode == 0, result.stderr


def test_the_log_file_is_created_private(tmp_path):
    import logging

    from jeeves_site.private_files import PrivateWatchedFileHandler

    path = tmp_path / "runner.log"
    handler = PrivateWatchedFileHandler(str(path))
    handler.emit(logging.makeLogRecord({"msg": "hello"}))
    handler.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "hello" in path.read_text()


@pytest.mark.slow
def test_logging_file_of_the_config_receives_the_log(tmp_path):
    log = tmp_path / "runner.log"
    environ = write_config(tmp_path, {"logging": {"level": "debug", "file": "runner.log"}})
    result = run_check(tmp_path, environ)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


@pytest.mark.slow
def test_start_says_why_it_stopped_when_its_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "JEEVES_DATA_DIR": str(tmp_path / "data"),
            "JEEVES_PORT": str(port),
        }
        result = subprocess.run(
            [str(ROOT / "scripts" / "start")], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-3:]
    assert any(f"the web server on 127.0.0.1:{port} stopped" in line for line in last), last
    assert "set JEEVES_PORT" in result.stderr


@pytest.mark.slow
def test_a_bad_variable_stops_manage_py_with_one_line_naming_it(tmp_path):
    result = run_check(tmp_path, {"JEEVES_SESSION_AGE_S": "abc"})
    assert result.returncode == 1
    assert result.stderr == "manage.py: JEEVES_SESSION_AGE_S='abc' is not an integer\n"


@pytest.mark.parametrize(
    "data",
    [
        {"maxConcurrency": "c" * 4000},
        {"maxConcurrency": int("9" * 4000)},
        {"runRetentionDays": -int("9" * 4000)},
        {"logging": {"level": "l" * 4000}},
        {"notifications": {"defaultOnFailure": ["c" * 4000]}},
        {"runners": {"a\nb" + "c" * 4000: 5}},
    ],
    ids=["text", "huge-integer", "huge-negative", "choice", "list", "key"],
)
def test_a_bad_config_value_is_named_on_one_short_line(tmp_path, data):
    _, problems = load_runner_config(write_config(tmp_path, data))
    [(where, message)] = errors_of(problems)
    assert len(f"{where}: {message}".splitlines()) == 1
    assert len(where) < len(str(tmp_path)) + 120 and len(message) < 200, (where, message)


def settings_answer(tmp_path: Path, code: str, **env: str) -> str:
    """What ``code`` prints with this project's settings loaded in a fresh process."""
    environ = {
        "PATH": "/usr/bin:/bin",
        "JEEVES_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SETTINGS_MODULE": "jeeves_site.settings",
        **env,
    }
    setup = "import django; django.setup(); from django.conf import settings; "
    result = subprocess.run(
        [sys.executable, "-c", setup + code], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("bind", "host_header"),
    [("::1", "[::1]"), ("fd00::5", "[fd00::5]"), ("127.0.0.2", "127.0.0.2")],
)
def test_requests_to_the_bound_address_are_allowed_ipv6_in_brackets(tmp_path, bind, host_header):
    code = (
        "from django.http.request import validate_host; "
        f"print(validate_host({host_header!r}, settings.ALLOWED_HOSTS))"
    )
    assert settings_answer(tmp_path, code, JEEVES_BIND=bind) == "True"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost", "0:0:0:0:0:0:0:1"])
def test_loopback_is_an_address_in_127_0_0_0_8_or_1_or_exactly_localhost(host):
    from jeeves_site.runner_config import is_loopback

    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1.nip.io", "127.example.com", "localhost.example.com", "0.0.0.0", "::", "10.0.0.1"],
)
def test_a_name_that_only_looks_like_loopback_is_not(host):
    from jeeves_site.runner_config import is_loopback

    assert not is_loopback(host)


def test_a_log_file_that_cannot_be_opened_is_a_config_problem_naming_its_key(tmp_path):
    missing = tmp_path / "no-such-dir" / "runner.log"
    environ = write_config(tmp_path, {"logging": {"file": str(missing)}})
    config, problems = load_runner_config(environ)
    assert problems == []
    where, message, _ = log_file_problem(config, environ)
    assert where == f"{tmp_path / 'config.json'}: logging.file" and "does not exist" in message
    environ = {"JEEVES_LOG_FILE": str(tmp_path)}
    config, _ = load_runner_config(environ)
    assert log_file_problem(config, environ)[:2] == (
        "JEEVES_LOG_FILE",
        f"{tmp_path} is a directory",
    )
    assert log_file_problem(load_runner_config({})[0], {}) is None


@pytest.mark.slow
def test_check_reports_a_log_file_it_cannot_open_without_a_traceback(tmp_path):
    missing = tmp_path / "no-such-dir" / "runner.log"
    result = run_check(tmp_path, {"JEEVES_LOG_FILE": str(missing)})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert f"(runner.E001) JEEVES_LOG_FILE: the directory {missing.parent}" in result.stderr
