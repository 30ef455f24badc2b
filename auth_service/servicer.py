"""The AuthService gRPC edge: authorization from the caller's identity, answers as messages.

Domain errors reach the caller through scout_kit's one server interceptor (each error class
names its status code); ChangePassword, like Login, answers its refusals as a status in the
response instead.

Login, ValidateSession and Logout are for the gateway (service identity); the rest act for the
signed-in user named by the identity token, in the session the token names (`sid`).
"""

from __future__ import annotations

import json
from datetime import UTC

import grpc
from google.protobuf.message import Message

from auth_service.activity import ActivityEvent
from auth_service.domain import Authentication, Caller, LoginOutcome
from auth_service.errors import Throttled, WeakPassword, WrongPassword
from auth_service.sessions import SessionRecord, SessionState, SessionUse
from scout.auth.v1 import auth_pb2, auth_pb2_grpc
from scout_kit.context import current_client_address
from scout_kit.errors import PermissionDenied
from scout_kit.grpc_server import current_identity, require_service
from scout_kit.identity import AuthMethod, PrincipalKind
from scout_kit.timestamps import to_timestamp

Context = grpc.aio.ServicerContext[Message, Message]

GATEWAY = "gateway"

_LOGIN_STATUS = {
    LoginOutcome.OK: auth_pb2.LOGIN_STATUS_OK,
    LoginOutcome.INVALID_CREDENTIALS: auth_pb2.LOGIN_STATUS_INVALID_CREDENTIALS,
    LoginOutcome.THROTTLED: auth_pb2.LOGIN_STATUS_THROTTLED,
    LoginOutcome.DISABLED: auth_pb2.LOGIN_STATUS_DISABLED,
}
_SESSION_STATUS = {
    SessionState.VALID: auth_pb2.SESSION_STATUS_VALID,
    SessionState.NOT_FOUND: auth_pb2.SESSION_STATUS_NOT_FOUND,
    SessionState.EXPIRED: auth_pb2.SESSION_STATUS_EXPIRED,
}


def user_message(session: SessionRecord) -> auth_pb2.User:
    return auth_pb2.User(
        id=session.user_id,
        account_id=session.account_id,
        email=session.email,
        display_name=session.display_name,
        created_at=to_timestamp(session.user_created_at),
    )


def session_message(session: SessionRecord, current_id: str | None = None) -> auth_pb2.Session:
    return auth_pb2.Session(
        id=session.id,
        created_at=to_timestamp(session.created_at),
        last_seen_at=to_timestamp(session.last_seen_at),
        idle_expires_at=to_timestamp(session.idle_expires_at),
        absolute_expires_at=to_timestamp(session.absolute_expires_at),
        client_address=session.client_address,
        user_agent=session.user_agent,
        current=session.id == current_id,
    )


def event_message(event: ActivityEvent) -> auth_pb2.ActivityEvent:
    return auth_pb2.ActivityEvent(
        id=str(event.id),
        type=event.type,
        occurred_at=to_timestamp(event.occurred_at),
        client_address=event.client_address,
        user_agent=event.user_agent,
        details_json=json.dumps(event.details),
        actor=event.actor,
    )


def _caller(client_address: str = "") -> Caller:
    """The signed-in user and session the identity token names; nobody else acts here."""
    identity = current_identity()
    if (
        identity.kind is not PrincipalKind.USER
        or identity.method is not AuthMethod.SESSION
        or not identity.session_id
        or not identity.account_id
    ):
        raise PermissionDenied("this action needs a signed-in user's session")
    return Caller(
        identity.subject,
        identity.account_id,
        identity.session_id,
        (client_address or current_client_address())[:100],
    )


# Uses per RecordSessionUse call; a gateway sends at most this many (gateway.usage).
MAX_SESSION_USES = 10_000


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, auth: Authentication) -> None:
        self._auth = auth

    async def Login(
        self, request: auth_pb2.LoginRequest, context: Context
    ) -> auth_pb2.LoginResponse:
        await require_service(context, GATEWAY)
        result = await self._auth.login(
            request.email,
            request.password,
            (request.client_address or current_client_address())[:100],
            request.user_agent[:256],
        )
        response = auth_pb2.LoginResponse(
            status=_LOGIN_STATUS[result.outcome], retry_after_seconds=result.retry_after
        )
        if result.session is not None:
            record = result.session.record
            response.session_token = result.session.token
            response.csrf_token = record.csrf_token
            response.user.CopyFrom(user_message(record))
            response.session.CopyFrom(session_message(record, record.id))
        return response

    async def ValidateSession(
        self, request: auth_pb2.ValidateSessionRequest, context: Context
    ) -> auth_pb2.ValidateSessionResponse:
        await require_service(context, GATEWAY)
        result = await self._auth.validate(
            request.session_token, (request.client_address or current_client_address())[:100]
        )
        response = auth_pb2.ValidateSessionResponse(status=_SESSION_STATUS[result.state])
        if result.session is not None:
            response.user.CopyFrom(user_message(result.session))
            response.session.CopyFrom(session_message(result.session, result.session.id))
            response.csrf_token = result.session.csrf_token
        return response

    async def RecordSessionUse(
        self, request: auth_pb2.RecordSessionUseRequest, context: Context
    ) -> auth_pb2.RecordSessionUseResponse:
        await require_service(context, GATEWAY)
        uses = [
            SessionUse(
                use.token_sha256.hex(),
                use.last_used_at.ToDatetime(tzinfo=UTC),
                use.client_address[:100],
            )
            for use in request.uses[:MAX_SESSION_USES]
            if len(use.token_sha256) == 32
        ]
        await self._auth.record_use(uses)
        return auth_pb2.RecordSessionUseResponse()

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: Context
    ) -> auth_pb2.LogoutResponse:
        await require_service(context, GATEWAY)
        await self._auth.logout(
            request.session_token, (request.client_address or current_client_address())[:100]
        )
        return auth_pb2.LogoutResponse()

    async def ListSessions(
        self, request: auth_pb2.ListSessionsRequest, context: Context
    ) -> auth_pb2.ListSessionsResponse:
        caller = _caller()
        sessions = await self._auth.list_sessions(caller)
        return auth_pb2.ListSessionsResponse(
            sessions=[session_message(s, caller.session_id) for s in sessions]
        )

    async def RevokeSession(
        self, request: auth_pb2.RevokeSessionRequest, context: Context
    ) -> auth_pb2.RevokeSessionResponse:
        caller = _caller(request.client_address)
        await self._auth.revoke_session(caller, request.session_id)
        return auth_pb2.RevokeSessionResponse()

    async def RevokeOtherSessions(
        self, request: auth_pb2.RevokeOtherSessionsRequest, context: Context
    ) -> auth_pb2.RevokeOtherSessionsResponse:
        # The session kept is the caller's own (from the token), whatever the request says.
        caller = _caller(request.client_address)
        revoked = await self._auth.revoke_other_sessions(caller)
        return auth_pb2.RevokeOtherSessionsResponse(revoked=revoked)

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: Context
    ) -> auth_pb2.ChangePasswordResponse:
        caller = _caller(request.client_address)
        try:
            ended = await self._auth.change_password(
                caller, request.current_password, request.new_password
            )
        except WrongPassword:
            return auth_pb2.ChangePasswordResponse(
                status=auth_pb2.CHANGE_PASSWORD_STATUS_WRONG_PASSWORD
            )
        except WeakPassword as exc:
            return auth_pb2.ChangePasswordResponse(
                status=auth_pb2.CHANGE_PASSWORD_STATUS_WEAK_PASSWORD, weak_reason=exc.message
            )
        except Throttled as exc:
            return auth_pb2.ChangePasswordResponse(
                status=auth_pb2.CHANGE_PASSWORD_STATUS_THROTTLED,
                retry_after_seconds=exc.retry_after,
            )
        return auth_pb2.ChangePasswordResponse(
            status=auth_pb2.CHANGE_PASSWORD_STATUS_OK, sessions_ended=ended
        )

    async def ListActivity(
        self, request: auth_pb2.ListActivityRequest, context: Context
    ) -> auth_pb2.ListActivityResponse:
        caller = _caller()
        events, next_token = await self._auth.list_activity(
            caller, request.page_size, request.page_token, list(request.types)
        )
        return auth_pb2.ListActivityResponse(
            events=[event_message(e) for e in events], next_page_token=next_token
        )
