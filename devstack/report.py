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


def dashboard_lines(url: str, ca: Path) -> list[str]:
    """Where a person opens the dashboard, first: it is what most come for."""
    return [
        f"Dashboard:   {url}/  (sign in with the demo user below)",
        f"             Your browser does not know the development CA: import {ca}",
        "             into it (certificate authorities), or accept its warning for localhost.",
        "",
    ]


def format_summary(
    topology: Topology,
    *,
    database: Datastore,
    redis: Datastore,
    ca_file: Path,
    seed: SeedResult,
    credentials_file: Path,
) -> str:
    ca = ca_file.resolve()
    first_url = topology.gateways[0].url
    lines = ["", "Server Scout is running. Press Ctrl-C to stop everything.", ""]
    lines += dashboard_lines(first_url, ca)
    lines.append("Replicas:")
    for replica in topology.replicas:
        if replica.is_gateway:
            detail = f"{replica.url}  (plain HTTP refuser on http://localhost:{replica.http_port})"
        else:
            detail = f"{replica.address}  (gRPC, {replica.module})"
        lines.append(f"  {replica.name:<12} {detail}")
    for label, store in (("PostgreSQL", database), ("Redis", redis)):
        where = f"private, data in {store.data_dir}" if store.private else "from the environment"
        lines.append(f"  {label:<12} {redact(store.url)}  ({where})")
        if label == "PostgreSQL" and store.private:
            lines.append(f"  {'':<12} {psql_command(store.url)}")

    lines += [
        "",
        "HTTPS: " + "  ".join(g.url for g in topology.gateways),
        f"The gateways' certificate is signed by the development CA {ca}",
        "Trust it instead of turning verification off:",
        f"  export SSL_CERT_FILE={shlex.quote(str(ca))}    # Python, the agent, many tools",
        f"  curl --cacert {shlex.quote(str(ca))} {first_url}/healthz",
        "",
    ]

    credentials = seed.credentials
    password = credentials.password or "(unknown: this user was not created by this data folder)"
    lines += [
        f"Demo user:   {credentials.email}",
        f"Password:    {password}",
        f"Demo server: {credentials.server_name} (id {credentials.server_id})",
    ]
    if credentials.api_key:
        state = "new" if seed.created_server or seed.rotated_key else "existing"
        lines.append(f"API key:     {credentials.api_key}  ({state}; kept in {credentials_file})")
    else:
        lines.append(
            "API key:     not known here (the server exists and its key was rotated or made "
            "elsewhere; keys are stored only as hashes)."
        )
    if not (seed.created_server or seed.rotated_key):
        lines.append(f"             {credentials.server_name} already exists; rotate its key with:")
        lines.append(f"             {ROTATE_COMMAND}")
    if credentials.api_key:
        lines += ["", "Post a metric:", metric_curl(first_url, credentials.api_key, ca)]
    lines.append("")
    return "\n".join(lines)
