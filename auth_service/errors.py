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
