"""gunicorn's settings for ``scripts/start`` (the tests start the server with them too).

``gthread``: each process serves requests on threads while its main loop keeps
answering gunicorn's heartbeat, so a request that waits long (the root dialect's
``POST /jobs/{id}/run`` waits for the whole run) holds one thread, and the 30 s
``timeout`` never kills a worker for it. The access log hides a ``/t/<token>/``
URL prefix's token, and every token anywhere in what it may show (the Referer of a page
opened under the prefix, a header, an environment atom).
"""

from __future__ import annotations

import os
import re

from gunicorn.glogging import Logger

from jeeves_site.log_redaction import redact

bind = f"{os.environ.get('JEEVES_BIND') or '127.0.0.1'}:{os.environ.get('JEEVES_PORT') or 1937}"
workers = 2
worker_class = "gthread"
threads = 8
timeout = 30
accesslog = "-"
# gunicorn 27's runtime-management socket lives at one path per account
# (~/.gunicorn/gunicorn.ctl), shared by every gunicorn it runs; nothing here uses it.
control_socket_disable = True

# A ``/t/<token>`` prefix: at the start of the "U" atom, after the method in the "r"
# (request line) atom, after the host of a URL (the Referer, "f").
_TOKEN_IN_PATH = re.compile(r"(^|\s|//[^/\s]*)/t/[^/ ?]+")


class RedactingLogger(Logger):
    """gunicorn's logger: in every atom, the token of a ``/t/<token>/`` prefix and any
    token (``redact``) are replaced by ``***``."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if isinstance(value, str):
                atoms[name] = redact(_TOKEN_IN_PATH.sub(r"\1/t/***", value, count=1))
        return atoms


logger_class = RedactingLogger
