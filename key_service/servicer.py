"""The KeyService gRPC edge: authorization from the caller's identity, answers as messages.

Domain errors reach the caller through scout_kit's one server interceptor (each error class
names its status code)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC

import grpc
from google.protobuf.message import Message

from key_service.domain import KeyManager
from key_service.errors import InvalidRequest, ServerNotFound
from key_service.models import (
    ActivityEvent,
    KeyRejectionReport,
    KeyStatus,
    KeyUsageReport,
    ServerRecord,
)
from scout.keys.v1 import keys_pb2, keys_pb2_grpc
from scout_kit.context import current_client_address
from scout_kit.errors import PermissionDenied
from scout_kit.grpc_server import current_identity, require_service
from scout_kit.identity import Identity, PrincipalKind
from scout_kit.timestamps import optional_timestamp, timestamp_fault

Context = grpc.aio.ServicerContext[Message, Message]

GATEWAY = "gateway"
# More requests than one gateway flush can have seen; the counters are bigint.
MAX_REPORTED_COUNT = 2**31 - 1

_STATUS = {
    KeyStatus.VALID: keys_pb2.KEY_STATUS_VALID,
    KeyStatus.NOT_FOUND: keys_pb2.KEY_STATUS_NOT_FOUND,
    KeyStatus.ROTATED: keys_pb2.KEY_STATUS_ROTATED,
    KeyStatus.REVOKED: keys_pb2.KEY_STATUS_REVOKED,
}


def server_message(server: ServerRecord) -> keys_pb2.Server:
    return keys_pb2.Server(
        id=server.id,
        account_id=server.account_id,
        name=server.name,
        created_at=optional_timestamp(server.created_at),
        key_hint=server.key_hint,
        key_created_at=optional_timestamp(server.key_created_at),
        key_last_used_at=optional_timestamp(server.key_last_used_at),
        key_last_used_address=server.key_last_used_address or "",
        paused_at=optional_timestamp(server.paused_at),
    )


def event_message(event: ActivityEvent) -> keys_pb2.ActivityEvent:
    return keys_pb2.ActivityEvent(
        id=event.id,
        type=event.type,
        occurred_at=optional_timestamp(event.occurred_at),
        actor=event.actor,
        client_address=event.client_address,
        key_hint=event.key_hint,
        details_json=json.dumps(event.details),
    )


def _scope() -> tuple[Identity, str]:
    """The caller and the account it acts in; only users and servers act in an account."""
    identity = current_identity()
    if identity.kind is PrincipalKind.SERVICE or not identity.account_id:
        raise PermissionDenied("an account principal is required")
    return identity, identity.account_id


def _require_user() -> tuple[Identity, str]:
    identity, account = _scope()
    if identity.kind is not PrincipalKind.USER:
        raise PermissionDenied("this action needs a signed-in user, not an API key")
    return identity, account


def _visible(identity: Identity, server_id: str) -> None:
    """A key sees only its own server; anything else is not found (never forbidden)."""
    if identity.kind is PrincipalKind.SERVER and server_id != identity.subject:
        raise ServerNotFound()


class KeyServicer(keys_pb2_grpc.KeyServiceServicer):
    def __init__(self, manager: KeyManager) -> None:
        self._keys = manager

    async def ValidateKey(
        self, request: keys_pb2.ValidateKeyRequest, context: Context
    ) -> keys_pb2.ValidateKeyResponse:
        await require_service(context, GATEWAY)
        result = await self._keys.validate(request.key_sha256)
        return keys_pb2.ValidateKeyResponse(
            status=_STATUS[result.status],
            key_id=result.key_id or "",
            server_id=result.server_id or "",
            account_id=result.account_id or "",
            valid_until=optional_timestamp(result.valid_until),
        )

    async def RecordKeyUsage(
        self, request: keys_pb2.RecordKeyUsageRequest, context: Context
    ) -> keys_pb2.RecordKeyUsageResponse:
        await require_service(context, GATEWAY)
        stamps = [u.last_used_at for u in request.usages]
        stamps += [r.last_rejected_at for r in request.rejections]
        for stamp in stamps:
            fault = timestamp_fault(stamp)
            if fault is not None:
                raise InvalidRequest(f"a report's time {fault}")
        counts = [u.request_count for u in request.usages]
        counts += [r.attempt_count for r in request.rejections]
        if any(count > MAX_REPORTED_COUNT for count in counts):
            raise InvalidRequest(f"a report counts at most {MAX_REPORTED_COUNT} requests")
        try:
            usages = [
                KeyUsageReport(
                    key_id=str(uuid.UUID(u.key_id)),
                    last_used_at=u.last_used_at.ToDatetime(tzinfo=UTC),
                    address=u.last_used_address[:100],
                    count=u.request_count,
                )
                for u in request.usages
            ]
            rejections = [
                KeyRejectionReport(
                    key_id=str(uuid.UUID(r.key_id)),
                    last_rejected_at=r.last_rejected_at.ToDatetime(tzinfo=UTC),
                    address=r.last_rejected_address[:100],
                    count=r.attempt_count,
                )
                for r in request.rejections
            ]
        except ValueError:
            raise InvalidRequest("key_id must be a UUID") from None
        await self._keys.record_usage(usages, rejections)
        return keys_pb2.RecordKeyUsageResponse()

    async def CreateServer(
        self, request: keys_pb2.CreateServerRequest, context: Context
    ) -> keys_pb2.CreateServerResponse:
        identity, account = _require_user()
        created = await self._keys.create_server(
            account, request.name, actor=identity.principal, address=current_client_address()
        )
        return keys_pb2.CreateServerResponse(
            server=server_message(created.server), api_key=created.api_key
        )

    async def ListServers(
        self, request: keys_pb2.ListServersRequest, context: Context
    ) -> keys_pb2.ListServersResponse:
        identity, account = _scope()
        only = identity.subject if identity.kind is PrincipalKind.SERVER else None
        servers, token = await self._keys.list_servers(
            account, only_server=only, size=request.page_size, token=request.page_token
        )
        return keys_pb2.ListServersResponse(
            servers=[server_message(s) for s in servers], next_page_token=token
        )

    async def GetServer(
        self, request: keys_pb2.GetServerRequest, context: Context
    ) -> keys_pb2.GetServerResponse:
        identity, account = _scope()
        _visible(identity, request.server_id)
        server = await self._keys.get_server(account, request.server_id)
        return keys_pb2.GetServerResponse(server=server_message(server))

    async def DeleteServer(
        self, request: keys_pb2.DeleteServerRequest, context: Context
    ) -> keys_pb2.DeleteServerResponse:
        identity, account = _require_user()
        await self._keys.delete_server(
            account,
            request.server_id,
            actor=identity.principal,
            address=current_client_address(),
        )
        return keys_pb2.DeleteServerResponse()

    async def UpdateServer(
        self, request: keys_pb2.UpdateServerRequest, context: Context
    ) -> keys_pb2.UpdateServerResponse:
        identity, account = _require_user()
        server = await self._keys.update_server(
            account,
            request.server_id,
            name=request.name if request.HasField("name") else None,
            paused=request.paused if request.HasField("paused") else None,
            actor=identity.principal,
            address=current_client_address(),
        )
        return keys_pb2.UpdateServerResponse(server=server_message(server))

    async def RotateKey(
        self, request: keys_pb2.RotateKeyRequest, context: Context
    ) -> keys_pb2.RotateKeyResponse:
        identity, account = _require_user()
        rotated = await self._keys.rotate_key(
            account,
            request.server_id,
            grace_seconds=request.grace_seconds,
            actor=identity.principal,
            address=current_client_address(),
        )
        return keys_pb2.RotateKeyResponse(
            server=server_message(rotated.server),
            api_key=rotated.api_key,
            old_key_valid_until=optional_timestamp(rotated.old_key_valid_until),
        )

    async def ListActivity(
        self, request: keys_pb2.ListActivityRequest, context: Context
    ) -> keys_pb2.ListActivityResponse:
        identity, account = _scope()
        _visible(identity, request.server_id)
        events, token = await self._keys.list_activity(
            account,
            request.server_id,
            size=request.page_size,
            token=request.page_token,
            types=list(request.types),
        )
        return keys_pb2.ListActivityResponse(
            events=[event_message(e) for e in events], next_page_token=token
        )
