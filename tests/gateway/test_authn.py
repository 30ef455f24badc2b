"""The session cookie read from the Cookie header: the same value aiohttp's cookie parser gives."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from gateway.authn import SESSION_COOKIE, session_cookie


def _both(header: str) -> tuple[str | None, str | None]:
    """(ours, aiohttp's) session cookie for a request carrying `header`."""
    request = make_mocked_request("GET", "/", headers={"Cookie": header})
    ours = session_cookie(request, header)
    theirs = make_mocked_request("GET", "/", headers={"Cookie": header}).cookies.get(SESSION_COOKIE)
    return ours, theirs


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"{SESSION_COOKIE}=abc", "abc"),
        (f"theme=dark; {SESSION_COOKIE}=abc; lang=en", "abc"),
        (f"theme=dark;{SESSION_COOKIE}= abc ;lang=en", "abc"),
        (f"{SESSION_COOKIE}=old; {SESSION_COOKIE}=new", "new"),  # the last one, as aiohttp
        (f"{SESSION_COOKIE}=a=b", "a=b"),
        (f"{SESSION_COOKIE}=", ""),
        (SESSION_COOKIE, ""),
        ("theme=dark", None),
        (f"x{SESSION_COOKIE}=abc; {SESSION_COOKIE}x=abc", None),
        ("__host-scout_session=abc", None),  # names are case-sensitive
        # Quoted values only aiohttp's parser unquotes: it reads these.
        (f'{SESSION_COOKIE}="abc"', "abc"),
        (f'theme="a;b"; {SESSION_COOKIE}=abc', "abc"),
    ],
)
def test_the_session_cookie_is_found_as_aiohttp_finds_it(header: str, expected: str | None) -> None:
    ours, theirs = _both(header)
    assert ours == expected
    assert theirs == expected


_NAMES = st.sampled_from([SESSION_COOKIE, "theme", "a", "__Host-other", "session"])
_VALUES = st.text(alphabet="abcXYZ019-_.~!#$%&'()*+/:<=>?@[]^`{|}", max_size=12)


@given(
    st.lists(st.tuples(_NAMES, _VALUES), max_size=5),
    st.sampled_from(["; ", ";", " ; ", ";  "]),
)
def test_any_well_formed_header_gives_what_aiohttp_gives(
    pairs: list[tuple[str, str]], separator: str
) -> None:
    ours, theirs = _both(separator.join(f"{name}={value}" for name, value in pairs))
    assert ours == theirs
