"""The gRPC services behind the gateway, and the identity each call carries."""

from __future__ import annotations

import grpc

from scout.auth.v1 import auth_pb2_grpc
from scout.ingest.v1 import ingest_pb2_grpc
from scout.keys.v1 import keys_pb2_grpc
from scout_kit.grpc_client import call_metadata, create_channel
from scout_kit.identity import Identity, TokenIssuer, service_identity

GATEWAY_IDENTITY = service_identity("gateway")


class Backends:
    def __init__(
        self,
        *,
        key_service_addr: str,
        auth_service_addr: str,
        ingest_service_addr: str,
        issuer: TokenIssuer,
        timeout: float,
    ) -> None:
        self._channels: list[grpc.aio.Channel] = []
        self.keys = keys_pb2_grpc.KeyServiceStub(self._channel(key_service_addr))
        self.auth = auth_pb2_grpc.AuthServiceStub(self._channel(auth_service_addr))
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self._channel(ingest_service_addr))
        self._issuer = issuer
        self.timeout = timeout

    def _channel(self, target: str) -> grpc.aio.Channel:
        channel = create_channel(target)
        self._channels.append(channel)
        return channel

    def metadata(self, identity: Identity) -> tuple[tuple[str, str], ...]:
        """Metadata for a call made on behalf of an authenticated caller."""
        return call_metadata(self._issuer.token_for(identity))

    def service_metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata for a call the gateway makes as itself (validation, usage reports)."""
        return call_metadata(self._issuer.token_for(GATEWAY_IDENTITY))

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
