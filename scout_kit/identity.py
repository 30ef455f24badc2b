"""Internal identity: short-lived EdDSA JWTs the gateway signs and every service verifies.

Only the gateway holds the private key; services hold the public key, so a compromised service
cannot mint identities. A token names who is calling (a user, a server, or a service itself), the
account it acts in and how it authenticated at the edge.
"""

from __future__ import annotations

import enum
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from scout_kit.clock import Clock

ISSUER = "scout-gateway"
AUDIENCE = "scout-internal"
ALGORITHM = "EdDSA"
# Replicas' clocks may differ a little; a token a few seconds "from the future" is fine.
CLOCK_SKEW_SECONDS = 30


class PrincipalKind(enum.StrEnum):
    USER = "user"
    SERVER = "server"
    SERVICE = "service"


class AuthMethod(enum.StrEnum):
    SESSION = "session"
    API_KEY = "api_key"
    SERVICE = "service"  # the gateway (or an operator tool) acting as itself


@dataclass(frozen=True)
class Identity:
    kind: PrincipalKind
    subject: str
    account_id: str | None
    method: AuthMethod
    session_id: str | None = None

    @property
    def principal(self) -> str:
        """How activity logs name the actor, e.g. user:<uuid>."""
        return f"{self.kind}:{self.subject}"

    def claims(self) -> dict[str, object]:
        claims: dict[str, object] = {"sub": self.principal, "amr": self.method.value}
        if self.account_id:
            claims["acct"] = self.account_id
        if self.session_id:
            claims["sid"] = self.session_id
        return claims

    @classmethod
    def from_claims(cls, claims: dict[str, object]) -> Identity:
        kind_text, sep, subject = str(claims["sub"]).partition(":")
        if not sep or not subject:
            raise InvalidToken("malformed subject")
        try:
            kind = PrincipalKind(kind_text)
            method = AuthMethod(str(claims["amr"]))
        except (ValueError, KeyError):
            raise InvalidToken("unknown principal kind or method") from None
        account, session = claims.get("acct"), claims.get("sid")
        if not isinstance(account, str | None) or not isinstance(session, str | None):
            raise InvalidToken("malformed account or session claim")
        if kind is not PrincipalKind.SERVICE and not account:
            raise InvalidToken("a user or server token must name its account")
        return cls(kind, subject, account, method, session)


def service_identity(name: str) -> Identity:
    return Identity(PrincipalKind.SERVICE, name, None, AuthMethod.SERVICE)


class InvalidToken(Exception):
    """The token is missing, expired, forged or malformed."""


def generate_keypair() -> tuple[str, str]:
    """A new Ed25519 key pair as (private PEM, public PEM)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


class TokenIssuer:
    """Signs identity tokens. Reuses a token for the same identity until half its life is gone,
    so the hot path does not pay for a signature on every request."""

    def __init__(
        self, private_key_pem: str, clock: Clock, ttl_seconds: int = 60, cache_size: int = 10_000
    ) -> None:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the internal signing key must be an Ed25519 private key")
        self._key = key
        self._clock = clock
        self._ttl = ttl_seconds
        self._cache: OrderedDict[Identity, tuple[str, float]] = OrderedDict()
        self._cache_size = cache_size

    def token_for(self, identity: Identity) -> str:
        now = self._clock.monotonic()
        cached = self._cache.get(identity)
        if cached is not None and cached[1] > now:
            self._cache.move_to_end(identity)
            return cached[0]
        issued = int(self._clock.now().timestamp())
        claims = identity.claims() | {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        self._cache[identity] = (token, now + self._ttl / 2)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return token


class TokenVerifier:
    """Verifies identity tokens; remembers verified tokens until they expire (pure function)."""

    def __init__(self, public_key_pem: str, clock: Clock, cache_size: int = 10_000) -> None:
        key = serialization.load_pem_public_key(public_key_pem.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the internal verification key must be an Ed25519 public key")
        self._key = key
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Identity, float]] = OrderedDict()
        self._cache_size = cache_size

    def verify(self, token: str) -> Identity:
        now = self._clock.now().timestamp()
        cached = self._cache.get(token)
        if cached is not None:
            if cached[1] > now:
                return cached[0]
            del self._cache[token]
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={
                    "require": ["exp", "iat", "sub", "iss", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        # Times against our Clock rather than the wall clock, so tests can drive it.
        if not isinstance(claims["exp"], int | float) or claims["exp"] <= now:
            raise InvalidToken("token expired")
        if not isinstance(claims["iat"], int | float) or claims["iat"] > now + CLOCK_SKEW_SECONDS:
            raise InvalidToken("token issued in the future")
        identity = Identity.from_claims(claims)
        self._cache[token] = (identity, float(claims["exp"]))
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return identity
