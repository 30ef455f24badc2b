"""Domain errors of the key service: each names its gRPC code and public message
(scout_kit.errors); the one server interceptor and scout-admin map them."""

import grpc

from scout_kit.errors import DomainError


class KeyServiceError(DomainError):
    """Base of the errors below; the message is safe to show to the caller."""


class ServerNotFound(KeyServiceError):
    code = grpc.StatusCode.NOT_FOUND
    public_message = "server not found"


class InvalidationNotPublished(KeyServiceError):
    """The change is committed, but the gateways could not be told (Redis unreachable). The ended
    keys wait in the outbox, and the relay publishes them once Redis is reachable."""

    code = grpc.StatusCode.UNAVAILABLE
    public_message = "the change was saved, but the gateways could not be told yet; retry shortly"


class InvalidRequest(KeyServiceError):
    """The request is malformed (a bad name, grace window, page token...)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    public_message = "the request is not valid"
