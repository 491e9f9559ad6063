"""API tokens never reach a log line: each ``jr_…``/``jrr_…`` secret becomes ``jr_***``.

A token belongs in the Authorization header; the ``/t/<token>/`` prefix is cut before
Django logs anything (``runner.api.prefix``). A client that puts it elsewhere in the URL
(``/api/t/jr_…/jobs``, a typo of the prefix) still gets a 404 logged with its path, so
every handler of the runner's log, and gunicorn's access log, pass through this filter.
"""

from __future__ import annotations

import logging
import re

# Our tokens are "jr_" and 43 URL-safe characters, or "jrr_<run id>." and 43 (see
# ``runner.api.run_tokens``); a shorter run of them is kept, so the prefix shown in the
# admin ("jr_Ab12cd3") stays readable.
_TOKEN = re.compile(r"\b(jrr?_)(?:[0-9]+\.)?[A-Za-z0-9_-]{16,}")


def redact(text: str) -> str:
    """``text`` with every token replaced by its kind and ``***``."""
    return _TOKEN.sub(r"\1***", text)


class RedactTokens(logging.Filter):
    """A handler filter: the formatted message, with tokens redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
