"""The Grafana dashboard and the alert rules ask only for metrics the app exposes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml

MONITORING = Path(__file__).resolve().parent.parent / "monitoring"
METRIC = re.compile(r"\bcozy_[a-z0-9_]+\b")
SERIES_OF = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum", "")}


def exposed_series(app) -> set[str]:
    text = httpx.get(app.base_url + "/metrics", timeout=10).text
    families = re.findall(r"^# TYPE (cozy_\w+) (\w+)$", text, re.M)
    assert families, text[:500]
    series = set()
    for name, kind in families:
        if kind == "counter":  # named with or without _total, by client version; sampled with it
            series.add(name if name.endswith("_total") else name + "_total")
        else:
            series.update(name + suffix for suffix in SERIES_OF.get(kind, ("",)))
    return series


def dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    assert len(dashboard["panels"]) >= 10 and all(queries)
    return queries


def alert_queries() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alert-rules.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_every_metric_the_dashboard_and_the_alerts_query_exists(running_app):
    series = exposed_series(running_app)
    asked = {(source, name) for source, queries in (("dashboard", dashboard_queries()), ("alerts", alert_queries()))
             for query in queries for name in METRIC.findall(query)}
    missing = sorted((source, name) for source, name in asked if name not in series)
    assert missing == [], f"queried but not exposed: {missing}\nexposed: {sorted(series)}"


def test_the_dashboard_covers_latency_fallbacks_errors_and_tokens_and_the_alerts_their_three_cases():
    dashboard = " ".join(dashboard_queries())
    for metric in ("cozy_turn_stage_seconds_bucket", "cozy_turn_fallbacks_total", "cozy_http_requests_total",
                   "cozy_turn_tokens_total", "cozy_breaker_state"):
        assert metric in dashboard
    alerts = {rule["alert"]: rule["expr"] for group in yaml.safe_load((MONITORING / "alert-rules.yml").read_text())
              ["groups"] for rule in group["rules"]}
    assert "cozy_breaker_state" in alerts["CozyBreakerOpen"]
    assert 'status=~"5.."' in alerts["CozyHighErrorRate"]
    assert "histogram_quantile(0.95" in alerts["CozySlowTurns"]
