"""gRPC client side: channels that balance over replicas, and per-call metadata."""

from __future__ import annotations

import json

import grpc

from scout_kit.context import (
    AUTHORIZATION_METADATA,
    CLIENT_ADDRESS_METADATA,
    REQUEST_ID_METADATA,
    current_client_address,
    current_request_id,
)

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


def create_channel(target: str) -> grpc.aio.Channel:
    """A channel to every replica behind `target` (round robin), with keepalive so a dead peer
    is noticed quickly. Retries cover only UNAVAILABLE, which gRPC reports when a call never
    reached a handler or a dependency refused it; every retried RPC of ours is idempotent or
    fails before changing anything."""
    return grpc.aio.insecure_channel(
        target,
        options=[
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
