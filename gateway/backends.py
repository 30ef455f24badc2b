"""The gRPC services behind the gateway, the identity each call carries, and the mutual-TLS
channels to them (re-created when the internal certificate files change)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import grpc

from scout.auth.v1 import auth_pb2_grpc
from scout.ingest.v1 import ingest_pb2_grpc
from scout.keys.v1 import keys_pb2_grpc
from scout_kit.grpc_client import call_metadata, create_channel
from scout_kit.identity import Identity, TokenIssuer, service_identity
from scout_kit.tls import CertificateFiles, TlsFilesError

log = logging.getLogger(__name__)

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
        tls: CertificateFiles,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        self._targets = (key_service_addr, auth_service_addr, ingest_service_addr)
        self._tls = tls
        self._interceptors = list(interceptors)
        self._issuer = issuer
        self.timeout = timeout
        self._stamp = tls.stamp()
        self._channels: list[grpc.aio.Channel] = []
        self._closing: set[asyncio.Task[None]] = set()
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        """New channels (and stubs) with the certificate files as they are now."""
        material = self._tls.load()
        keys, auth, ingest = (
            create_channel(target, material, self._interceptors) for target in self._targets
        )
        self._channels = [keys, auth, ingest]
        self.keys = keys_pb2_grpc.KeyServiceStub(keys)
        self.auth = auth_pb2_grpc.AuthServiceStub(auth)
        self.ingest = ingest_pb2_grpc.IngestServiceStub(ingest)

    def reconnect_if_changed(self) -> bool:
        """Re-create the channels when the certificate files changed and are usable; calls in
        flight finish on the old channels, which are then closed."""
        stamp = self._tls.stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        old = self._channels
        try:
            self._connect()
        except TlsFilesError as exc:
            log.warning("internal TLS files changed but are not usable; kept the old: %s", exc)
            return False
        self.reconnects += 1
        log.info(
            "internal TLS certificate reloaded from %s; channels re-created", self._tls.cert_file
        )
        task = asyncio.create_task(self._close(old), name="close-old-channels")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return True

    async def watch_certificates(self, interval: float) -> None:
        """Runs until cancelled: checks the certificate files every `interval` seconds."""
        while True:
            await asyncio.sleep(interval)
            self.reconnect_if_changed()

    async def _close(self, channels: list[grpc.aio.Channel]) -> None:
        for channel in channels:
            await channel.close(grace=self.timeout)

    def metadata(self, identity: Identity) -> tuple[tuple[str, str], ...]:
        """Metadata for a call made on behalf of an authenticated caller."""
        return call_metadata(self._issuer.token_for(identity))

    def service_metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata for a call the gateway makes as itself (validation, usage reports)."""
        return call_metadata(self._issuer.token_for(GATEWAY_IDENTITY))

    async def close(self) -> None:
        for task in list(self._closing):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for channel in self._channels:
            await channel.close()
