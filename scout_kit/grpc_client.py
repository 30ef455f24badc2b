"""gRPC client side: mutual-TLS channels that balance over replicas, and per-call metadata."""

from __future__ import annotations

import json
from collections.abc import Sequence

import grpc

from scout_kit.context import (
    AUTHORIZATION_METADATA,
    CLIENT_ADDRESS_METADATA,
    REQUEST_ID_METADATA,
    current_client_address,
    current_request_id,
)
from scout_kit.tls import TlsMaterial, server_name

# Retry only what is safe to repeat: transport failures before the server saw the call.
_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


def channel_credentials(material: TlsMaterial) -> grpc.ChannelCredentials:
    """Trust only the internal CA, and present our own certificate (mutual TLS)."""
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca,
        private_key=material.private_key,
        certificate_chain=material.certificate_chain,
    )


def create_channel(
    target: str,
    tls: TlsMaterial,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A mutual-TLS channel to every replica behind `target` (round robin), with keepalive so a
    dead peer is noticed quickly. The service's certificate must name the target's host (for an
    ipv4: list, its first host). Retries cover only UNAVAILABLE, which gRPC reports when a call
    never reached a handler or a dependency refused it; every retried RPC of ours is idempotent
    or fails before changing anything."""
    return grpc.aio.secure_channel(
        target,
        channel_credentials(tls),
        interceptors=list(interceptors) or None,
        options=[
            ("grpc.ssl_target_name_override", server_name(target)),
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
        ],
    )


def call_metadata(identity_token: str) -> tuple[tuple[str, str], ...]:
    """Metadata for an internal call: identity token, request id and end client address."""
    metadata: list[tuple[str, str]] = [(AUTHORIZATION_METADATA, f"Bearer {identity_token}")]
    request_id = current_request_id()
    if request_id:
        metadata.append((REQUEST_ID_METADATA, request_id))
    address = current_client_address()
    if address:
        metadata.append((CLIENT_ADDRESS_METADATA, address))
    return tuple(metadata)
