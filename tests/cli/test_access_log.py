"""`balsam up`'s access log keeps the identity provider's authorization codes out."""

from __future__ import annotations

import logging

from balsam.cli.up import HideSignInCodes

FORMAT = '%s - "%s %s HTTP/%s" %d'


def _line(path: str) -> str:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        FORMAT,
        ("127.0.0.1:5", "GET", path, "1.1", 303),
        None,
    )
    assert HideSignInCodes().filter(record)
    return record.getMessage()


def test_the_callbacks_query_is_not_logged() -> None:
    line = _line("/login/oidc/callback?code=sekret-code&state=sekret-state")
    assert "sekret" not in line
    assert "/login/oidc/callback?…" in line


def test_other_queries_are_logged_as_they_are() -> None:
    assert "/api/v1/projects?limit=5" in _line("/api/v1/projects?limit=5")
