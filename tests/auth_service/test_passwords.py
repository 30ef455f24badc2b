"""The password policy (ASVS 5.0): length, no composition rules, common passwords refused."""

from __future__ import annotations

import pytest

from auth_service.errors import WeakPassword
from auth_service.passwords import MAX_LENGTH, MIN_LENGTH, check_policy, common_passwords


def test_a_real_common_password_list_is_shipped_without_its_comments() -> None:
    listed = common_passwords()
    assert len(listed) > 10_000
    assert {"123456", "password", "qwertyuiop123", "password12345"} <= listed
    assert not any(entry.startswith("#") for entry in listed)


@pytest.mark.parametrize(
    "password", ["password12345", "PASSWORD12345", "qwertyuiop123", "123456789012", "LeaveMeAlone"]
)
def test_common_passwords_are_refused_whatever_their_case(password: str) -> None:
    with pytest.raises(WeakPassword, match="too common"):
        check_policy(password)


def test_length_bounds_and_no_composition_rules() -> None:
    with pytest.raises(WeakPassword, match="at least 12"):
        check_policy("short phrase"[: MIN_LENGTH - 1])
    assert check_policy("only lowercase words here") == "only lowercase words here"
    assert check_policy("x" * 64 + " long") == "x" * 64 + " long"
    assert len(check_policy("y" * MAX_LENGTH)) == MAX_LENGTH
    with pytest.raises(WeakPassword, match="at most"):
        check_policy("y" * (MAX_LENGTH + 1))


def test_the_email_is_not_a_password() -> None:
    with pytest.raises(WeakPassword, match="email"):
        check_policy("Someone@Example.com", email="someone@example.com")
