"""Tests for runner.execution.process, with real child processes.

Every script gets an environment carrying a per-test marker; after each test no
live process may carry it (the `env` fixture checks, and kills any it finds).
"""

import contextlib
import math
import os
import resource
import stat
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from runner.execution import process, spawn, tree
from runner.execution.output import MAX_LINE_BYTES, parse_result_line
from runner.execution.process import (
    ScriptNotRunnable,
    default_interpreters,
    inline_script_file,
    resolve_command,
    run_process,
)
from tests.processes import SETTLE_S, pid_alive, rss_growth, survivors

# A safety net so a regression fails the test instead of hanging the suite.
pytestmark = pytest.mark.timeout(30)

MARKER = "JR_TEST_MARKER"
# run_process's own bound on reading after the child is gone, plus slack.
DRAIN_BOUND_S = 2.0
PY = sys.executable


def _survivors(marker: str, within: float = SETTLE_S) -> list[psutil.Process]:
    return survivors(MARKER, marker, within)


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    """A minimal environment; fails the test if any process carrying it survives."""
    marker = uuid.uuid4().hex
    yield {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", MARKER: marker}
    left = _survivors(marker)
    for proc in left:
        proc.kill()
    assert not left, f"processes left running: {left}"


def write_script(directory: Path, name: str, text: str, mode: int = 0o644) -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    path.chmod(mode)
    return str(path)


def run(argv: list[str], env: dict[str, str], **options):
    options = {"timeout_s": 10.0, "grace_s": 1.0, "tail_lines": 100, **options}
    return run_process(argv, env=env, **options)


def run_python(code: str, env: dict[str, str], **options):
    return run([PY, "-c", textwrap.dedent(code)], env, **options)


# Exit status


def test_a_script_that_exits_zero_reports_exit_code_zero_and_its_output(env):
    result = run(["bash", "-c", "echo out; echo err >&2"], env)

    assert (result.exit_code, result.signal, result.error, result.timed_out) == (
        0,
        None,
        None,
        False,
    )
    assert (result.stdout, result.stderr) == ("out", "err")
    assert (result.stdout_bytes, result.stderr_bytes) == (4, 4)
    assert not result.stdout_truncated and not result.stderr_truncated


def test_a_non_zero_exit_is_reported_with_its_code(env):
    result = run(["bash", "-c", "echo failing >&2; exit 3"], env)

    assert (result.exit_code, result.error, result.stderr) == (3, None, "failing")


def test_a_script_killed_by_a_signal_reports_the_signal_and_no_exit_code(env):
    result = run(["bash", "-c", "kill -KILL $$"], env)

    assert (result.exit_code, result.signal, result.timed_out) == (None, 9, False)


def test_stdin_is_empty(env):
    result = run(["cat"], env, timeout_s=5.0)

    assert (result.exit_code, result.stdout, result.timed_out) == (0, "", False)


# Resolving and starting


def test_a_missing_interpreter_is_reported_as_an_error_instead_of_raising(env, tmp_path):
    script = write_script(tmp_path, "job.js", "console.log('hi')\n")
    argv = resolve_command(script, {".js": ["jr-no-such-node"]})

    result = run(argv, env)

    assert result.exit_code is None
    assert result.error == "interpreter 'jr-no-such-node' not found"


def test_an_environment_too_large_for_exec_is_named_as_such(env):
    result = run(["bash", "-c", "echo never"], {**env, "BIG": "x" * 200_000})

    assert result.exit_code is None
    assert "too large to start a program" in result.error
    assert "put large data in a file" in result.error


def test_a_missing_shebang_interpreter_is_reported_as_an_error(env, tmp_path):
    script = write_script(tmp_path, "tool", "#!/nonexistent/bin/jr-sh\n", mode=0o755)

    result = run(resolve_command(script, {}), env)

    assert result.exit_code is None
    assert "#! line" in result.error


def test_a_file_that_cannot_be_executed_is_reported_as_permission_denied(env, tmp_path):
    script = write_script(tmp_path, "tool", "echo hi\n", mode=0o644)

    result = run([script], env)

    assert result.error == f"permission denied running {script!r}"


def test_a_missing_working_directory_is_reported_as_an_error(env, tmp_path):
    result = run(["true"], env, cwd=str(tmp_path / "gone"))

    assert result.error == f"working directory not found: {tmp_path / 'gone'}"


def test_a_file_neither_mapped_nor_executable_is_not_runnable(tmp_path):
    script = write_script(tmp_path, "notes.txt", "hello\n", mode=0o644)

    with pytest.raises(ScriptNotRunnable, match=r"no interpreter mapped.*not executable"):
        resolve_command(script, default_interpreters())


def test_a_missing_script_is_not_runnable(tmp_path):
    with pytest.raises(ScriptNotRunnable, match="script not found"):
        resolve_command(str(tmp_path / "nope.py"), default_interpreters())


def test_the_interpreter_is_chosen_by_extension_as_a_name_or_an_argv_prefix(tmp_path):
    script = write_script(tmp_path, "job.py", "print(1)\n")
    interpreters = {".py": [PY, "-u"], ".sh": "bash"}
    shell = write_script(tmp_path, "job.sh", "echo 1\n")

    assert resolve_command(script, interpreters) == [PY, "-u", script]
    assert resolve_command(shell, interpreters) == ["bash", shell]


def test_an_executable_file_with_a_shebang_and_no_mapping_runs_directly(env, tmp_path):
    script = write_script(tmp_path, "tool", "#!/usr/bin/env bash\necho direct\n", mode=0o755)
    argv = resolve_command(script, default_interpreters())

    result = run(argv, env)

    assert argv == [script]
    assert (result.exit_code, result.stdout) == (0, "direct")


def test_arguments_reach_the_script(env, tmp_path):
    script = write_script(tmp_path, "args.sh", 'printf "%s\\n" "$@"\n')
    argv = resolve_command(script, default_interpreters())

    result = run([*argv, "one two", "", "três"], env)

    assert result.stdout == "one two\n\ntrês"


def test_only_the_given_environment_reaches_the_script(env, monkeypatch):
    monkeypatch.setenv("JR_TEST_LEAK", "leaked")

    result = run(
        ["bash", "-c", 'echo "$GREETING/${JR_TEST_LEAK-unset}"'], {**env, "GREETING": "hi"}
    )

    assert result.stdout == "hi/unset"


def test_the_script_runs_in_the_given_working_directory(env, tmp_path):
    result = run(["pwd"], env, cwd=str(tmp_path))

    assert result.stdout == str(tmp_path)


# Inline scripts


def test_an_inline_script_file_is_private_and_removed_afterwards(env):
    with inline_script_file("echo inline\n", ".sh") as path:
        info, folder = os.stat(path), os.stat(os.path.dirname(path))
        result = run(resolve_command(path, default_interpreters()), env)

    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.getuid()
    assert stat.S_IMODE(folder.st_mode) == 0o700 and folder.st_uid == os.getuid()
    assert result.stdout == "inline"
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


def test_an_inline_script_file_is_removed_after_a_timeout(env):
    with inline_script_file("sleep 60\n", ".sh") as path:
        result = run(["bash", path], env, timeout_s=0.2, grace_s=0.5)

    assert result.timed_out
    assert not os.path.exists(os.path.dirname(path))


def test_an_inline_script_file_is_removed_when_the_block_raises():
    with pytest.raises(RuntimeError), inline_script_file("print(1)\n", ".py") as path:
        raise RuntimeError("boom")

    assert not os.path.exists(os.path.dirname(path))


# Timeouts and leftover processes


def test_a_timed_out_script_that_handles_sigterm_ends_without_waiting_for_the_grace(env):
    script = "trap 'echo got TERM; exit 5' TERM; sleep 60 & wait"

    started = time.monotonic()
    result = run(["bash", "-c", script], env, timeout_s=0.3, grace_s=20.0)

    assert (result.timed_out, result.exit_code, result.stdout) == (True, 5, "got TERM")
    assert time.monotonic() - started < 0.3 + DRAIN_BOUND_S


def test_a_cancelled_script_is_ended_like_a_timeout_and_says_so(env):
    cancel = threading.Event()
    script = "echo started; sleep 60 & wait"
    threading.Timer(0.3, cancel.set).start()

    started = time.monotonic()
    result = run(["bash", "-c", script], env, timeout_s=None, grace_s=0.5, cancel=cancel)

    assert result.cancelled and not result.timed_out
    assert result.stdout == "started"
    assert time.monotonic() - started < 0.3 + 0.5 + DRAIN_BOUND_S


def test_a_timed_out_tree_ignoring_sigterm_leaves_no_process_alive_after_the_grace(env):
    script = """
        bash -c 'trap "" TERM; sleep 60 & echo "grandchild $!"; wait' &
        echo "child $!"
        sleep 60
    """
    timeout_s, grace_s = 1.0, 0.5

    started = time.monotonic()
    result = run(["bash", "-c", script], env, timeout_s=timeout_s, grace_s=grace_s)
    elapsed = time.monotonic() - started

    pids = dict(line.split() for line in result.stdout.splitlines())
    assert set(pids) == {"child", "grandchild"}
    assert result.timed_out and result.signal is not None
    assert timeout_s + grace_s <= elapsed < timeout_s + grace_s + DRAIN_BOUND_S
    assert not [pid for pid in pids.values() if pid_alive(int(pid))]
    assert not _survivors(env[MARKER], within=0.2)


def test_a_timed_out_script_whose_child_left_the_session_leaves_nothing_alive(env):
    script = """
        setsid sleep 60 </dev/null >/dev/null 2>&1 &
        echo "$!"
        sleep 60
    """

    result = run(["bash", "-c", script], env, timeout_s=0.5, grace_s=0.5)

    assert result.timed_out
    assert not pid_alive(int(result.stdout))
    assert not _survivors(env[MARKER], within=0.2)


def test_a_grandchild_holding_stdout_after_the_script_exits_does_not_hang(env):
    started = time.monotonic()
    result = run(["bash", "-c", "sleep 60 & echo started"], env)

    assert (result.exit_code, result.stdout) == (0, "started")
    assert time.monotonic() - started < DRAIN_BOUND_S
    assert not _survivors(env[MARKER], within=0.2)


def test_a_background_process_left_in_the_group_is_killed_when_the_script_exits(env):
    result = run(["bash", "-c", "sleep 60 </dev/null >/dev/null 2>&1 & echo $!"], env)

    assert result.exit_code == 0
    assert not _survivors(env[MARKER], within=0.2)


def test_a_grandchild_that_left_the_session_and_holds_stdout_does_not_hang(env, tmp_path):
    flag = tmp_path / "escaped"
    helper = f"import os, time; os.setsid(); open({str(flag)!r}, 'w').close(); time.sleep(60)"
    # The script exits only once its helper is in a session of its own.
    script = f'{PY} -c "{helper}" & until [ -e {flag} ]; do sleep 0.01; done; echo exiting'

    started = time.monotonic()
    result = run(["bash", "-c", script], env)

    assert (result.exit_code, result.stdout) == (0, "exiting")
    assert time.monotonic() - started < DRAIN_BOUND_S + 1.0
    assert not _survivors(env[MARKER], within=0.2)


def test_a_daemon_that_left_the_session_is_killed_when_the_script_exits(env):
    script = """
        setsid sleep 60 </dev/null >/dev/null 2>&1 &
        echo "$!"
        sleep 1
    """

    result = run(["bash", "-c", script], env)

    assert result.exit_code == 0
    assert not pid_alive(int(result.stdout))


# Output volume and encoding


def test_200_mb_of_lines_keeps_the_right_tail_and_an_exact_byte_count(env):
    writer = """
        import sys
        out, pad = sys.stdout.buffer, b"x" * 90
        for block in range(200):
            out.write(b"".join(b"%09d" % (block * 10000 + i) + pad + b"\\n" for i in range(10000)))
    """

    with rss_growth() as growth:
        result = run_python(writer, env, tail_lines=3, timeout_s=60.0)

    assert result.exit_code == 0
    assert result.stdout_bytes == 200_000_000
    assert result.stdout.splitlines() == [f"{n:09d}" + "x" * 90 for n in range(1999997, 2000000)]
    assert result.stdout_truncated
    assert growth[0] < 50 * 2**20, f"RSS grew by {growth[0] / 2**20:.1f} MiB"


def test_200_mb_without_a_newline_keeps_only_the_end_of_the_line(env):
    writer = """
        import sys
        out = sys.stdout.buffer
        for _ in range(200):
            out.write(b"a" * 2**20)
        out.write(b"END")
    """

    with rss_growth() as growth:
        result = run_python(writer, env, timeout_s=60.0)

    assert result.stdout_bytes == 200 * 2**20 + 3
    assert len(result.stdout) == MAX_LINE_BYTES and result.stdout.endswith("aaaEND")
    assert result.stdout_truncated
    assert growth[0] < 50 * 2**20, f"RSS grew by {growth[0] / 2**20:.1f} MiB"


def test_a_cut_long_line_does_not_start_in_the_middle_of_a_character(env):
    result = run_python('print("é" * 40000)', env)

    assert result.stdout_truncated
    assert set(result.stdout) == {"é"}


def test_invalid_utf8_is_decoded_with_replacement_characters(env):
    writer = """
        import sys
        out = sys.stdout.buffer
        out.write(b"bad \\xff\\xfe end\\ncaf\\xc3")
        out.flush()
        out.write(b"\\xa9\\n")
    """

    result = run_python(writer, env)

    assert result.stdout == "bad \ufffd\ufffd end\ncafé"
    assert result.stdout_bytes == 17


def test_only_the_last_tail_lines_are_kept(env):
    result = run(["seq", "10"], env, tail_lines=3)

    assert (result.stdout, result.stdout_truncated, result.stdout_bytes) == ("8\n9\n10", True, 21)


def test_output_that_fits_in_the_tail_is_not_marked_truncated(env):
    result = run(["seq", "3"], env, tail_lines=3)

    assert (result.stdout, result.stdout_truncated) == ("1\n2\n3", False)


# JR_RESULT


def test_a_result_line_sets_tokens_and_result_meta(env):
    result = run_python('print(\'JR_RESULT:{"tokens": 42, "model": "m"}\')', env)

    assert result.tokens == 42
    assert result.result_meta == {"tokens": 42, "model": "m"}


def test_a_negative_token_count_is_ignored_and_the_rest_kept(env):
    result = run_python('print(\'JR_RESULT:{"tokens": -5, "model": "m"}\')', env)

    assert result.tokens is None
    assert result.result_meta == {"tokens": -5, "model": "m"}


def test_a_malformed_result_line_is_ignored(env):
    script = "print('JR_RESULT:{not json'); print('JR_RESULT:[1, 2]'); print('JR_RESULT:')"

    result = run_python(script, env)

    assert (result.exit_code, result.tokens, result.result_meta) == (0, None, None)


def test_the_last_valid_result_line_wins(env):
    script = """
        print('JR_RESULT:{"tokens": 1}')
        print('JR_RESULT:{"tokens": 2, "n": "second"}')
        print('JR_RESULT:{broken')
    """

    result = run_python(script, env)

    assert (result.tokens, result.result_meta) == (2, {"tokens": 2, "n": "second"})


def test_a_result_line_that_scrolled_out_of_the_tail_still_counts(env):
    script = "print('JR_RESULT:{\"tokens\": 7}'); print('\\n'.join(map(str, range(50))))"

    result = run_python(script, env, tail_lines=2)

    assert (result.tokens, result.stdout) == (7, "48\n49")


def test_a_result_line_without_integer_tokens_sets_only_result_meta(env):
    result = run_python('print(\'JR_RESULT:{"tokens": "many", "ok": true}\')', env)

    assert (result.tokens, result.result_meta) == (None, {"tokens": "many", "ok": True})


def test_a_result_line_on_stderr_is_ignored(env):
    result = run(["bash", "-c", "echo 'JR_RESULT:{\"tokens\": 3}' >&2"], env)

    assert (result.tokens, result.result_meta) == (None, None)


def test_parse_result_line_accepts_only_a_json_object_after_the_prefix():
    assert parse_result_line('JR_RESULT: {"a": 1}\r') == {"a": 1}
    assert parse_result_line('{"a": 1}') is None
    assert parse_result_line('JR_RESULT:{"a": NaN}') is None
    assert parse_result_line("JR_RESULT:" + "[" * 100_000) is None


# Fast spawn (cluster workers)


@pytest.fixture
def fast_spawn(monkeypatch):
    import subprocess

    monkeypatch.setattr(spawn, "_home_group", None)
    spawn.allow_fast_spawn()
    yield spawn
    assert subprocess._USE_VFORK is False


def test_a_fast_spawn_starts_the_script_in_its_own_session_and_steps_back_into_the_group(
    env, fast_spawn
):
    group = os.getpgid(0)
    result = run(["bash", "-c", "ps -o pgid=,sid= -p $$"], env)
    pgid, sid = (int(n) for n in result.stdout.split())
    assert pgid == sid != group
    assert os.getpgid(0) == group


def test_while_a_fast_spawn_is_under_way_the_runner_is_out_of_its_group(fast_spawn):
    def check() -> None:  # in a child: this test process may lead its group already
        group = os.getpgid(0)
        with fast_spawn._outside_the_group():
            assert os.getpgid(0) == os.getpid() != group
            with fast_spawn._outside_the_group():  # a second thread's spawn
                assert os.getpgid(0) == os.getpid()
            assert os.getpgid(0) == os.getpid()
        assert os.getpgid(0) == group

    pid = os.fork()
    if pid == 0:
        try:
            check()
        except BaseException:
            os._exit(1)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0


def test_children_tracked_at_about_the_same_moment_share_one_scan(monkeypatch):
    scans = []

    def scan():
        scans.append(1)
        return {}

    monkeypatch.setattr(tree, "_scan_processes", scan)
    monkeypatch.setattr(tree, "_last_scan", (-math.inf, {}))
    first, second = tree.ProcessTree(10**7), tree.ProcessTree(10**7 + 1)
    started = time.monotonic()
    first.track(not_before=started)
    second.track(not_before=started)
    assert len(scans) == 1
    # A child started after that scan never uses it: the scan could not show its tree.
    tree.ProcessTree(10**7 + 2).track(not_before=time.monotonic() + 1e-6)
    assert len(scans) == 2


def test_a_script_runs_on_while_this_process_is_out_of_descriptors(env):
    """The supervisor's scans of /proc fail while the worker has no descriptor left (a
    burst holding many children, helper probe): the script must run on and be reported,
    not be killed as if the runner had failed."""
    started = process.start_process(
        ["bash", "-c", "sleep 0.5; echo done"], env=env, timeout_s=10.0, grace_s=1.0,
        tail_lines=100,
    )  # fmt: skip
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    taken: list[int] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 4, hard))
        with contextlib.suppress(OSError):
            while True:
                taken.append(os.open(os.devnull, os.O_RDONLY))
        result = started.wait()
    finally:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert (result.exit_code, result.stdout, result.error) == (0, "done", None)
