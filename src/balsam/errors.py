"""Balsam's error hierarchy.

Services raise these; exactly one HTTP handler turns them into
``application/problem+json`` responses. Each error carries an HTTP status,
a message safe to show to the user, and a short machine-readable ``reason``::

    BalsamError                     500 internal
    ├── InvalidInput                422 invalid-input
    ├── BadRequest                  400 bad-request
    ├── Unauthenticated             401 unauthenticated
    ├── Forbidden                   403 forbidden
    ├── NotFound                    404 not-found
    ├── Conflict                    409 conflict
    ├── PayloadTooLarge             413 payload-too-large
    ├── RateLimited                 429 rate-limited
    └── ProviderError               502 provider-error  (a backend failed)

A message the portal shows is marked with :func:`N_` (so ``make messages`` puts it in
the catalogs); one with values in it is a template with ``%(name)s`` placeholders
and ``params``, so the portal translates the template and fills it in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar


def N_(message: str) -> str:
    """Mark ``message`` for the catalogs; it is translated where it is shown."""
    return message


class BalsamError(Exception):
    """Base of every error a service may raise on purpose.

    ``message`` is English; with ``params`` it is a template (``%(name)s``) that
    ``message`` fills in, kept as ``template`` for the portal to translate."""

    status: ClassVar[int] = 500
    reason: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.template = message
        self.params = params or {}
        self.message = message % self.params if params else message
        super().__init__(self.message)
        self.details = details or {}

    def translated(self, gettext: Callable[[str], str]) -> str:
        """The message in ``gettext``'s language (its template translated, then filled
        in); the English one when the catalog lacks the template."""
        return gettext(self.template) % self.params if self.params else gettext(self.template)


class InvalidInput(BalsamError):
    status = 422
    reason = "invalid-input"
    title = "Invalid input"


class BadRequest(BalsamError):
    status = 400
    reason = "bad-request"
    title = "Bad request"


class Unauthenticated(BalsamError):
    status = 401
    reason = "unauthenticated"
    title = "Authentication required"


class Forbidden(BalsamError):
    status = 403
    reason = "forbidden"
    title = "Forbidden"


class NotFound(BalsamError):
    status = 404
    reason = "not-found"
    title = "Not found"


class RequestTimeout(BalsamError):
    status = 408
    reason = "request-timeout"
    title = "Request timeout"


class Conflict(BalsamError):
    status = 409
    reason = "conflict"
    title = "Conflict"


class PayloadTooLarge(BalsamError):
    status = 413
    reason = "payload-too-large"
    title = "Payload too large"


class QuotaExceeded(BalsamError):
    """A write would take a project's data past its storage quota."""

    status = 507
    reason = "quota-exceeded"
    title = "Storage quota exceeded"


class RateLimited(BalsamError):
    status = 429
    reason = "rate-limited"
    title = "Too many requests"


class ProviderError(BalsamError):
    """A backend (git, storage, identity) failed; the operation was rolled back.

    ``unsettled`` is set by a provider whose call may have left something behind on
    the backend that it could not remove (a request that timed out may still be
    carried out): the caller's journal then keeps the operation for repair
    (:meth:`balsam.domain.steps.Compensations.attempt`)."""

    status = 502
    reason = "provider-error"
    title = "Backend failure"
    unsettled: bool = False
