"""The base of every service's domain errors: each class names its gRPC code and public message,
and the one server interceptor (scout_kit.grpc_server) maps them; nothing else does."""

from __future__ import annotations

from typing import ClassVar

import grpc


class DomainError(Exception):
    """A refusal the caller may be told about. `code` is the gRPC status it is answered with;
    the message (the class's `public_message`, or a more precise one given when raised) is the
    status details, so it must never carry internal detail."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.FAILED_PRECONDITION
    public_message: ClassVar[str] = "the request cannot be carried out"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.public_message)

    @property
    def message(self) -> str:
        """The text the caller is answered with."""
        return str(self.args[0])


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    public_message = "the caller may not do this"


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    public_message = "the request is not valid"


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    public_message = "not found"
