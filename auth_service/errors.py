"""Domain errors of the auth service: each names its gRPC code and public message
(scout_kit.errors); the one server interceptor and scout-admin map them."""

import grpc

from scout_kit.errors import DomainError


class AuthError(DomainError):
    """Base of the errors below; the message is safe to show to the caller."""


class WeakPassword(AuthError):
    """The password does not meet the policy (length, common passwords)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    public_message = "the password is too weak"


class InvalidEmail(AuthError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    public_message = "the email address is not valid"


class EmailTaken(AuthError):
    code = grpc.StatusCode.ALREADY_EXISTS
    public_message = "a user with this email already exists"


class UserNotFound(AuthError):
    code = grpc.StatusCode.NOT_FOUND
    public_message = "user not found"


class SessionEndNotPublished(AuthError):
    """The sessions are ended, but the gateways could not be told (Redis unreachable); the
    next session end publishes them again."""

    code = grpc.StatusCode.UNAVAILABLE
    public_message = "the sessions were ended, but the gateways could not be told yet"


class SessionNotFound(AuthError):
    code = grpc.StatusCode.NOT_FOUND
    public_message = "session not found"


class WrongPassword(AuthError):
    code = grpc.StatusCode.PERMISSION_DENIED
    public_message = "the current password is wrong"


class Throttled(AuthError):
    """Too many failed attempts; try again after `retry_after` seconds."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts; retry in {retry_after} seconds")
        self.retry_after = retry_after


class InvalidActivityQuery(AuthError):
    """A listing's page token or type filter is not valid; the message is caller-safe."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    public_message = "the activity query is not valid"
