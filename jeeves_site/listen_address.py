"""The address the web server binds: ``host`` and ``port`` of the runner's config.

``scripts/start`` runs ``python -m jeeves_site.listen_address`` and hands the
answer to gunicorn, so config.json's ``port`` and ``host`` (or ``JEEVES_PORT`` and
``JEEVES_BIND``, which win over the file like every ``JEEVES_*`` variable) decide it.
"""

from __future__ import annotations

import os


def bind_address(host: str, port: int) -> str:
    """``host:port`` as gunicorn's ``--bind`` takes it; an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run_api_url(host: str, port: int) -> str:
    """The API's URL for a script on this host when the web server binds ``host``: a
    wildcard (``0.0.0.0``, ``::``) is reached at its loopback address."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{bind_address(host, port)}/api"


def allowed_hosts(host: str) -> list[str]:
    """The ``Host`` names Django accepts by default: loopback, and the bound address.

    Django compares an IPv6 address in its bracketed form (``Host: [::1]:1937``), so
    ``::1`` is listed as ``[::1]``. A wildcard address (``0.0.0.0``, ``::``) is no name.
    """
    names = ["127.0.0.1", "localhost"]
    if host not in ("0.0.0.0", "::"):
        names.append(f"[{host}]" if ":" in host else host)
    return names


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jeeves_site.settings")
    from django.conf import settings

    print(bind_address(settings.RUNNER.host, settings.RUNNER.port))


if __name__ == "__main__":
    main()
