"""The README's quoted answers are what the runner says: a newcomer copies them."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from runner.api.tokens import create_token
from tests.api.conftest import ApiClient, make_user
from tests.factories import JobFactory

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")

pytestmark = pytest.mark.django_db


def test_the_commands_refusal_example_is_what_add_job_says():
    JobFactory(id="inbox")
    [quoted] = re.findall(
        r"\$ manage.py add_job --id inbox --schedule '61 \* \* \* \*'\n(.*)\n", README
    )
    with pytest.raises(CommandError) as raised:
        call_command("add_job", "--id", "inbox", "--schedule", "61 * * * *", stdout=StringIO())
    assert quoted == f"CommandError: {raised.value}"


def test_the_apis_refusal_example_is_what_the_api_answers():
    token = create_token("readme", make_user("alice", superuser=True))[1]
    example = re.search(
        r"-d '(\{\"id\": \"inbox\", \"name\": \"Poll\".*?\})'\n(\{.*?\}\})\n", README, re.S
    )
    answer = ApiClient(token).post("/jobs", json.loads(example.group(1)))
    assert answer.status_code == 400
    assert answer.json() == json.loads(example.group(2))


def test_every_create_api_token_example_names_the_user_the_command_requires():
    lines = [line for line in README.splitlines() if "manage.py create_api_token" in line]
    assert len(lines) >= 2
    assert all(re.search(r"create_api_token \S+ --user \S+", line) for line in lines), lines
