"""What text the platform accepts from outside, in one rule for every edge (HTTP and gRPC).

Text must be Unicode that encodes as UTF-8 (no lone surrogates, which is how invalid bytes in a
header or cookie arrive in Python) and must not hold U+0000, which PostgreSQL text cannot store.
Where the text is an identifier (a URL's path or query, a header), control characters are
refused too.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The same rule for a URL's text, as a JSON Schema pattern (ECMA and Python alike).
URL_TEXT_PATTERN = r"^[^\u0000-\u001F\u007F]*$"


def text_fault(text: str, *, controls: bool = False) -> str | None:
    """Why `text` may not be accepted (words that quote none of it), or None if it may.
    `controls`: refuse every C0 control character and DEL, not only U+0000."""
    if text.isascii():
        if controls:
            return "a control character" if _CONTROL.search(text) else None
        return "U+0000" if "\x00" in text else None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate or bytes that are not UTF-8"
    if controls and _CONTROL.search(text):
        return "a control character"
    return "U+0000" if "\x00" in text else None
