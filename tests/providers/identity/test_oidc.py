"""The OpenID Provider client against a real provider (npm's oidc-provider): its
first use may be any call, keys are fetched again for an unknown key id at most once
per ``refresh_seconds``, and the discovery document must name the issuer."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from balsam.providers.identity.base import ProviderUnavailable, TokenRefused
from balsam.providers.identity.oidc import OidcProvider
from tests.fixtures.oidc import AUDIENCE
from tests.fixtures.oidc import OidcProvider as TestProvider


class _Counting(httpx.HTTPTransport):
    """A real transport that counts requests per path."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


def _claims(provider: TestProvider) -> dict[str, object]:
    """A user access token's claims, valid now (whatever accounts the provider has)."""
    now = int(time.time())
    return {"iss": provider.issuer, "aud": AUDIENCE, "sub": "anna", "iat": now, "exp": now + 300}


def _fresh(provider: TestProvider, **kwargs: object) -> tuple[OidcProvider, _Counting]:
    transport = _Counting()
    client = OidcProvider(provider.issuer, "balsam", transport=transport, **kwargs)  # type: ignore[arg-type]
    return client, transport


def test_a_token_can_be_the_first_thing_checked(oidc_provider: TestProvider) -> None:
    """A bearer token before any sign-in: discovery and keys are fetched under one
    lock (once this deadlocked)."""
    client, _ = _fresh(oidc_provider)
    token = oidc_provider.sign(_claims(oidc_provider))
    result: list[object] = []
    worker = threading.Thread(
        target=lambda: result.append(
            client.verify_access_token(token, audiences=[AUDIENCE], parties=[])
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=15)
    assert not worker.is_alive(), "verify_access_token hung"
    assert result and result[0]["sub"] == "anna"  # type: ignore[index]


def test_unknown_key_ids_fetch_the_keys_at_most_once_per_window(
    oidc_provider: TestProvider,
) -> None:
    client, transport = _fresh(oidc_provider, refresh_seconds=30.0)
    good = oidc_provider.sign(_claims(oidc_provider))
    client.verify_access_token(good, audiences=[AUDIENCE], parties=[])
    for number in range(20):
        made_up = oidc_provider.sign(_claims(oidc_provider), kid=f"nope-{number}")
        with pytest.raises(TokenRefused, match="does not publish"):
            client.verify_access_token(made_up, audiences=[AUDIENCE], parties=[])
    assert sum(path.endswith("/certs") for path in transport.paths) == 1


def test_a_discovery_document_for_another_issuer_is_refused(oidc_provider: TestProvider) -> None:
    other = OidcProvider(oidc_provider.issuer.replace("/realms/balsam", "/realms/other"), "b")
    with pytest.raises(ProviderUnavailable):
        other.metadata()
    # A provider that is down: the error names it; nothing hangs.
    down = OidcProvider("http://127.0.0.1:1/realms/x", "b", timeout=2)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        down.metadata()
    assert time.monotonic() - started < 5
