"""Domain errors of the ingest service: each names its gRPC code and public message
(scout_kit.errors); the one server interceptor maps them."""

import grpc

from scout_kit.errors import DomainError


class IngestError(DomainError):
    """Base of the errors below; the message is safe to show to the caller."""


class QueueFull(IngestError):
    """More values are waiting than the service is configured to hold."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    public_message = "ingest is at capacity; retry shortly"


class ShuttingDown(IngestError):
    """The service is stopping and accepts no new writes."""

    code = grpc.StatusCode.UNAVAILABLE
    public_message = "ingest is shutting down"


class InvalidQuery(IngestError):
    """A metric query that breaks a limit or is malformed; the message names what."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    public_message = "the metric query is not valid"
