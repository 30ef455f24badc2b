"""Domain errors of the auth service; the servicer and scout-admin map them."""


class AuthError(Exception):
    """Base of the errors below; the message is safe to show to the caller."""


class WeakPassword(AuthError):
    """The password does not meet the policy (length, common passwords)."""


class InvalidEmail(AuthError):
    pass


class EmailTaken(AuthError):
    def __init__(self) -> None:
        super().__init__("a user with this email already exists")


class UserNotFound(AuthError):
    def __init__(self) -> None:
        super().__init__("user not found")


class SessionEndNotPublished(AuthError):
    """The sessions are ended, but the gateways could not be told (Redis unreachable); the
    next session end publishes them again."""

    def __init__(self) -> None:
        super().__init__("the sessions were ended, but the gateways could not be told yet")


class SessionNotFound(AuthError):
    def __init__(self) -> None:
        super().__init__("session not found")


class WrongPassword(AuthError):
    def __init__(self) -> None:
        super().__init__("the current password is wrong")


class Throttled(AuthError):
    """Too many failed attempts; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts; retry in {retry_after} seconds")
        self.retry_after = retry_after
