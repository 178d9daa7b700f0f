"""The identity provider interface: who signs people in, and whose tokens the API takes.

An implementation talks to one OpenID Provider (:mod:`.oidc`). Balsam's rules — which
user a token is, who is an administrator — are the domain's
(:mod:`balsam.domain.identity.external`); a provider only proves what the
organisation's identity provider said.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: A token's verified claims.
Claims = Mapping[str, Any]


class TokenRefused(Exception):
    """A token that is not the provider's, or not for us, or no longer valid. The
    message says which check failed (never the token)."""


class ProviderUnavailable(Exception):
    """The identity provider could not be reached or answered nonsense."""


@dataclass(frozen=True)
class SignInTokens:
    """What the token endpoint answered to a redeemed authorization code."""

    id_token: str
    access_token: str


class IdentityProvider(Protocol):
    """One OpenID Provider, as the portal's sign-in and the API's bearer tokens need it."""

    @property
    def issuer(self) -> str:
        """The issuer, exactly as tokens name it."""
        ...

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        """Where to send a browser to sign in (authorization code flow, PKCE S256)."""
        ...

    def redeem(self, *, code: str, redirect_uri: str, code_verifier: str) -> SignInTokens:
        """The tokens for an authorization code (TokenRefused when the provider says no)."""
        ...

    def verify_id_token(self, token: str, *, nonce: str) -> Claims:
        """The claims of an ID token issued to this client for this sign-in."""
        ...

    def verify_access_token(
        self, token: str, *, audiences: Collection[str], parties: Collection[str]
    ) -> Claims:
        """The claims of an access token for one of ``audiences`` (and, when
        ``parties`` is not empty, issued to one of those clients)."""
        ...

    def verify_logout_token(self, token: str) -> Claims:
        """The claims of a back-channel logout token the provider sent this client
        (OpenID Connect Back-Channel Logout 1.0): ``sub`` and/or ``sid``."""
        ...

    def userinfo(self, access_token: str) -> Claims:
        """The provider's userinfo for an access token."""
        ...

    def end_session_url(self, *, post_logout_redirect_uri: str) -> str | None:
        """Where to send a browser to sign out at the provider too; None when it
        offers no RP-initiated logout."""
        ...


def client_of(claims: Claims) -> str | None:
    """The client a token was issued to: ``azp``, else ``client_id`` (RFC 9068)."""
    value = claims.get("azp") or claims.get("client_id")
    return value if isinstance(value, str) else None
