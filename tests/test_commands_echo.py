"""Refusals that name a value the operator gave (a job id, a queue id, a token name)
stay one short line, whatever the value holds (``jeeves_site.echo``), on both databases."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db

HOSTILE = ["a\nb\rc\x85d\u2028e", "x" * 4000]
# The command and its arguments, ``{}`` standing for the hostile value.
COMMANDS = [
    ("disable_job", "{}"),
    ("enable_job", "{}"),
    ("remove_job", "{}"),
    ("trigger_job", "{}"),
    ("add_queue", "--id={}"),
    ("revoke_api_token", "{}"),
    ("create_api_token", "dashboard", "--user={}"),
    ("add_job", "--id=j", "--env={}"),
]


@pytest.mark.parametrize("value", HOSTILE, ids=["line-breaks", "4000-chars"])
@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_refusal_names_a_hostile_value_on_one_short_line(command, value):
    name, *args = command
    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(name, *[arg.format(value) for arg in args], stdout=out, stderr=out)
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and len(message) < 200, message[:300]
    assert out.getvalue() == ""


def test_many_unknown_job_ids_are_named_by_the_first_few_and_counted():
    with pytest.raises(CommandError) as refused:
        call_command("disable_job", *[f"ghost-{n}" for n in range(500)], stdout=StringIO())
    assert str(refused.value) == (
        "unknown job ids: ghost-0, ghost-1, ghost-2, ghost-3, ghost-4, ghost-5, ghost-6, "
        "ghost-7, ghost-8, ghost-9 and 490 more; nothing changed"
    )


@pytest.mark.parametrize(
    "schedule", ["x" * 999, "1,2 * * * " + "1" * 990, "* * * * " + "9" * 990], ids=str.__len__
)
def test_a_refused_cron_schedule_is_named_by_its_start_and_size(schedule):
    """A cron expression may be 1,000 characters long; its refusal stays short."""
    with pytest.raises(CommandError) as refused:
        call_command("add_job", "--id=j", "--name=J", "--script=echo", "--source-type=inline",
                     f"--schedule={schedule}", stdout=StringIO())  # fmt: skip
    assert "characters)" in str(refused.value) and len(str(refused.value)) < 300, str(refused.value)


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        ('{"A\\nB": "1"}', "'A\\nB' is not a valid variable name"),
        ('{"' + "N" * 20_000 + '-": "1"}', "(20001 characters)"),
        ('{"' + "N" * 20_000 + '": 1}', "(20000 characters) must be a string"),
    ],
)
def test_add_job_names_a_refused_environment_variable_on_one_short_line(env, shown):
    with pytest.raises(CommandError) as refused:
        call_command("add_job", "--id", "envy", "--name", "x", "--schedule", "* * * * *",
                     "--source-type", "inline", "--script", "echo", "--env", env)  # fmt: skip
    message = str(refused.value)
    assert shown in message
    assert "\n" not in message and len(message) < 300
