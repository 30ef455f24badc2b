"""Metrics an operator alerts on: the names and types every component exposes, and the shipped
Prometheus rules and Grafana dashboard, which may only name metrics that exist.

Rules are checked with `promtool` when it is installed (Debian: `apt-get install prometheus`);
every rule and panel expression is always parsed with promql-parser as well, so the structure
and PromQL are validated either way (a skipped promtool test says so in the summary)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.app_keys import METRICS
from scout_admin.commands import Admin
from tests.gateway.keys_support import new_server, rotate, whoami_status
from tests.stack import Environment, Stack, client_session, eventually, running_stack

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "server-scout.json"
PROMTOOL = shutil.which("promtool")
# Series Prometheus makes itself, not the code.
BUILT_IN = {"up"}
# Grafana's variables, replaced by what they stand for before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": "scout-.*"}

Families = dict[str, str]  # metric family name -> type


def rules() -> Iterator[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    for group in document["groups"]:
        yield from group["rules"]


def panel_expressions() -> Iterator[tuple[str, str]]:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def grafana_to_promql(expression: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


def selected_metrics(expression: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expression), pre_visit=visit)
    return names - BUILT_IN


# -- the files themselves -------------------------------------------------------------------


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed: rules parsed without it")
def test_promtool_accepts_the_rules_the_config_and_the_rule_tests() -> None:
    assert PROMTOOL is not None
    for command in (
        ["check", "rules", str(ALERTS)],
        ["check", "config", str(PROMETHEUS_CONFIG)],
        ["test", "rules", str(ALERT_TESTS)],
    ):
        result = subprocess.run([PROMTOOL, *command], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, (
            f"promtool {' '.join(command)}:\n{result.stdout}{result.stderr}"
        )


def test_every_rule_is_well_formed_promql_with_severity_and_text() -> None:
    names = set()
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Scout[A-Za-z]+", rule["alert"]), rule["alert"]
        assert rule["alert"] not in names, f"{rule['alert']} is defined twice"
        names.add(rule["alert"])
        promql_parser.parse(rule["expr"])
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        if "for" in rule:
            promql_parser.parse_duration(rule["for"])
    assert len(names) >= 10


def test_the_dashboard_is_grafana_json_with_parsable_queries() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
    for title, expression in panel_expressions():
        try:
            promql_parser.parse(grafana_to_promql(expression))
        except ValueError as exc:
            raise AssertionError(f"panel {title!r}: {exc}: {expression}") from None


# -- what the code exposes ------------------------------------------------------------------


async def scrape(port: int | None) -> Families:
    assert port is not None
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    families: Families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
    return families


def sample_names(families: Families) -> set[str]:
    """Every series name a query may select: counters end in _total, histograms have _bucket,
    _sum and _count."""
    names = set()
    for name, kind in families.items():
        if kind == "counter":
            names.add(f"{name}_total")
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


EXPECTED_EVERYWHERE = {
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "python_gc_collections": "counter",
    "python_info": "gauge",
    "scout_build_info": "gauge",
}
EXPECTED = {
    "gateway": EXPECTED_EVERYWHERE
    | {
        "scout_gateway_requests": "counter",
        "scout_gateway_request_seconds": "histogram",
        "scout_gateway_key_cache_entries": "gauge",
        "scout_gateway_key_cache_trusted": "gauge",
        "scout_gateway_key_cache_lookups": "counter",
        "scout_gateway_key_cache_flushes": "counter",
        "scout_gateway_key_invalidations_applied": "counter",
        "scout_gateway_cache_lease_renewals": "counter",
        "scout_gateway_session_cache_entries": "gauge",
        "scout_gateway_session_cache_lookups": "counter",
        "scout_gateway_key_validations_joined": "counter",
        "scout_gateway_session_validations_joined": "counter",
        "scout_gateway_key_invalidation_lag_seconds": "histogram",
        "scout_gateway_ingest_pending_values": "gauge",
        "scout_gateway_ingest_calls_in_flight": "gauge",
        "scout_gateway_ingest_batch_values": "histogram",
        "scout_gateway_ingest_batch_requests": "histogram",
        "scout_gateway_ingest_refused_posts": "counter",
        "scout_redis_up": "gauge",
        "scout_redis_round_trip_seconds": "histogram",
    },
    "service": EXPECTED_EVERYWHERE
    | {
        "scout_grpc_server_handled": "counter",
        "scout_grpc_server_handling_seconds": "histogram",
        "scout_db_pool_connections": "gauge",
        "scout_db_pool_max_connections": "gauge",
        "scout_db_up": "gauge",
        "scout_db_round_trip_seconds": "histogram",
    },
    "ingest": {
        "scout_ingest_queue_values": "gauge",
        "scout_ingest_queue_requests": "gauge",
        "scout_ingest_queue_max_values": "gauge",
        "scout_ingest_transactions_in_flight": "gauge",
        "scout_ingest_transactions": "counter",
        "scout_ingest_batch_values": "histogram",
        "scout_ingest_batch_requests": "histogram",
        "scout_ingest_commit_seconds": "histogram",
        "scout_ingest_refused_values": "counter",
    },
    "keys": {"scout_key_invalidations_relayed": "counter"},
    "redis": {"scout_redis_up": "gauge", "scout_redis_round_trip_seconds": "histogram"},
}


async def exercise(stack: Stack, admin: Admin) -> None:
    """A post (a cache miss, then a hit) and a rotation (an invalidation) so every series has
    a sample."""
    server = await new_server(admin)
    async with client_session(stack.env) as http:
        sample = {"samples": [{"ts": time.time(), "metrics": {"cpu.percent": 1.0}}]}
        async with http.post(
            f"{stack.gateway.url}/api/v1/metrics",
            json=sample,
            headers={"X-API-Key": server.api_key},
        ) as response:
            assert response.status == 202
        assert await whoami_status(http, stack.gateway.url, server.api_key) == 200
        await rotate(admin, server)
        await eventually(lambda: stack.gateway.listener.invalidations_applied > 0)
        assert await whoami_status(http, stack.gateway.url, server.api_key) == 401


async def test_every_component_exposes_the_metrics_alerts_and_dashboard_use(
    env: Environment, admin: Admin
) -> None:
    listen = {"METRICS_ADDR": "127.0.0.1:0"}
    async with running_stack(env, service_overrides=listen, gateway_overrides=listen) as stack:
        await exercise(stack, admin)
        gateway = await scrape(stack.gateway.app[METRICS].endpoint.port)
        services = {
            name: await scrape(service.metrics_endpoint.port)
            for name, service in (
                ("auth", stack.auth),
                ("keys", stack.keys),
                ("ingest", stack.ingest),
            )
        }
    assert EXPECTED["gateway"].items() <= gateway.items()
    for name, families in services.items():
        expected = EXPECTED["service"] | (EXPECTED["ingest"] if name == "ingest" else {})
        expected |= EXPECTED["redis"] if name in ("auth", "keys") else {}
        expected |= EXPECTED["keys"] if name == "keys" else {}
        assert expected.items() <= families.items(), name
    exposed = sample_names(gateway).union(*(sample_names(f) for f in services.values()))
    for rule in rules():
        missing = selected_metrics(rule["expr"]) - exposed
        assert not missing, f"alert {rule['alert']} uses {sorted(missing)}, which nothing exposes"
    for title, expression in panel_expressions():
        missing = selected_metrics(grafana_to_promql(expression)) - exposed
        assert not missing, f"panel {title!r} uses {sorted(missing)}, which nothing exposes"
