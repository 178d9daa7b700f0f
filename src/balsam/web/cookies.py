"""Reading a session cookie the browser may hold twice.

A page can set a cookie of the same name beside Balsam's ``HttpOnly`` one (another
path, or a ``Partitioned`` cookie), and the browser then sends both; frameworks
keep one of them, not necessarily Balsam's. A session cookie sent twice is
therefore refused rather than guessed at.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from balsam.errors import N_, BadRequest


def session_cookie(conn: HTTPConnection, name: str) -> str | None:
    """The value of cookie ``name``, None when absent; BadRequest (400) when the
    browser sent it more than once."""
    values = [
        value.strip()
        for part in conn.headers.get("cookie", "").split(";")
        for key, sep, value in [part.partition("=")]
        if sep and key.strip() == name
    ]
    if len(values) > 1:
        raise BadRequest(
            N_(
                "The browser sent two session cookies of Balsam's; clear this site's "
                "cookies and log in again."
            )
        )
    return values[0] if values else None
