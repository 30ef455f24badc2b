"""Make the secret files a deployment reads (docker compose mounts them; Kubernetes Secrets are
created from them). Files that exist are kept, so running it again changes nothing, and a
certificate is made again only when it is missing or expires within 30 days:

    .venv/bin/python scripts/deploy_secrets.py DIR [--public-host scout.example.com] [--owner 10001]
        [--namespace server-scout]

DIR/postgres-password, DIR/database-url   PostgreSQL's password and the services' URL with it
DIR/database-ha-url, database-replica-url  for docker-compose.ha.yml: both servers (following
                                         a promotion), and the standby alone (metric reads)
DIR/jwt-private.pem, DIR/jwt-public.pem   the identity-token key pair (the gateway signs)
DIR/internal/                            the internal CA (internal-ca.pem, its key beside it)
                                         and one certificate per component for mutual TLS
DIR/tls.crt, DIR/tls.key                 the gateway's public certificate: kept when you put
                                         your own there, else one from a new development CA
                                         (DIR/public-ca.pem) for --public-host

`--namespace` adds the Kubernetes Service names (`auth.NS.svc`, ...) to the service
certificates. The containers run as uid 10001, so give them the files with `--owner 10001`
(as root). Keep DIR out of version control; the internal CA key signs certificates every
component trusts.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from devstack.certs import (
    INTERNAL_SERVICES,
    ensure_dev_certificates,
    ensure_internal_certificates,
)
from devstack.jwt_keys import write_private
from scout_kit.identity import generate_keypair

DATABASE_HOST = "postgres:5432"  # compose's PostgreSQL service
REPLICA_HOST = "postgres-replica:5432"  # its streaming standby in docker-compose.ha.yml


def kubernetes_names(namespace: str | None) -> dict[str, list[str]]:
    if namespace is None:
        return {}
    return {
        service: [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]
        for service in INTERNAL_SERVICES
    }


def make(directory: Path, public_host: str, namespace: str | None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    password_file = directory / "postgres-password"
    if not password_file.exists():
        write_private(password_file, secrets.token_hex(24) + "\n")
    password = password_file.read_text().strip()
    database_url = directory / "database-url"
    if not database_url.exists():
        write_private(database_url, f"postgresql://scout:{password}@{DATABASE_HOST}/scout\n")
    ha_urls = {
        directory / "database-ha-url": f"{DATABASE_HOST},{REPLICA_HOST}/scout"
        "?target_session_attrs=read-write&connect_timeout=5",
        directory / "database-replica-url": f"{REPLICA_HOST}/scout?connect_timeout=5",
    }
    for path, where in ha_urls.items():
        if not path.exists():
            write_private(path, f"postgresql://scout:{password}@{where}\n")
    private_key, public_key = directory / "jwt-private.pem", directory / "jwt-public.pem"
    if not (private_key.exists() and public_key.exists()):
        private_pem, public_pem = generate_keypair()
        write_private(private_key, private_pem)
        public_key.write_text(public_pem)
    internal = ensure_internal_certificates(
        directory / "internal", extra_names=kubernetes_names(namespace)
    )
    public_cert, public_key_file = directory / "tls.crt", directory / "tls.key"
    if not (public_cert.exists() and public_key_file.exists()):
        made = ensure_dev_certificates(directory / "public-ca", (public_host,))
        public_cert.write_bytes(made.server_cert.read_bytes())
        write_private(public_key_file, made.server_key.read_text())
        (directory / "public-ca.pem").write_bytes(made.ca_cert.read_bytes())
    files = [password_file, database_url, *ha_urls, private_key, public_key, public_cert]
    files += [public_key_file]
    files += [internal.ca_file]
    for component in internal.components.values():
        files += [component.cert_file, component.key_file]
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--public-host", default="localhost", help="default %(default)s")
    parser.add_argument("--namespace", help="Kubernetes namespace of the services")
    parser.add_argument("--owner", type=int, help="give every file to this uid (as root)")
    args = parser.parse_args(argv)
    files = make(args.directory, args.public_host, args.namespace)
    if args.owner is not None:
        for path in [args.directory, args.directory / "internal", *files]:
            os.chown(path, args.owner, args.owner)
    print(f"secret files in {args.directory.resolve()} ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
