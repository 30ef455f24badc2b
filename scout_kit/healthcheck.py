"""Container healthchecks without extra binaries: `python -m scout_kit.healthcheck TARGET`.

TARGET is a gRPC address (host:port), checked with the standard health service, or an http(s)
URL such as the gateway's https://127.0.0.1:8443/healthz. Exits 0 when healthy, 1 otherwise (not
serving, unreachable, timed out).

A service's gRPC port takes only mutual TLS: the check presents the certificate named by
INTERNAL_TLS_CA_FILE, INTERNAL_TLS_CERT_FILE and INTERNAL_TLS_KEY_FILE (the container's own), and
talks plain text only to a HEALTH_ADDR listener when those are unset or `--plaintext` is given.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scout_kit.tls import (
    CA_VARIABLE,
    CERT_VARIABLE,
    KEY_VARIABLE,
    CertificateFiles,
    TlsFilesError,
    TlsMaterial,
    server_name,
)


def _channel(address: str, tls: TlsMaterial | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(tls.ca, tls.private_key, tls.certificate_chain)
    return grpc.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", server_name(address))]
    )


def check(
    address: str, service: str = "", timeout: float = 3.0, tls: TlsMaterial | None = None
) -> bool:
    """True when the server at `address` answers SERVING for `service` ("" = the whole server),
    over mutual TLS with `tls`, else in plain text."""
    with _channel(address, tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, cafile: str | None = None, timeout: float = 3.0) -> bool:
    """True when GET `url` answers 2xx. With `cafile` the certificate is verified against it;
    without, only a loopback URL may be probed, unverified: a container probing itself, where
    the certificate names the public host and nothing secret is sent."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    context = None
    if parts.scheme == "https":
        if cafile:
            context = ssl.create_default_context(cafile=cafile)
        elif _is_loopback(parts.hostname):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            raise ValueError("an https URL that is not on loopback needs --cafile")
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def tls_from_env(environ: Mapping[str, str]) -> TlsMaterial | None:
    """The internal TLS files named in the environment, or None when none is set."""
    paths = [environ.get(name, "").strip() for name in (CA_VARIABLE, CERT_VARIABLE, KEY_VARIABLE)]
    if not any(paths):
        return None
    if not all(paths):
        raise TlsFilesError(f"set all of {CA_VARIABLE}, {CERT_VARIABLE} and {KEY_VARIABLE}")
    return CertificateFiles(*(Path(p) for p in paths)).load()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scout_kit.healthcheck",
        description="Exit 0 if TARGET is healthy, else 1.",
    )
    parser.add_argument("target", metavar="TARGET", help="gRPC host:port, or an http(s) URL to GET")
    parser.add_argument("--service", default="", help="gRPC service name (default: the server)")
    parser.add_argument("--cafile", help="CA to verify an https TARGET against")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument(
        "--plaintext",
        action="store_true",
        help="gRPC without TLS (a HEALTH_ADDR listener), even when INTERNAL_TLS_* are set",
    )
    args = parser.parse_args(argv)
    if args.target.startswith(("http://", "https://")):
        try:
            healthy = check_url(args.target, args.cafile, args.timeout)
        except ValueError as exc:
            parser.error(str(exc))
    else:
        try:
            tls = None if args.plaintext else tls_from_env(os.environ)
        except TlsFilesError as exc:
            parser.error(str(exc))
        healthy = check(args.target, args.service, args.timeout, tls)
    if healthy:
        return 0
    print(f"{args.target}: not healthy", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
