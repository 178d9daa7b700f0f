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
"""

from __future__ import annotations

from typing import Any, ClassVar


class BalsamError(Exception):
    """Base of every error a service may raise on purpose."""

    status: ClassVar[int] = 500
    reason: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


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


class Conflict(BalsamError):
    status = 409
    reason = "conflict"
    title = "Conflict"


class PayloadTooLarge(BalsamError):
    status = 413
    reason = "payload-too-large"
    title = "Payload too large"


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
