"""Scripts get JR_API_URL and JR_API_TOKEN only where this runner's user alone listens:
elsewhere another local user could listen and collect the run tokens (a probe, 2026-12-01)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from jeeves_site.listen_address import run_api_url
from runner.api import own_listener, run_tokens
from runner.execution.executor import execute_run
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db(transaction=True)

SHOWS_ENV = 'echo "url=${JR_API_URL-none} token=${JR_API_TOKEN:-none}"'


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def listening(host: str = "127.0.0.1", port: int = 0, user: int | None = None) -> Iterator[int]:
    """A socket listening on ``host``; made by ``user`` (a forked child) if given."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if user is None:
        with socket.socket(family) as sock:
            sock.bind((host, port))
            sock.listen()
            yield sock.getsockname()[1]
        return
    ready, stop = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(user)
            os.setuid(user)
            sock = socket.socket(family)
            sock.bind((host, port))
            sock.listen()
            os.write(ready[1], str(sock.getsockname()[1]).encode())
            os.read(stop[0], 1)
        finally:
            os._exit(0)
    try:
        yield int(os.read(ready[0], 16))
    finally:
        os.write(stop[1], b"x")
        os.waitpid(pid, 0)
        for fd in (*ready, *stop):
            os.close(fd)


def script_env(settings, url: str) -> str:
    settings.RUN_API_URL = url
    run_tokens._served = own_listener.Cached()
    run = execute_run(RunFactory(job=JobFactory(script=SHOWS_ENV)).pk, worker="test:1")
    assert run.status == "ok", run.error
    return run.stdout


def test_with_nothing_listening_scripts_get_neither_url_nor_token(settings, caplog):
    caplog.set_level(logging.WARNING, logger="runner.api.own_listener")
    url = f"http://127.0.0.1:{unused_port()}/api"
    assert script_env(settings, url) == "url=none token=none"
    assert f"nothing of this user (uid {os.geteuid()}) listens at {url}" in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to listen as another user")
def test_a_port_another_user_listens_on_gets_no_token(settings):
    with listening(user=65534) as port:
        assert script_env(settings, f"http://127.0.0.1:{port}/api") == "url=none token=none"


def test_a_server_on_ipv6_loopback_does_not_serve_the_ipv4_address(settings):
    with listening("::1") as port:
        assert script_env(settings, f"http://127.0.0.1:{port}/api") == "url=none token=none"
        url = f"http://[::1]:{port}/api"
        assert script_env(settings, url).startswith(f"url={url} token=jrr_")


def test_this_users_wildcard_listener_serves_loopback(settings):
    with listening("0.0.0.0") as port:
        url = f"http://127.0.0.1:{port}/api"
        assert script_env(settings, url).startswith(f"url={url} token=jrr_")


def test_a_url_off_this_host_is_not_judged(settings):
    url = "https://runner.example.com/api"
    assert script_env(settings, url).startswith(f"url={url} token=jrr_")


def test_the_default_url_follows_the_address_the_web_server_binds():
    assert run_api_url("127.0.0.1", 1937) == "http://127.0.0.1:1937/api"
    assert run_api_url("::1", 1937) == "http://[::1]:1937/api"
    assert run_api_url("0.0.0.0", 1937) == "http://127.0.0.1:1937/api"
    assert run_api_url("::", 8080) == "http://[::1]:8080/api"


def test_the_answer_is_kept_a_second_and_a_change_is_logged_once(caplog):
    caplog.set_level(logging.INFO, logger="runner.api.own_listener")
    now = [100.0]
    served = own_listener.Cached(clock=lambda: now[0])
    port = unused_port()
    url = f"http://127.0.0.1:{port}/api"
    assert not served(url) and not served(url)
    with listening(port=port):
        assert not served(url)  # asked within the second: the answer kept
        now[0] += own_listener.CHECK_EVERY_S
        assert served(url)
    assert caplog.text.count("scripts get no JR_API_URL") == 1
    assert caplog.text.count("scripts get JR_API_URL and JR_API_TOKEN again") == 1
    caplog.clear()
    with listening() as port:  # served from the first look: nothing to say
        assert own_listener.Cached(clock=lambda: now[0])(f"http://127.0.0.1:{port}/api")
    assert "again" not in caplog.text
