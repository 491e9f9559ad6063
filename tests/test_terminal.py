"""trigger_job shows a script's output without letting it drive the terminal."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from runner.terminal import neutralise
from tests.factories import JobFactory


@pytest.mark.parametrize(
    "raw,shown",
    [
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),  # CSI: clear screen, colour
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # OSC: window title, BEL
        ("\x9b31m\x9d0;t\x9c", "\\x9b31m\\x9d0;t\\x9c"),  # 8-bit CSI, OSC, ST (C1)
        ("secret\rdecoy", "secret\\x0ddecoy"),  # a carriage return hides the line
        ("a\x00b\x08c\x7fd", "a\\x00b\\x08c\\x7fd"),  # NUL, backspace, DEL
        ("line\n\tindented é ✓", "line\n\tindented é ✓"),  # kept as they are
    ],
)
def test_every_control_character_but_newline_and_tab_is_shown_not_obeyed(raw, shown):
    assert neutralise(raw) == shown


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
def test_trigger_job_prints_output_and_error_with_escape_sequences_neutralised():
    script = (
        r"printf '\033]0;owned\007\033[2Jout\r\n'; printf '\033[8mhidden\302\233m\n' >&2; exit 3"
    )
    job = JobFactory(script=script)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("trigger_job", job.id, stdout=out, stderr=StringIO())
    printed = out.getvalue()
    assert "\\x1b]0;owned\\x07\\x1b[2Jout\\x0d" in printed
    assert printed.count("\\x1b[8mhidden\\x9bm") == 2  # the error repeats stderr's tail
    assert not [c for c in printed if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]


@pytest.mark.django_db
def test_list_jobs_shows_a_job_name_with_escape_sequences_neutralised():
    JobFactory(name="\x1b]0;owned\x07Inbox")
    out = StringIO()
    call_command("list_jobs", stdout=out)
    assert out.getvalue().splitlines()[1].endswith("\\x1b]0;owned\\x07Inbox")
