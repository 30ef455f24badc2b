"""Container healthchecks without extra binaries: `python -m scout_kit.healthcheck TARGET`.

TARGET is a gRPC address (host:port), checked with the standard health service, or an http(s)
URL such as the gateway's https://127.0.0.1:8443/healthz. Exits 0 when healthy, 1 otherwise (not
serving, unreachable, timed out).
"""

from __future__ import annotations

import argparse
import ipaddress
import ssl
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> bool:
    """True when the server at `address` answers SERVING for `service` ("" = the whole server)."""
    with grpc.insecure_channel(address) as channel:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scout_kit.healthcheck",
        description="Exit 0 if TARGET is healthy, else 1.",
    )
    parser.add_argument("target", metavar="TARGET", help="gRPC host:port, or an http(s) URL to GET")
    parser.add_argument("--service", default="", help="gRPC service name (default: the server)")
    parser.add_argument("--cafile", help="CA to verify an https TARGET against")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    if args.target.startswith(("http://", "https://")):
        try:
            healthy = check_url(args.target, args.cafile, args.timeout)
        except ValueError as exc:
            parser.error(str(exc))
    else:
        healthy = check(args.target, args.service, args.timeout)
    if healthy:
        return 0
    print(f"{args.target}: not healthy", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
