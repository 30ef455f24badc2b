"""Which replicas the dev stack runs, on which ports, and the environment each one gets."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack.certs import GATEWAY, InternalCertificates
from devstack.ports import LOOPBACK, PortPlan
from devstack.processes import ProcessSpec

# Variables the orchestrator decides per replica; a value in the calling shell would make every
# replica fight over one port or read a key it should not hold.
_PER_REPLICA = (
    "LISTEN_ADDR",
    "LISTEN_HOST",
    "HTTPS_PORT",
    "HTTP_PORT",
    "METRICS_ADDR",
    "HEALTH_ADDR",
    "PUBLIC_URL",
    "INTERNAL_TLS_CA_FILE",
    "INTERNAL_TLS_CERT_FILE",
    "INTERNAL_TLS_KEY_FILE",
    "INTERNAL_JWT_PRIVATE_KEY",
    "INTERNAL_JWT_PRIVATE_KEY_FILE",
    "INTERNAL_JWT_PUBLIC_KEY",
    "INTERNAL_JWT_PUBLIC_KEY_FILE",
)


@dataclass(frozen=True)
class ServiceKind:
    """A gRPC service: its replica name prefix, module and the address variable callers use."""

    prefix: str
    module: str
    addr_variable: str
    uses_redis: bool


AUTH = ServiceKind("auth", "auth_service", "AUTH_SERVICE_ADDR", uses_redis=True)
KEYS = ServiceKind("keys", "key_service", "KEY_SERVICE_ADDR", uses_redis=True)
INGEST = ServiceKind("ingest", "ingest_service", "INGEST_SERVICE_ADDR", uses_redis=False)
GRPC_SERVICES = (AUTH, KEYS, INGEST)


@dataclass(frozen=True)
class ReplicaCounts:
    gateways: int = 1
    auth: int = 1
    keys: int = 1
    ingest: int = 1

    def of(self, kind: ServiceKind) -> int:
        return {AUTH: self.auth, KEYS: self.keys, INGEST: self.ingest}[kind]


@dataclass(frozen=True)
class SharedConfig:
    """What every replica is given: where the data lives and the development secrets."""

    database_url: str
    redis_url: str
    redis_prefix: str
    jwt_private_key_file: Path
    jwt_public_key_file: Path
    tls_cert_file: Path
    tls_key_file: Path
    internal: InternalCertificates
    base_env: Mapping[str, str] = field(default_factory=dict)
    text_logs: bool = True
    python: str = sys.executable


@dataclass(frozen=True)
class Replica:
    name: str
    module: str
    env: Mapping[str, str]
    port: int  # gRPC port, or the gateway's HTTPS port
    metrics_port: int
    http_port: int | None = None

    @property
    def is_gateway(self) -> bool:
        return self.module == "gateway"

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        """What a client uses: the HTTPS URL of a gateway, host:port of a gRPC service."""
        return f"https://localhost:{self.port}" if self.is_gateway else self.address

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    def spec(self, python: str) -> ProcessSpec:
        return ProcessSpec(self.name, (python, "-m", self.module), self.env)


@dataclass(frozen=True)
class Topology:
    services: list[Replica]
    gateways: list[Replica]

    @property
    def replicas(self) -> list[Replica]:
        return [*self.services, *self.gateways]


def grpc_target(ports: Sequence[int]) -> str:
    """A gRPC target for the replicas on `ports`: host:port for one, else the ipv4: list that
    the gateways' channels balance round robin."""
    if not ports:
        raise ValueError("a target needs at least one replica")
    if len(ports) == 1:
        return f"{LOOPBACK}:{ports[0]}"
    return "ipv4:" + ",".join(f"{LOOPBACK}:{port}" for port in ports)


def common_env(shared: SharedConfig, component: str) -> dict[str, str]:
    env = {k: v for k, v in shared.base_env.items() if k not in _PER_REPLICA}
    certificate = shared.internal.of(component)
    env |= {
        "INTERNAL_TLS_CA_FILE": str(shared.internal.ca_file),
        "INTERNAL_TLS_CERT_FILE": str(certificate.cert_file),
        "INTERNAL_TLS_KEY_FILE": str(certificate.key_file),
    }
    env["SCOUT_ENV"] = "development"
    env["PYTHONUNBUFFERED"] = "1"
    if "LOG_FORMAT" not in env:
        env["LOG_FORMAT"] = "text" if shared.text_logs else "json"
    env["REDIS_PREFIX"] = shared.redis_prefix
    env["REDIS_URL"] = shared.redis_url
    return env


def plan(counts: ReplicaCounts, ports: PortPlan, shared: SharedConfig) -> Topology:
    """Every replica with its ports and environment (nothing is started here)."""
    services: list[Replica] = []
    targets: dict[str, str] = {}
    for kind in GRPC_SERVICES:
        names = [f"{kind.prefix}-{index}" for index in range(1, counts.of(kind) + 1)]
        replica_ports = [ports.take(f"{name}/grpc") for name in names]
        targets[kind.addr_variable] = grpc_target(replica_ports)
        for name, port in zip(names, replica_ports, strict=True):
            env = common_env(shared, kind.prefix)
            if not kind.uses_redis:
                env.pop("REDIS_URL", None)
            metrics_port = ports.take(f"{name}/metrics")
            env |= {
                "LISTEN_ADDR": f"{LOOPBACK}:{port}",
                "METRICS_ADDR": f"{LOOPBACK}:{metrics_port}",
                "DATABASE_URL": shared.database_url,
                "INTERNAL_JWT_PUBLIC_KEY_FILE": str(shared.jwt_public_key_file),
            }
            services.append(Replica(name, kind.module, env, port, metrics_port))
    gateways = []
    for index in range(1, counts.gateways + 1):
        name = f"gateway-{index}"
        https_port, http_port = ports.take(f"{name}/https"), ports.take(f"{name}/http")
        metrics_port = ports.take(f"{name}/metrics")
        env = common_env(shared, GATEWAY)
        # The gateway holds no database credentials: everything goes through the services.
        env.pop("DATABASE_URL", None)
        env |= targets | {
            "LISTEN_HOST": LOOPBACK,
            "HTTPS_PORT": str(https_port),
            "HTTP_PORT": str(http_port),
            "PUBLIC_URL": f"https://localhost:{https_port}",
            "METRICS_ADDR": f"{LOOPBACK}:{metrics_port}",
            "TLS_CERT_FILE": str(shared.tls_cert_file),
            "TLS_KEY_FILE": str(shared.tls_key_file),
            "INTERNAL_JWT_PRIVATE_KEY_FILE": str(shared.jwt_private_key_file),
        }
        gateways.append(Replica(name, "gateway", env, https_port, metrics_port, http_port))
    return Topology(services, gateways)
