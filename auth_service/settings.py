"""Auth service settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from auth_service.throttle import Limit, ThrottlePolicy
from scout_kit.service import StoreSettings
from scout_kit.settings import Env

DEFAULT_PORT = 50051
SERVICE = "auth_service"


@dataclass(frozen=True)
class Settings(StoreSettings):
    session_idle_seconds: int
    session_absolute_seconds: int
    throttle: ThrottlePolicy

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        store = StoreSettings.read(env, default_port=DEFAULT_PORT, service=SERVICE)
        return cls(
            **vars(store),
            session_idle_seconds=env.integer(
                "SESSION_IDLE_SECONDS", 1800, minimum=60, maximum=86_400
            ),
            session_absolute_seconds=env.integer(
                "SESSION_ABSOLUTE_SECONDS", 43_200, minimum=300, maximum=30 * 86_400
            ),
            throttle=_throttle_policy(env),
        )


def _throttle_policy(env: Env) -> ThrottlePolicy:
    """Failed logins allowed per window before 429; the windows are fixed (see throttle.py).
    The account-wide limit may not exceed ASVS's 100 failures an hour."""
    default = ThrottlePolicy()

    def limit(name: str, base: Limit, maximum: int) -> Limit:
        failures = env.integer(name, base.failures, minimum=1, maximum=maximum)
        return Limit(base.scope, failures, base.window_seconds)

    return ThrottlePolicy(
        account_address=limit("LOGIN_FAILURES_PER_ACCOUNT_ADDRESS", default.account_address, 100),
        account=limit("LOGIN_FAILURES_PER_ACCOUNT", default.account, 100),
        address=limit("LOGIN_FAILURES_PER_ADDRESS", default.address, 100_000),
    )
