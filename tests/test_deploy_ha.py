"""deploy/k8s-ha: the base manifests with Redis through Sentinel and PostgreSQL standbys for
metric reads. Rendered as `kubectl apply -k deploy/k8s-ha` would (kubectl's kustomize when
installed, else its patches applied here), valid against the Kubernetes schemas, every
component given what its settings need, and the network policies letting it reach Sentinel."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from scout_kit.db import ReplicaSettings
from scout_kit.redis import RedisSettings
from scout_kit.settings import Env
from tests.test_deploy import K8S, KUBERNETES_VERSION, load, of_kind, render

HA = K8S.parent / "k8s-ha"
SENTINEL_PORT = 26379


def _merge_env(env: list[dict[str, Any]], patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Strategic merge of an env list: keyed by name, `$patch: delete` removes an entry."""
    merged = {item["name"]: item for item in env}
    for item in patch:
        if item.get("$patch") == "delete":
            merged.pop(item["name"], None)
        else:
            merged[item["name"]] = item
    return list(merged.values())


def _apply_deployment_patch(document: dict[str, Any], patch: dict[str, Any]) -> None:
    by_name = {c["name"]: c for c in document["spec"]["template"]["spec"]["containers"]}
    for change in patch["spec"]["template"]["spec"]["containers"]:
        container = by_name[change["name"]]
        container["env"] = _merge_env(container.get("env", []), change.get("env", []))


def _apply_json_patch(document: dict[str, Any], operations: Any) -> None:
    for operation in operations:
        assert operation["op"] == "add" and operation["path"].endswith("/-"), operation
        target: Any = document
        for part in operation["path"].strip("/").split("/")[:-1]:
            target = target[part]
        target.append(copy.deepcopy(operation["value"]))


def render_ha() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        result = subprocess.run(
            [kubectl, "kustomize", str(HA)], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return [d for d in yaml.safe_load_all(result.stdout) if d]
    kustomization = yaml.safe_load((HA / "kustomization.yaml").read_text())
    assert kustomization["resources"][0] == "../k8s"
    documents, _ = render()
    labels: dict[str, str] = {}
    for entry in kustomization.get("labels", []):
        labels |= entry["pairs"]
    for resource in kustomization["resources"][1:]:
        for doc in load(HA / resource):
            doc["metadata"]["namespace"] = kustomization["namespace"]
            doc["metadata"].setdefault("labels", {}).update(labels)
            documents.append(doc)
    for patch in kustomization["patches"]:
        if "path" in patch:
            (change,) = load(HA / patch["path"])
            target = {"kind": change["kind"], "name": change["metadata"]["name"]}
        else:
            change, target = yaml.safe_load(patch["patch"]), patch["target"]
        (document,) = [
            d
            for d in documents
            if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]
        ]
        if "path" in patch:
            _apply_deployment_patch(document, change)
        else:
            _apply_json_patch(document, change)
    return documents


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return render_ha()


def test_the_overlay_validates_against_the_kubernetes_schemas(
    documents: list[dict[str, Any]],
) -> None:
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{doc['kind']}/{doc['metadata']['name']}: {exc}") from None
        assert doc["metadata"].get("namespace", "server-scout") == "server-scout"


def _env(container: dict[str, Any], config: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The container's environment; config-map values resolved, secrets given stand-ins."""
    values = {}
    for variable in container.get("env", []):
        if "value" in variable:
            values[variable["name"]] = variable["value"]
        elif "configMapKeyRef" in variable["valueFrom"]:
            ref = variable["valueFrom"]["configMapKeyRef"]
            values[variable["name"]] = config[ref["name"]]["data"][ref["key"]]
        elif not variable["valueFrom"]["secretKeyRef"].get("optional"):
            values[variable["name"]] = "postgresql://scout@db.example/scout"
    return values


@pytest.mark.parametrize("name", ["auth", "keys", "gateway"])
def test_redis_users_find_the_master_through_sentinel(
    documents: list[dict[str, Any]], name: str
) -> None:
    config = of_kind(documents, "ConfigMap")
    (container,) = of_kind(documents, "Deployment")[name]["spec"]["template"]["spec"]["containers"]
    settings = RedisSettings.from_env(Env(_env(container, config)))
    assert settings.url is None and len(settings.sentinels) == 3
    assert settings.master == "scout"
    assert settings.min_replicas == (1 if name == "auth" else 0)
    policy = of_kind(documents, "NetworkPolicy")[name]
    ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule.get("ports", [])}
    assert {6379, SENTINEL_PORT} <= ports


def test_ingest_reads_metrics_from_the_standbys(documents: list[dict[str, Any]]) -> None:
    deployment = of_kind(documents, "Deployment")["ingest"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    settings = ReplicaSettings.from_env(Env(_env(container, of_kind(documents, "ConfigMap"))))
    assert len(settings.urls) == 1 and settings.max_lag_seconds == 5.0
    refs = {
        (v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"])
        for v in container["env"]
        if "secretKeyRef" in v.get("valueFrom", {})
    }
    assert ("scout-database", "replica-urls") in refs
    example = Path(K8S / "secrets.example.yaml").read_text()
    assert "replica-urls:" in example and "target_session_attrs=read-write" in example
