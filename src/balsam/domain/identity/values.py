"""Checks of user-supplied profile values that end up in files and commands.

A user's e-mail address and display name reach git (commit authors, the
``~/.gitconfig`` of their workspaces), logs and pages. They are written through
each tool's own interface (``git config --file … user.email …``), never pasted
into a file; these checks are the other half: values that no address or name
needs (line breaks, quotes, other control characters) are refused at the API
with 422, so they never reach a file at all.
"""

from __future__ import annotations

import re
import unicodedata

#: A practical addr-spec: a dot-atom local part (letters of any script allowed),
#: ``@``, and a host name of dot-separated labels. Quoted local parts, comments and
#: address literals are valid in RFC 5322 but refused: no mailbox Balsam's users
#: have needs them, and quotes and spaces are what injections are made of.
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?"
_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
#: Unicode categories refused in names: controls (line breaks, tabs, escapes),
#: format characters (bidirectional overrides that disguise a name) and line and
#: paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
DISPLAY_NAME_MAX = 200


def check_email(value: str) -> str:
    """``value`` when it is "" or a plain e-mail address; raises ValueError otherwise."""
    # RFC 5321's limits: 64 characters before the @, 254 in all.
    if value and (not _EMAIL.fullmatch(value) or len(value) > 254 or value.index("@") > 64):
        raise ValueError(
            "An e-mail address is name@host: letters, digits and .!#$%&'*+/=?^_`{|}~- "
            "(at most 64) before the @, a host name after it; no spaces, quotes or line breaks."
        )
    return value


def check_display_name(value: str) -> str:
    """``value`` without surrounding spaces when it has no control or format
    characters and at most 200 characters; raises ValueError otherwise."""
    value = value.strip()
    if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in value):
        raise ValueError(
            "A display name cannot contain line breaks, tabs or other control characters."
        )
    if len(value) > DISPLAY_NAME_MAX:
        raise ValueError(f"A display name has at most {DISPLAY_NAME_MAX} characters.")
    return value
