"""contrib/grafana/jeeves-runner.json only graphs metrics that /metrics serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db

DASHBOARD = Path(__file__).resolve().parent.parent / "contrib" / "grafana" / "jeeves-runner.json"


def test_every_metric_the_dashboard_queries_is_exposed():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bjeeves_[a-z_]+", expr)}
    response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1")
    exposed = set()
    for family in text_string_to_metric_families(response.content.decode()):
        exposed |= {family.name, f"{family.name}_total", f"{family.name}_bucket"}
        exposed |= {f"{family.name}_sum", f"{family.name}_count"}
    assert used and used <= exposed, used - exposed
