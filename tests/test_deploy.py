"""The Kubernetes manifests: every container locked down and probed, named ports, autoscaling and
disruption budgets for every component, a gateway that drains, images pinned, network policies
that allow only the architecture's flows, the rendered manifests valid against the Kubernetes
schemas, every Secret referenced documented, every required variable provided."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
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
    assert set(services) == set(deployments) | {"gateway-metrics"}
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
            assert set(ports) == {"grpc", "health", "metrics"}, name
            env = {e["name"]: e.get("value") for e in container["env"]}
            # Probes present no client certificate: they use the plain-text health listener.
            assert env["HEALTH_ADDR"] == f"0.0.0.0:{ports['health']}"
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                assert container[probe]["grpc"]["port"] == ports["health"], f"{name} {probe}"
            assert env["LISTEN_ADDR"] == f"0.0.0.0:{ports['grpc']}"
            assert env["METRICS_ADDR"] == f"0.0.0.0:{ports['metrics']}"
            service_ports = services[name]["spec"]["ports"]
            assert [p["name"] for p in service_ports] == ["grpc", "metrics"]
            assert services[name]["spec"]["clusterIP"] == "None"  # headless: per-pod balancing


def test_gateway_serves_https_and_is_probed_over_it(manifests: list[dict[str, Any]]) -> None:
    gateway = of_kind(manifests, "Deployment")["gateway"]
    ((_, container),) = containers(gateway)
    assert {p["name"] for p in container["ports"]} == {"https", "http", "metrics"}
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["scheme"] == "HTTPS"
        assert check["port"] == "https"
    service = of_kind(manifests, "Service")["gateway"]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"https": 443, "http": 80}
    # The metrics port is internal: not on the load balancer, on a headless Service.
    assert of_kind(manifests, "Service")["gateway-metrics"]["spec"]["clusterIP"] == "None"


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


# -- rollouts and node loss ------------------------------------------------------------------


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.get("matchLabels", {}).items() <= labels.items()


def test_every_deployment_autoscales_and_survives_disruption(
    manifests: list[dict[str, Any]],
) -> None:
    autoscalers = {
        hpa["spec"]["scaleTargetRef"]["name"]: hpa
        for hpa in of_kind(manifests, "HorizontalPodAutoscaler").values()
    }
    budgets = of_kind(manifests, "PodDisruptionBudget").values()
    for name, deployment in of_kind(manifests, "Deployment").items():
        # A fixed `replicas` would fight the autoscaler on every apply.
        assert "replicas" not in deployment["spec"], name
        hpa = autoscalers[name]
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"], name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (budget,) = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert budget["spec"].get("maxUnavailable") == 1 or budget["spec"].get("minAvailable")
        strategy = deployment["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0, name
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"]: c for c in spread}
        assert keys["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule", name
        assert "topology.kubernetes.io/zone" in keys, name
        for constraint in spread:
            assert selects(constraint["labelSelector"], labels), name


def test_the_gateway_stops_taking_traffic_before_it_stops(manifests: list[dict[str, Any]]) -> None:
    gateway = of_kind(manifests, "Deployment")["gateway"]
    pod = gateway["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    env = env_of(container)
    drain, grace = float(env["SHUTDOWN_DRAIN_SECONDS"]), float(env["SHUTDOWN_GRACE_SECONDS"])
    assert drain > 0
    assert pod["terminationGracePeriodSeconds"] > float(pause[1]) + drain + grace
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for name, deployment in of_kind(manifests, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        grace = float(env_of(pod["containers"][0])["SHUTDOWN_GRACE_SECONDS"])
        assert pod["terminationGracePeriodSeconds"] > grace, name


def project_version() -> str:
    text = (K8S.parents[1] / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, flags=re.MULTILINE)
    assert match
    return match.group(1)


def render() -> tuple[list[dict[str, Any]], str]:
    """The manifests as `kubectl apply -k` would send them, and what rendered them: kubectl's
    kustomize when installed, else the same transformations this kustomization uses
    (namespace, labels, image tags) applied here."""
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        result = subprocess.run(
            [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return [d for d in yaml.safe_load_all(result.stdout) if d], "kubectl kustomize"
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    images = {i["name"]: i for i in kustomization.get("images", [])}
    labels: dict[str, str] = {}
    for entry in kustomization.get("labels", []):
        labels |= entry["pairs"]
    documents = []
    for resource in kustomization["resources"]:
        for doc in load(K8S / resource):
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kustomization["namespace"]
            doc["metadata"].setdefault("labels", {}).update(labels)
            for container in (
                doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            ):
                image = images.get(container["image"])
                if image is not None:
                    suffix = f"@{image['digest']}" if "digest" in image else f":{image['newTag']}"
                    container["image"] = image.get("newName", container["image"]) + suffix
            documents.append(doc)
    return documents, "the kustomization's transformations in Python (kubectl not installed)"


KUBERNETES_VERSION = "1.30.0"  # the oldest release these manifests support


def test_rendered_manifests_validate_against_the_kubernetes_schemas(
    record_property: Callable[[str, object], None],
) -> None:
    documents, how = render()
    record_property("rendered_with", how)
    print(f"rendered with {how}; validated against Kubernetes {KUBERNETES_VERSION} (strict)")
    kinds = {doc["kind"] for doc in documents}
    assert {
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{doc['kind']}/{doc['metadata']['name']}: {exc}") from None
        assert doc["metadata"].get("namespace", "server-scout") == "server-scout"


def test_images_are_pinned_to_an_immutable_tag_or_a_digest() -> None:
    documents, _ = render()
    images = [
        c["image"]
        for doc in documents
        if doc["kind"] == "Deployment"
        for c in doc["spec"]["template"]["spec"]["containers"]
    ]
    assert images
    for image in images:
        assert "@sha256:" in image or image.endswith(f":{project_version()}"), image


# -- network policies: only the architecture's flows ----------------------------------------

MONITORING = "monitoring"
EXTERNAL = "external"  # PostgreSQL, Redis, clients: outside the namespace


def _peer_allows(peers: list[dict[str, Any]] | None, other: str) -> bool:
    """Whether a rule's from/to list admits `other` (a pod name, MONITORING or EXTERNAL)."""
    if not peers:
        return True  # no peers: any source or destination
    for peer in peers:
        namespace = peer.get("namespaceSelector")
        pods = peer.get("podSelector")
        if namespace is not None:
            names = namespace.get("matchLabels", {}).values()
            if other == MONITORING and MONITORING in names:
                return True
            continue
        if pods is None or other in (MONITORING, EXTERNAL):
            continue
        if pods == {} or selects(pods, {"app.kubernetes.io/name": other}):
            return True
    return False


def _allowed(
    policies: list[dict[str, Any]], pod: str, direction: str, other: str, port: int
) -> bool:
    selected = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        or selects(p["spec"]["podSelector"], {"app.kubernetes.io/name": pod})
    ]
    kind = "Ingress" if direction == "ingress" else "Egress"
    assert any(kind in p["spec"]["policyTypes"] for p in selected), f"{pod}: no {kind} policy"
    key = "from" if direction == "ingress" else "to"
    for policy in selected:
        for rule in policy["spec"].get(direction, []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if (not ports or port in ports) and _peer_allows(rule.get(key), other):
                return True
    return False


def flow(policies: list[dict[str, Any]], source: str, target: str, port: int) -> bool:
    """source -> target:port is allowed by the source's egress and the target's ingress."""
    out = source in (MONITORING, EXTERNAL) or _allowed(policies, source, "egress", target, port)
    into = target in (MONITORING, EXTERNAL) or _allowed(policies, target, "ingress", source, port)
    return out and into


ARCHITECTURE = {
    (EXTERNAL, "gateway", 8443),
    (EXTERNAL, "gateway", 8080),
    ("gateway", "auth", 50051),
    ("gateway", "keys", 50052),
    ("gateway", "ingest", 50053),
    ("gateway", EXTERNAL, 6379),
    ("auth", EXTERNAL, 6379),
    ("keys", EXTERNAL, 6379),
    ("auth", EXTERNAL, 5432),
    ("keys", EXTERNAL, 5432),
    ("ingest", EXTERNAL, 5432),
} | {(MONITORING, pod, 9100) for pod in ("gateway", "auth", "keys", "ingest")}
# The public ports are open to every source, the monitoring namespace included.
ARCHITECTURE |= {(MONITORING, "gateway", 8443), (MONITORING, "gateway", 8080)}


def test_network_policies_allow_only_the_architectures_flows(
    manifests: list[dict[str, Any]],
) -> None:
    policies = list(of_kind(manifests, "NetworkPolicy").values())
    deny = of_kind(manifests, "NetworkPolicy")["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    pods = ("gateway", "auth", "keys", "ingest")
    ports = {port for _, _, port in ARCHITECTURE} | {9999}
    for source in (*pods, EXTERNAL, MONITORING):
        for target in (*pods, EXTERNAL):
            if source == target or (source in (EXTERNAL, MONITORING) and target == EXTERNAL):
                continue
            for port in ports:
                expected = (source, target, port) in ARCHITECTURE
                assert flow(policies, source, target, port) == expected, (source, target, port)
