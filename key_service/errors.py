"""Domain errors of the key service; the servicer maps them to gRPC status codes."""


class KeyServiceError(Exception):
    """Base of the errors below; the message is safe to show to the caller."""


class ServerNotFound(KeyServiceError):
    def __init__(self) -> None:
        super().__init__("server not found")


class InvalidationNotPublished(KeyServiceError):
    """The change is committed, but the gateways could not be told (Redis unreachable). The ended
    keys are published again with the next change."""

    def __init__(self) -> None:
        super().__init__(
            "the change was saved, but the gateways could not be told yet; retry shortly"
        )


class InvalidRequest(KeyServiceError):
    """The request is malformed (a bad name, grace window, page token...)."""
