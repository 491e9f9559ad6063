"""A job in another language uses the API: bash and curl, run by the runner for real."""

from __future__ import annotations

import shutil

import pytest

from queues import operations as queues
from queues.models import QueueItem
from runner.execution.executor import execute_run
from statestore import operations as state
from tests.factories import JobFactory, RunFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]

# No jq: plain bash and grep, so the test needs nothing beyond curl.
DRAIN = r"""#!/usr/bin/env bash
set -euo pipefail
api() {
  curl -fsS -H "Authorization: Bearer $API_TOKEN" -H "Content-Type: application/json" "$@"
}
field() { grep -o "\"$1\": *\"\{0,1\}[^\",}]*" | head -1 | sed 's/.*[": ]//'; }

drained=0
while :; do
  claim=$(api -X POST "$API_URL/api/queues/tasks/dequeue" -d '{"count": 1, "lease": "1m"}')
  id=$(field id <<<"$claim" || true)
  [ -n "$id" ] || break
  token=$(field token <<<"$claim")
  api -X POST "$API_URL/api/queues/tasks/items/$id/done" -d "{\"token\": \"$token\"}" >/dev/null
  drained=$((drained + 1))
done
api -X PUT "$API_URL/api/state/drain/last" \
  -d "{\"value\": {\"drained\": $drained, \"run\": $JR_RUN_ID}, \"ttl\": \"1d\"}" >/dev/null
echo "drained $drained"
"""


def test_a_bash_job_drains_a_queue_and_records_state_through_the_api(
    live_server, token, script_file
):
    for n in range(3):
        queues.enqueue("tasks", {"n": n})
    job = JobFactory(
        id="drain",
        source_type="path",
        script=str(script_file("drain.sh", DRAIN)),
        env={"API_URL": live_server.url, "API_TOKEN": token},
        timeout_ms=60_000,
    )
    run = execute_run(RunFactory(job=job).pk, worker="test:1")
    assert (run.status, run.stdout) == ("ok", "drained 3"), run.error
    assert set(QueueItem.objects.values_list("status", flat=True)) == {"completed"}
    assert state.get_state("drain", "last") == {"drained": 3, "run": run.pk}
