"""The Kubernetes manifests: every container locked down and probed, named ports, autoscaling for
the gateway and ingest, every Secret referenced exists, every required variable provided."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scout_kit.identity import generate_keypair
from tests.settings_support import SETTINGS_BY_MODULE, missing_from, required_variables

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
EXAMPLE_SECRETS = "secrets.example.yaml"
GRPC_MODULES = ("auth_service", "key_service", "ingest_service")


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += load(path)
    return documents


def of_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == kind}


def containers(deployment: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    pod = deployment["spec"]["template"]["spec"]
    for container in pod["containers"]:
        yield pod, container


def module_of(container: dict[str, Any]) -> str:
    command = container["command"]
    assert command[:2] == ["python", "-m"], command
    return str(command[2])


def test_every_manifest_parses_and_kustomize_lists_them() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", EXAMPLE_SECRETS}
    assert set(kustomization["resources"]) == files
    for path in K8S.glob("*.yaml"):
        if path.name == "kustomization.yaml":
            continue
        for doc in load(path):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path.name


def test_there_is_a_deployment_and_service_per_component(manifests: list[dict[str, Any]]) -> None:
    deployments = of_kind(manifests, "Deployment")
    services = of_kind(manifests, "Service")
    assert set(deployments) == {"auth", "keys", "ingest", "gateway"}
    assert set(services) == set(deployments)
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert services[name]["spec"]["selector"].items() <= labels.items()


def test_every_container_is_locked_down(manifests: list[dict[str, Any]]) -> None:
    for deployment in of_kind(manifests, "Deployment").values():
        for pod, container in containers(deployment):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            non_root = context.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot"))
            assert non_root is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in context["capabilities"], where
            assert pod["securityContext"]["runAsUser"] != 0, where
            assert pod["automountServiceAccountToken"] is False, where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where


def test_grpc_services_use_native_grpc_probes_on_a_named_port(
    manifests: list[dict[str, Any]],
) -> None:
    services = of_kind(manifests, "Service")
    for name, deployment in of_kind(manifests, "Deployment").items():
        for _, container in containers(deployment):
            if module_of(container) not in GRPC_MODULES:
                continue
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert set(ports) == {"grpc"}, name
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["grpc"]["port"] == ports["grpc"], f"{name} {probe}"
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["LISTEN_ADDR"] == f"0.0.0.0:{ports['grpc']}"
            service_ports = services[name]["spec"]["ports"]
            assert [p["name"] for p in service_ports] == ["grpc"]
            assert services[name]["spec"]["clusterIP"] == "None"  # headless: per-pod balancing


def test_gateway_serves_https_and_is_probed_over_it(manifests: list[dict[str, Any]]) -> None:
    gateway = of_kind(manifests, "Deployment")["gateway"]
    ((_, container),) = containers(gateway)
    assert {p["name"] for p in container["ports"]} == {"https", "http"}
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["scheme"] == "HTTPS"
        assert check["port"] == "https"
    service = of_kind(manifests, "Service")["gateway"]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"https": 443, "http": 80}


def test_gateway_and_ingest_autoscale(manifests: list[dict[str, Any]]) -> None:
    autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")
    deployments = of_kind(manifests, "Deployment")
    assert {"gateway", "ingest"} <= set(autoscalers)
    for hpa in autoscalers.values():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["name"] in deployments
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_only_the_gateway_holds_the_signing_key(manifests: list[dict[str, Any]]) -> None:
    for name, deployment in of_kind(manifests, "Deployment").items():
        volumes = deployment["spec"]["template"]["spec"].get("volumes", [])
        secrets = {v["secret"]["secretName"] for v in volumes if "secret" in v}
        assert ("scout-jwt-signing" in secrets) == (name == "gateway"), name


def _secret_references(deployment: dict[str, Any]) -> set[str]:
    pod = deployment["spec"]["template"]["spec"]
    names = {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    for container in pod["containers"]:
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
    return names


def test_every_secret_referenced_is_documented(manifests: list[dict[str, Any]]) -> None:
    documented = {doc["metadata"]["name"] for doc in load(K8S / EXAMPLE_SECRETS)}
    for deployment in of_kind(manifests, "Deployment").values():
        assert _secret_references(deployment) <= documented


def test_every_variable_the_code_requires_is_provided(
    manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = of_kind(manifests, "ConfigMap")
    keypair = generate_keypair()
    for deployment in of_kind(manifests, "Deployment").values():
        for _, container in containers(deployment):
            module = module_of(container)
            provided = {variable["name"] for variable in container.get("env", [])}
            for source in container.get("envFrom", []):
                provided |= set(config[source["configMapRef"]["name"]]["data"])
            required = required_variables(SETTINGS_BY_MODULE[module], tmp_path, keypair)
            missing = missing_from(required, provided)
            assert not missing, f"{module} lacks {sorted(missing)}"
