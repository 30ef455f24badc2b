"""Identity tokens: a signed token whose claims are not of the shape we issue names nobody."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from scout_kit.clock import ManualClock
from scout_kit.identity import (
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    AuthMethod,
    Identity,
    InvalidToken,
    PrincipalKind,
    TokenIssuer,
    TokenVerifier,
    generate_keypair,
)

USER = Identity(
    PrincipalKind.USER,
    "00000000-0000-0000-0000-0000000000aa",
    "00000000-0000-0000-0000-0000000000bb",
    AuthMethod.SESSION,
    session_id="0123456789abcdef0123456789abcdef",
)


def _signed(private_pem: str, clock: ManualClock, **claims: object) -> str:
    issued = int(clock.now().timestamp())
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    body = USER.claims() | {"iss": ISSUER, "aud": AUDIENCE, "iat": issued, "exp": issued + 60}
    return jwt.encode(body | claims, key, algorithm=ALGORITHM)  # type: ignore[arg-type]


def test_issued_tokens_name_their_identity_and_malformed_claims_are_refused() -> None:
    private, public = generate_keypair()
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    verifier = TokenVerifier(public, clock)
    assert verifier.verify(TokenIssuer(private, clock).token_for(USER)) == USER
    for claims in ({"acct": 7}, {"sid": ["a"]}, {"amr": 3}, {"sub": "user"}):
        with pytest.raises(InvalidToken):
            verifier.verify(_signed(private, clock, **claims))
