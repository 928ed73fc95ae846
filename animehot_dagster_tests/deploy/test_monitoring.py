"""The alert rules and the dashboard: checked by the real promtool, and every metric they name is
one the project really exports (read from the live registries, not from a list)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest
import redis
import sqlalchemy as sa
import yaml

from animehot_dagster.crawler.metrics import CrawlerMetrics
from animehot_dagster.observability.metrics import api_registry
from animehot_dagster_tests.conftest import REDIS_URL
from animehot_dagster_tests.deploy.tools import REPO, promtool

RULES = REPO / "deploy/prometheus/rules.yml"
RULE_TESTS = REPO / "deploy/prometheus/rules.test.yml"
DASHBOARD = REPO / "deploy/grafana/dashboard.json"
MANUAL_ALERTS = ["TaskQueueBacklog", "DeadLetterQueueNotEmpty", "CrawlerBlocked", "HighProcessingLatency"]
MANUAL_PANELS = [
    "Task queue depth", "Task processing rate", "Crawl success rate", "P95 latency", "Database connections",
    "Browser instances",
]
# The project's metrics all start so; what follows is PromQL (functions, labels, keywords).
METRIC_NAME = re.compile(r"\b(?:animetop|crawler)_[a-z0-9_]+\b")
SERIES_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.fixture
def exported_series(sqlite_url: str) -> Iterator[set[str]]:
    """Every series name the API process and a crawler node expose."""
    engine = sa.create_engine(sqlite_url)
    client = redis.Redis.from_url(REDIS_URL)
    registry, _ = api_registry(engine, client)
    families = [*registry.collect(), *CrawlerMetrics().registry.collect()]
    yield {f.name + suffix for f in families for suffix in SERIES_SUFFIXES[f.type]}
    client.close()
    engine.dispose()


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_rules_pass_promtool_check():
    result = run(promtool(), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_each_alert_fires_in_the_promtool_unit_tests():
    result = run(promtool(), "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert tested == set(MANUAL_ALERTS)


def test_rules_are_the_manuals_alerts_with_its_expressions():
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    rules = {rule["alert"]: rule for rule in group["rules"]}
    assert list(rules) == MANUAL_ALERTS
    assert {name: (rule["expr"], rule.get("for")) for name, rule in rules.items()} == {
        "TaskQueueBacklog": ('crawler_queue_depth{name="tasks"} > 100', "5m"),
        "DeadLetterQueueNotEmpty": ("animetop_task_dlq_total > 0", "1m"),
        "CrawlerBlocked": ('increase(animetop_crawler_errors_total{type="blocked"}[5m]) > 5', None),
        "HighProcessingLatency": ("histogram_quantile(0.95, animetop_task_processing_duration_seconds_bucket) > 60", "5m"),
    }


def test_dashboard_has_the_manuals_six_panels():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert [panel["title"] for panel in panels] == MANUAL_PANELS
    assert all(panel["targets"] for panel in panels)


def test_every_dashboard_query_is_valid_promql(tmp_path):
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(dashboard_exprs())
    ]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(promtool(), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(dashboard_exprs())} rules found" in result.stdout


def test_dashboard_and_alerts_name_only_exported_metrics(exported_series):
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    exprs = dashboard_exprs() + [rule["expr"] for rule in group["rules"]]
    for expr in exprs:
        names = set(METRIC_NAME.findall(expr))
        assert names, f"no project metric in {expr!r}"
        assert names <= exported_series, f"{expr!r} names {sorted(names - exported_series)}, not exported"
