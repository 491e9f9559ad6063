"""Script jobs through execute_run, with real child processes, on each database.

What the process core does alone is tested in test_process.py; these tests check
what reaches the run record: status, error text, output, result, and that
nothing the script started survives it.
"""

from __future__ import annotations

import gc
import os
import sys
import textwrap
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from jeeves_site.database import database_url
from runner import tasks
from runner.api import run_tokens
from runner.execution.executor import execute_run
from runner.execution.scripts import Cancellation, prepare
from runner.models import Run
from tests.factories import JobFactory, RunFactory
from tests.processes import pid_alive, rss_growth, survivors

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

TREE_MARKER = "TEST_TREE_MARKER"


def run_job(**job_fields) -> Run:
    """Create a job and a manual run of it, execute it here, return the finished run."""
    run = RunFactory(job=JobFactory(**job_fields))
    return execute_run(run.pk, worker="test:1")


def path_job(path, **job_fields) -> Run:
    return run_job(source_type="path", script=str(path), **job_fields)


# Choosing what runs


def test_a_py_script_runs_with_the_running_python(script_file):
    path = script_file("which.py", "import sys; print(sys.executable)", mode=0o644)
    finished = path_job(path)
    assert (finished.status, finished.stdout) == ("ok", sys.executable)


def test_a_path_script_runs_in_its_own_directory(script_file):
    path = script_file("where.sh", "pwd", mode=0o644)
    assert path_job(path).stdout == str(path.parent)


def test_an_interpreter_from_the_runners_map_is_used_for_its_extension(script_file, runner_config):
    runner_config(runners={".txt": ["bash", "-c", 'echo "via map: $0"']})
    path = script_file("notes.txt", "ignored", mode=0o644)
    assert path_job(path).stdout == f"via map: {path}"


def test_a_script_whose_interpreter_is_missing_ends_in_error_naming_it(script_file, runner_config):
    runner_config(runners={".js": ["no-such-node-jr"]})
    finished = path_job(script_file("app.js", "console.log(1)"))
    assert (finished.status, finished.exit_code) == ("error", None)
    assert finished.error == "interpreter 'no-such-node-jr' not found"


def test_an_inline_script_whose_shebang_interpreter_is_missing_ends_in_error():
    finished = run_job(script="#!/no/such/ruby\nputs 1\n")
    assert finished.status == "error"
    assert finished.error == "interpreter '/no/such/ruby' not found"


def test_a_file_neither_mapped_nor_executable_ends_in_error_saying_so(script_file):
    path = script_file("tool.rb", "puts 1", mode=0o644)
    finished = path_job(path)
    assert finished.status == "error"
    assert finished.error == (
        f"{path}: extension '.rb' has no interpreter mapped and the file is not executable"
    )


def test_an_executable_file_without_a_mapping_runs_directly(script_file):
    path = script_file("tool", "#!/bin/sh\necho direct\n", mode=0o755)
    assert path_job(path).stdout == "direct"


def test_a_script_file_deleted_after_the_job_was_saved_ends_in_error(script_file):
    path = script_file("gone.sh", "echo never")
    job = JobFactory(source_type="path", script=str(path))
    path.unlink()
    finished = execute_run(RunFactory(job=job).pk, worker="test:1")
    assert (finished.status, finished.error) == ("error", f"script not found: {path}")


# Inline scripts


def test_an_inline_script_runs_with_bash_and_its_file_is_gone_afterwards():
    finished = run_job(script='echo "$0"; echo "$BASH_VERSION" >&2')
    assert finished.status == "ok" and finished.stderr
    assert not os.path.exists(finished.stdout)
    assert not os.path.exists(os.path.dirname(finished.stdout))


def test_an_inline_script_runs_with_the_interpreter_on_its_shebang_line():
    text = f"#!{sys.executable}\nimport sys\nprint(sys.version_info[0], sys.argv[0])\n"
    major, path = run_job(script=text).stdout.split()
    assert major == "3" and not os.path.exists(path)


def test_an_inline_script_file_is_readable_only_by_the_runner_while_it_runs():
    finished = run_job(script='stat -c "%a %u" "$0" "$(dirname "$0")"')
    assert finished.stdout.splitlines() == [f"600 {os.getuid()}", f"700 {os.getuid()}"]


def test_an_inline_script_file_is_gone_after_a_timeout(runner_config):
    runner_config(kill_grace_ms=200)
    finished = run_job(script='echo "$0"; exec sleep 30', timeout_ms=300)
    assert finished.status == "timeout"
    assert finished.stdout.startswith(f"{settings.DATA_DIR / 'inline-scripts'}/jr-inline-")
    assert not os.path.exists(os.path.dirname(finished.stdout))


def test_an_inline_script_lives_in_a_private_directory_of_the_data_dir_named_for_its_worker():
    finished = run_job(script='echo "$0"; stat -c %a "$(dirname "$(dirname "$0")")"')
    path, parent_mode = finished.stdout.splitlines()
    assert os.path.basename(os.path.dirname(path)).startswith(f"jr-inline-{os.getpid()}-")
    assert parent_mode == "700"


def test_a_run_prepared_ahead_of_its_instant_runs_as_one_prepared_at_it():
    """A worker makes a script run's launch while the run waits for its instant
    (``scripts.prepare``, issue 12): same command, environment and file rules."""
    job = JobFactory(script='echo "$0 $JR_RUN_ID $GREETING"', env={"GREETING": "hi"})
    run = Run.load(RunFactory(job=job).pk)
    run.launch = prepare(run)
    path = run.launch.argv[-1]
    assert os.path.exists(path)
    finished = execute_run(run, worker="test:1")
    assert (finished.status, finished.stdout) == ("ok", f"{path} {run.pk} hi")
    assert not os.path.exists(os.path.dirname(path))


@pytest.mark.parametrize("prepared_for", ["test:1", "another-host:9"])
def test_a_prepared_run_gets_the_token_of_the_worker_that_started_it(prepared_for):
    """The run's API token is made with its launch, for the worker preparing it; a run
    started by another worker (it was handed back and taken elsewhere) gets that
    worker's token instead: only the holder's token is accepted."""
    run = Run.load(RunFactory(job=JobFactory(script='echo "$JR_API_TOKEN"')).pk)
    run.launch = prepare(run, prepared_for)
    finished = execute_run(run, worker="test:1")
    assert finished.stdout == run_tokens.token_for(run.pk, "test:1")


def test_a_launch_that_is_never_used_removes_its_file():
    """A run handed back or overtaken before its instant drops its launch: the inline
    script's directory goes with it."""
    launch = prepare(Run.load(RunFactory(job=JobFactory(script="echo never")).pk))
    directory = os.path.dirname(launch.argv[-1])
    assert os.path.isdir(directory)
    del launch
    gc.collect()
    assert not os.path.exists(directory)


def held_run(tmp_path, worker: str = "test:1") -> tuple[Run, object]:
    """A script run due in a second, prepared by ``worker`` as a worker does (its child
    spawned and held); the script notes each time it ran."""
    ran = tmp_path / "ran"
    job = JobFactory(script=f'echo "$JR_RUN_ID" >> {ran}; echo "ran $JR_API_TOKEN"')
    due = timezone.now() + timedelta(seconds=1)
    run = Run.load(RunFactory(job=job, scheduled_for=due).pk)
    tasks._prepare(run)
    return run, run.launch.held


def test_a_run_due_ahead_runs_once_through_the_child_held_for_it(tmp_path, monkeypatch):
    """Issue 12: a worker spawns a run's child ahead of its instant and holds it before
    exec; started, the run releases it: the script runs once, with the run's token."""
    monkeypatch.setattr(tasks, "worker_name", lambda: "test:1")
    run, held = held_run(tmp_path)
    assert held is not None
    finished = execute_run(run, worker="test:1")
    assert (finished.status, finished.stdout) == (
        "ok",
        f"ran {run_tokens.token_for(run.pk, 'test:1')}",
    )
    assert held.proc.returncode == 0  # the held child was the script
    assert (tmp_path / "ran").read_text() == f"{run.pk}\n"


def test_a_held_child_whose_run_never_starts_exits_without_running(tmp_path, monkeypatch):
    """A run handed back, overtaken or skipped drops its launch: the held child reads
    end of file and exits unrun, and its inline script's directory goes too."""
    monkeypatch.setattr(tasks, "worker_name", lambda: "test:1")
    run, held = held_run(tmp_path)
    child, directory = held.proc, os.path.dirname(run.launch.argv[-1])
    del run, held
    gc.collect()
    assert child.wait(timeout=10) == 125
    assert not (tmp_path / "ran").exists()
    assert not os.path.exists(directory)


def test_a_run_started_by_another_worker_spawns_afresh_and_drops_the_held_child(
    tmp_path, monkeypatch
):
    """The held child's environment has the preparing worker's token; a run taken by
    another worker gets a child with that worker's token, and the held one exits unrun."""
    monkeypatch.setattr(tasks, "worker_name", lambda: "another-host:9")
    run, held = held_run(tmp_path)
    child = held.proc
    finished = execute_run(run, worker="test:1")
    assert finished.stdout == f"ran {run_tokens.token_for(run.pk, 'test:1')}"
    assert child.wait(timeout=10) == 125
    assert (tmp_path / "ran").read_text() == f"{run.pk}\n"


def test_a_held_child_not_for_the_starting_worker_is_discarded_as_the_run_starts(
    tmp_path, monkeypatch
):
    """Its descriptors and its place among the held are given back at the start, not
    when the run, spawned afresh, ends (helper review)."""
    monkeypatch.setattr(tasks, "worker_name", lambda: "another-host:9")
    run, held = held_run(tmp_path)
    run.start("test:1", timezone.now())
    running = run.launch.start(run, timeout_s=10.0, grace_s=1.0, tail_lines=10)
    assert held.proc.returncode == 125
    assert running.pid != held.pid
    assert running.wait().stdout == f"ran {run_tokens.token_for(run.pk, 'test:1')}"
    run.launch.close()


def test_a_run_due_now_is_not_held(monkeypatch):
    """Holding gains nothing for a run due now (a manual run): it is spawned as it starts."""
    monkeypatch.setattr(tasks, "worker_name", lambda: "test:1")
    run = Run.load(RunFactory(job=JobFactory(script="true")).pk)
    tasks._prepare(run)
    assert run.launch.held is None


def test_a_script_written_after_its_run_was_prepared_for_still_runs(tmp_path):
    """A launch that could not be made ahead (the file was not there yet) is made when
    the run starts, and only then is a missing script an error."""
    path = tmp_path / "late.sh"
    run = Run.load(RunFactory(job=JobFactory(source_type="path", script=str(path))).pk)
    tasks._prepare(run)
    assert not hasattr(run, "launch")
    path.write_text("echo arrived\n")
    assert execute_run(run, worker="test:1").stdout == "arrived"


def test_a_script_runs_with_the_umask_the_runner_was_started_with(monkeypatch):
    monkeypatch.setenv("JEEVES_INHERITED_UMASK", "0027")
    previous = os.umask(0o077)  # what manage.py and the web app run under
    try:
        finished = run_job(script='umask; echo "[$JEEVES_INHERITED_UMASK]"')
    finally:
        os.umask(previous)
    assert finished.stdout.splitlines() == ["0027", "[]"]


# Environment and arguments


def test_env_and_args_reach_an_inline_script():
    finished = run_job(script='echo "$COLOR:$1:$2"', env={"COLOR": "blue"}, args=["a b", "c"])
    assert finished.stdout == "blue:a b:c"


def test_a_job_env_cannot_override_any_variable_the_runner_sets():
    names = ["JR_JOB_ID", "JR_RUN_ID", "JR_DB_PATH", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"]
    script = "; ".join(f'echo "${name}"' for name in names)
    # The factory skips validation, as a row written before a rule existed would.
    run = RunFactory(job=JobFactory(id="real", script=script, env=dict.fromkeys(names, "forged")))
    finished = execute_run(run.pk, worker="test:1")
    assert "forged" not in finished.stdout
    assert finished.stdout.splitlines()[:2] == ["real", str(run.pk)]


# The runner's secrets and settings, as a runner configured with all of them has them.
RUNNER_SECRETS = {
    "DJANGO_SECRET_KEY": "s3cret-key",
    "DJANGO_SECRET_KEY_FILE": "/etc/jeeves/secret_key",
    "OPENCLAW_GATEWAY_TOKEN": "gw-token",
    "OPENCLAW_GATEWAY_TOKEN_FILE": "/etc/jeeves/gateway_token",
    "JEEVES_GATEWAY_TOKEN_PATH": "/etc/jeeves/gateway_token",
    "JEEVES_SLACK_TOKEN_PATH": "/etc/jeeves/slack_token",
    "JEEVES_DATA_DIR": "/var/lib/jeeves",
    "JEEVES_CONFIG": "/etc/jeeves/config.json",
    "JEEVES_REDIS_URL": "redis://:broker-password@127.0.0.1:6379/0",
    "JEEVES_LOG_FILE": "/var/log/jeeves.log",
}


def test_a_script_sees_none_of_the_runners_secrets_and_all_it_needs(monkeypatch):
    for name, value in RUNNER_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("JEEVES_TEST_UNRELATED", "kept")
    finished = run_job(script="env")
    env = dict(line.split("=", 1) for line in finished.stdout.splitlines() if "=" in line)
    assert not set(RUNNER_SECRETS) & set(env)
    assert not [v for v in RUNNER_SECRETS.values() if v in finished.stdout]
    assert env["DATABASE_URL"] == database_url()
    assert env["DJANGO_SETTINGS_MODULE"] == "jeeves_site.settings"
    assert {"JR_JOB_ID", "JR_RUN_ID", "JR_DB_PATH", "PYTHONPATH"} <= set(env)
    assert env["JEEVES_TEST_UNRELATED"] == "kept"


def test_a_script_without_the_runners_secrets_still_uses_the_client(monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "s3cret-key")
    monkeypatch.setenv("JEEVES_DATA_DIR", str(settings.DATA_DIR))
    text = textwrap.dedent(f"""\
        #!{sys.executable}
        from runner.client import get_runner_client
        with get_runner_client() as jr:
            jr.set_state("env-test", "k", 42)
            print(jr.get_state("env-test", "k"))
    """)
    finished = run_job(script=text)
    assert (finished.status, finished.stdout) == ("ok", "42"), finished.stderr


def test_the_runner_gives_a_script_this_database():
    finished = run_job(script='echo "$DATABASE_URL"; echo "[$JR_DB_PATH]"')
    url, db_path = finished.stdout.splitlines()
    assert url == database_url()
    sqlite_file = settings.DATABASES["default"]["NAME"] if connection.vendor == "sqlite" else ""
    assert db_path == f"[{sqlite_file}]"


def test_the_database_a_script_is_given_follows_a_change_of_settings(monkeypatch, tmp_path):
    """The run-independent variables are made once (issue 12), but anew when what they
    come from changes: the database, and the working directory a relative SQLite name
    resolves against (probe finding)."""
    from types import SimpleNamespace

    from runner.execution.scripts import runner_environment

    run = SimpleNamespace(job_id="j", pk=7)
    db = dict(settings.DATABASES["default"])
    for name in ("one.sqlite3", "two.sqlite3"):
        sqlite = {**db, "ENGINE": "django.db.backends.sqlite3", "NAME": name}
        monkeypatch.setattr(settings, "DATABASES", {"default": sqlite})
        for directory in ("a", "b"):
            (tmp_path / directory).mkdir(exist_ok=True)
            monkeypatch.chdir(tmp_path / directory)
            env = runner_environment(run)
            assert env["DATABASE_URL"] == f"sqlite:///{tmp_path / directory / name}"
            assert env["JR_DB_PATH"] == name
    monkeypatch.setattr(settings, "DATABASES", {"default": db})
    assert runner_environment(run)["DATABASE_URL"] == database_url()
    monkeypatch.setenv("PYTHONPATH", "/extra")
    assert runner_environment(run)["PYTHONPATH"].endswith(f"{os.pathsep}/extra")


# Timeouts, cancellation and leftovers


def test_a_timed_out_script_with_a_child_and_a_grandchild_ignoring_sigterm_leaves_none_alive(
    runner_config,
):
    runner_config(kill_grace_ms=300)
    marker = uuid.uuid4().hex
    script = textwrap.dedent("""
        bash -c 'trap "" TERM; sleep 60 & echo "grandchild $!"; wait' &
        echo "child $!"
        sleep 60
    """)
    finished = run_job(script=script, timeout_ms=500, env={TREE_MARKER: marker})
    pids = dict(line.split() for line in finished.stdout.splitlines())
    assert finished.status == "timeout" and set(pids) == {"child", "grandchild"}
    assert finished.error == "timed out after 500 ms; its processes were ended"
    assert not [pid for pid in pids.values() if pid_alive(int(pid))]
    assert not survivors(TREE_MARKER, marker, within=0.2)


def test_a_cancelled_run_ends_in_error_with_the_reason_given():
    cancel = Cancellation()
    cancel.cancel("stopped by the test")
    run = RunFactory(job=JobFactory(script="sleep 30"))
    finished = execute_run(run.pk, worker="test:1", cancel=cancel)
    assert (finished.status, finished.error) == ("error", "stopped by the test")


# Output


def test_a_script_writing_200_mb_keeps_memory_bounded_and_the_last_lines(
    script_file, runner_config
):
    runner_config(output_tail_lines=3)
    writer = script_file(
        "flood.py",
        textwrap.dedent("""
            import sys
            out, pad = sys.stdout.buffer, b"x" * 90
            for block in range(200):
                lines = (b"%09d" % (block * 10000 + i) + pad + b"\\n" for i in range(10000))
                out.write(b"".join(lines))
        """),
    )
    with rss_growth() as growth:
        finished = path_job(writer)
    assert finished.status == "ok" and finished.stdout_bytes == 200_000_000
    assert finished.stdout.splitlines() == [
        f"{n:09d}" + "x" * 90 for n in (1999997, 1999998, 1999999)
    ]
    assert finished.output_truncated
    assert growth[0] < 50 * 2**20, f"RSS grew by {growth[0] / 2**20:.1f} MiB"


def test_invalid_utf8_output_is_stored_with_replacement_characters():
    finished = run_job(script=r"printf 'bad \xff\xfe end\n'; printf 'caf\xc3' >&2")
    assert (finished.stdout, finished.stderr) == ("bad \ufffd\ufffd end", "caf\ufffd")
    assert (finished.stdout_bytes, finished.stderr_bytes) == (11, 4)


def test_a_nul_byte_in_the_output_is_stored_as_a_replacement_character():
    finished = run_job(script=r"printf 'a\0b\n'; printf 'c\0d' >&2; exit 1")
    assert finished.status == "error"
    assert (finished.stdout, finished.stderr) == ("a\ufffdb", "c\ufffdd")
    assert finished.error.endswith("c\ufffdd")


# JR_RESULT


def test_a_result_line_sets_the_runs_tokens_and_result_meta():
    finished = run_job(script="""echo 'JR_RESULT:{"tokens": 42, "model": "m"}'""")
    assert (finished.tokens, finished.result_meta) == (42, {"tokens": 42, "model": "m"})


def test_malformed_result_lines_leave_the_run_ok_without_a_result():
    script = "echo 'JR_RESULT:{broken'; echo 'JR_RESULT:[1]'; echo 'JR_RESULT:'; echo done"
    finished = run_job(script=script)
    assert (finished.status, finished.tokens, finished.result_meta) == ("ok", None, None)


def test_a_result_holding_a_nul_escape_is_stored_with_a_replacement_character():
    finished = run_job(script=r"""echo 'JR_RESULT:{"note": "a\u0000b", "tokens": 1}'""")
    assert finished.result_meta == {"note": "a\ufffdb", "tokens": 1}
