"""The auth service's use cases: login, sessions, logout, password change, disabling users."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from redis.exceptions import RedisError

from auth_service.activity import ActivityEvent, ActivityLog, ActivityType
from auth_service.errors import Throttled, WrongPassword
from auth_service.events import SessionEndPublisher
from auth_service.passwords import Passwords, check_policy
from auth_service.sessions import (
    NewSession,
    SessionOwner,
    SessionRecord,
    SessionStore,
    SessionUse,
    SessionValidation,
    token_digest,
)
from auth_service.throttle import Attempt, LoginThrottle
from auth_service.users import UserDirectory, UserRecord

log = logging.getLogger(__name__)

# Longer than any password the policy accepts; refused before hashing so a huge body costs
# nothing. It says nothing about the account, so it may differ in timing.
MAX_LOGIN_PASSWORD_LENGTH = 1024


class LoginOutcome(enum.Enum):
    OK = "ok"
    INVALID_CREDENTIALS = "invalid_credentials"
    THROTTLED = "throttled"
    DISABLED = "disabled"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    session: NewSession | None = None
    retry_after: int = 0


@dataclass(frozen=True)
class Caller:
    """A signed-in user acting through one of their sessions."""

    user_id: str
    account_id: str
    session_id: str
    client_address: str = ""


class Authentication:
    def __init__(
        self,
        users: UserDirectory,
        passwords: Passwords,
        sessions: SessionStore,
        throttle: LoginThrottle,
        activity: ActivityLog,
        ended: SessionEndPublisher,
    ) -> None:
        self._users = users
        self._passwords = passwords
        self._sessions = sessions
        self._ended = ended
        self._throttle = throttle
        self._activity = activity

    async def _rehash_if_outdated(self, user_id: str, password_hash: str, password: str) -> None:
        """After a successful login: store the hash again if the argon2 parameters changed."""
        if self._passwords.needs_rehash(password_hash):
            await self._users.store_password_hash(
                user_id, await self._passwords.hash(password), changed=False
            )
            log.info("rehashed the password of user %s with the current parameters", user_id)

    async def login(
        self, email: str, password: str, client_address: str, user_agent: str
    ) -> LoginResult:
        """Check the credentials and open a new session. An unknown email and a wrong password
        take the same path (a dummy hash is verified) and get the same answer. The attempt is
        counted before the password is verified (throttle.py), so parallel guesses cannot pass
        the limit."""
        attempt = await self._throttle.reserve(email, client_address)
        if attempt.retry_after is not None:
            return LoginResult(LoginOutcome.THROTTLED, retry_after=attempt.retry_after)
        try:
            found = await self._users.credentials(email)
            user, password_hash = found if found is not None else (None, None)
            if len(password) > MAX_LOGIN_PASSWORD_LENGTH:
                ok = False
            else:
                ok = await self._passwords.verify(password_hash, password)
        except Exception:
            await self._give_back(attempt)
            raise
        if not ok or user is None or password_hash is None:
            # The reservation stays: it is this failure.
            await self._activity.record(
                ActivityType.LOGIN_FAILED,
                user_id=user.id if user else None,
                account_id=user.account_id if user else None,
                client_address=client_address,
                user_agent=user_agent,
                details={"reason": "invalid_credentials"},
            )
            return LoginResult(LoginOutcome.INVALID_CREDENTIALS)
        if user.disabled_at is not None:
            await self._give_back(attempt)
            await self._login_disabled(user, client_address, user_agent)
            return LoginResult(LoginOutcome.DISABLED)
        await self._throttle.succeeded(attempt)
        await self._rehash_if_outdated(user.id, password_hash, password)
        owner = SessionOwner(
            user.id, user.account_id, user.email, user.display_name, user.created_at
        )
        session = await self._sessions.create(owner, client_address, user_agent)
        # A user disabled while the password was being verified must not keep this session.
        if await self._users.is_disabled(user.id):
            # Never handed out, so cached nowhere; the user's other sessions were published
            # when the user was disabled.
            await self._sessions.revoke_all(user.id)
            await self._login_disabled(user, client_address, user_agent)
            return LoginResult(LoginOutcome.DISABLED)
        await self._activity.record(
            ActivityType.LOGIN_SUCCEEDED,
            user_id=user.id,
            account_id=user.account_id,
            actor=f"user:{user.id}",
            client_address=client_address,
            user_agent=user_agent,
            details={"session_id": session.record.id},
        )
        return LoginResult(LoginOutcome.OK, session)

    async def _give_back(self, attempt: Attempt) -> None:
        """Uncount an attempt that proved nothing, if Redis lets us: what went wrong matters
        more, and a reservation left behind only counts as one failure."""
        try:
            await self._throttle.release(attempt)
        except RedisError as exc:
            log.warning("could not give back a sign-in attempt: %r", exc)

    async def _login_disabled(self, user: UserRecord, client_address: str, ua: str) -> None:
        await self._activity.record(
            ActivityType.LOGIN_FAILED,
            user_id=user.id,
            account_id=user.account_id,
            client_address=client_address,
            user_agent=ua,
            details={"reason": "user_disabled"},
        )

    async def validate(self, token: str, client_address: str) -> SessionValidation:
        return await self._sessions.validate(token, client_address)

    async def record_use(self, uses: list[SessionUse]) -> int:
        return await self._sessions.record_use(uses)

    async def logout(self, token: str, client_address: str) -> None:
        """End the session behind the token; ending an unknown one is not an error."""
        record = await self._sessions.delete_by_token(token)
        if record is not None:
            await self._activity.record(
                ActivityType.LOGOUT,
                user_id=record.user_id,
                account_id=record.account_id,
                actor=f"user:{record.user_id}",
                client_address=client_address,
                user_agent=record.user_agent,
                details={"session_id": record.id},
            )
            await self._ended.ended(record.user_id, [token_digest(token)])

    async def list_sessions(self, caller: Caller) -> list[SessionRecord]:
        return await self._sessions.list_for_user(caller.user_id)

    async def revoke_session(self, caller: Caller, session_id: str) -> None:
        digest = await self._sessions.revoke(caller.user_id, session_id)
        await self._activity.record(
            ActivityType.SESSION_REVOKED,
            user_id=caller.user_id,
            account_id=caller.account_id,
            actor=f"user:{caller.user_id}",
            client_address=caller.client_address,
            details={"session_id": session_id, "current": session_id == caller.session_id},
        )
        await self._ended.ended(caller.user_id, [digest])

    async def revoke_other_sessions(self, caller: Caller) -> int:
        revoked = await self._sessions.revoke_all(caller.user_id, keep=caller.session_id)
        await self._activity.record(
            ActivityType.SESSION_REVOKED,
            user_id=caller.user_id,
            account_id=caller.account_id,
            actor=f"user:{caller.user_id}",
            client_address=caller.client_address,
            details={"all_but_current": True, "revoked": revoked.count},
        )
        await self._ended.ended(caller.user_id, revoked.digests)
        return revoked.count

    async def change_password(self, caller: Caller, current: str, new: str) -> int:
        """Replace the password and end every other session; how many were ended. Wrong
        current passwords count as failed logins, so a stolen session cannot guess them."""
        user = await self._users.by_id(caller.user_id)
        attempt = await self._throttle.reserve(user.email, caller.client_address)
        if attempt.retry_after is not None:
            raise Throttled(attempt.retry_after)
        try:
            password_hash = await self._users.password_hash(user.id)
            ok = len(current) <= MAX_LOGIN_PASSWORD_LENGTH and await self._passwords.verify(
                password_hash, current
            )
        except Exception:
            await self._give_back(attempt)
            raise
        if not ok:
            raise WrongPassword()  # the reservation stays: it is this failure
        # The right current password is no failure (and, unlike a sign-in, forgets none).
        await self._give_back(attempt)
        new = check_policy(new, email=user.email)
        await self._users.store_password_hash(
            user.id, await self._passwords.hash(new), changed=True
        )
        ended = await self._sessions.revoke_all(user.id, keep=caller.session_id)
        await self._activity.record(
            ActivityType.PASSWORD_CHANGED,
            user_id=user.id,
            account_id=user.account_id,
            actor=f"user:{user.id}",
            client_address=caller.client_address,
            details={"sessions_ended": ended.count},
        )
        await self._ended.ended(user.id, ended.digests)
        return ended.count

    async def list_activity(
        self, caller: Caller, page_size: int, page_token: str, types: list[str] | None = None
    ) -> tuple[list[ActivityEvent], str]:
        return await self._activity.list_for_user(caller.user_id, page_size, page_token, types)

    async def disable_user(self, email: str, actor: str) -> tuple[UserRecord, int]:
        """Disable a user and end all their sessions at once; how many were ended."""
        user = await self._users.set_disabled(email, True)
        ended = await self._sessions.revoke_all(user.id)
        await self._activity.record(
            ActivityType.SESSION_REVOKED,
            user_id=user.id,
            account_id=user.account_id,
            actor=actor,
            details={"reason": "user_disabled", "revoked": ended.count},
        )
        await self._ended.ended(user.id, ended.digests)
        return user, ended.count

    async def enable_user(self, email: str) -> UserRecord:
        return await self._users.set_disabled(email, False)
