"""What `make run` prints once everything is up: addresses, TLS trust, demo credentials, a curl."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devstack.seed import SeedResult
from devstack.topology import Topology

ROTATE_COMMAND = ".venv/bin/python -m devstack --rotate-demo-key"
LATEST_SAMPLES = "select * from ingest.sample_values order by ts desc limit 5"


@dataclass(frozen=True)
class Datastore:
    url: str
    private: bool
    data_dir: Path | None = None


def redact(url: str) -> str:
    """The URL with any password replaced, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def metric_curl(url: str, api_key: str, ca_file: Path) -> str:
    """A curl that posts one sample stamped with the current time (the shell fills it in)."""
    body = '\'{"samples":[{"ts": \'"$(date +%s)"\', "metrics":{"cpu.percent": 12.5}}]}\''
    return (
        f"curl --cacert {shlex.quote(str(ca_file))} -X POST {url}/api/v1/metrics \\\n"
        f"    -H 'X-API-Key: {api_key}' -H 'Content-Type: application/json' \\\n"
        f"    -d {body}"
    )


def psql_command(url: str) -> str:
    parts = urlsplit(url)
    database = parts.path.lstrip("/") or "postgres"
    return (
        f"psql -h {parts.hostname} -p {parts.port or 5432} -U {parts.username or 'postgres'} "
        f"{database} -c {shlex.quote(LATEST_SAMPLES)}"
    )


def replica_lines(topology: Topology, database: Datastore, redis: Datastore) -> list[str]:
    lines = ["Replicas (each one's Prometheus metrics at the address beside it):"]
    for replica in topology.replicas:
        if replica.is_gateway:
            detail = f"{replica.url}  (plain HTTP refuser on http://localhost:{replica.http_port})"
        else:
            detail = f"{replica.address}  (gRPC over mutual TLS, {replica.module})"
        lines.append(f"  {replica.name:<12} {detail}")
        lines.append(f"  {'':<12} metrics {replica.metrics_url}")
    for label, store in (("PostgreSQL", database), ("Redis", redis)):
        where = f"private, data in {store.data_dir}" if store.private else "from the environment"
        lines.append(f"  {label:<12} {redact(store.url)}  ({where})")
        if label == "PostgreSQL" and store.private:
            lines.append(f"  {'':<12} {psql_command(store.url)}")
    return lines


def dashboard_lines(url: str, ca_file: Path) -> list[str]:
    return [
        f"Dashboard:   {url}/  (sign in with the demo user below)",
        f"             Your browser does not know the development CA: import {ca_file.resolve()}",
        "             into it (certificate authorities), or accept its warning for localhost.",
    ]


def trust_lines(gateway_urls: list[str], ca_file: Path) -> list[str]:
    ca = shlex.quote(str(ca_file.resolve()))
    return [
        "HTTPS: " + "  ".join(gateway_urls),
        f"The gateways' certificate is signed by the development CA {ca_file.resolve()}",
        "Trust it instead of turning verification off:",
        f"  export SSL_CERT_FILE={ca}    # Python, the agent, many tools",
        f"  curl --cacert {ca} {gateway_urls[0]}/healthz",
    ]


def demo_lines(seed: SeedResult, credentials_file: Path, url: str, ca_file: Path) -> list[str]:
    """The demo user, server and key, and a curl that posts with it: on every run."""
    credentials = seed.credentials
    password = credentials.password or "(unknown: this user was not created by this data folder)"
    lines = [
        f"Demo user:   {credentials.email}",
        f"Password:    {password}",
        f"Demo server: {credentials.server_name} (id {credentials.server_id})",
    ]
    if credentials.api_key:
        state = "new" if seed.created_server or seed.rotated_key else "remembered"
        lines.append(f"API key:     {credentials.api_key}  ({state}; kept in {credentials_file})")
    else:
        lines += [
            "API key:     not known here (it was rotated or made elsewhere; keys are stored",
            "             only as hashes). Give demo-server a new one, remembered from then on:",
            f"             {ROTATE_COMMAND}",
        ]
    key = credentials.api_key or "<API key>"
    lines += ["", "Post a metric:", metric_curl(url, key, ca_file.resolve())]
    return lines


def format_summary(
    topology: Topology,
    *,
    database: Datastore,
    redis: Datastore,
    ca_file: Path,
    seed: SeedResult,
    credentials_file: Path,
) -> str:
    urls = [g.url for g in topology.gateways]
    lines = ["", "Server Scout is running. Press Ctrl-C to stop everything.", ""]
    lines += [*dashboard_lines(urls[0], ca_file), ""]
    lines += replica_lines(topology, database, redis)
    lines += ["", *trust_lines(urls, ca_file), ""]
    lines += demo_lines(seed, credentials_file, urls[0], ca_file)
    lines.append("")
    return "\n".join(lines)


def format_already_running(
    pid: int,
    gateway_urls: list[str],
    metrics_urls: dict[str, str],
    *,
    ca_file: Path,
    seed: SeedResult | None,
    credentials_file: Path,
) -> str:
    """What a second `make run` on the same checkout says instead of starting another stack."""
    lines = [
        "",
        f"Server Scout is already running from this checkout (make run, pid {pid}).",
        "Stop it with Ctrl-C in its terminal (or kill " + str(pid) + ") before starting another.",
        "",
        *dashboard_lines(gateway_urls[0], ca_file),
        "",
    ]
    lines += [f"  {name:<12} metrics {url}" for name, url in metrics_urls.items()]
    lines += ["", *trust_lines(gateway_urls, ca_file), ""]
    if seed is not None:
        lines += demo_lines(seed, credentials_file, gateway_urls[0], ca_file)
    lines.append("")
    return "\n".join(lines)
