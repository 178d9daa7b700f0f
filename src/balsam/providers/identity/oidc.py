"""An OpenID Provider reached over HTTP: discovery, JWKS with key rotation, the
authorization code flow with PKCE, token checks, RP-initiated logout.

Contract:
* Discovery (``<issuer>/.well-known/openid-configuration``) must name the configured
  issuer exactly (a document for another issuer is refused: mix-up). It is kept for an
  hour; when the provider cannot be reached then, the last good one is used.
* Signing keys come from the provider's JWKS. A token signed with a key id not yet
  seen makes Balsam fetch the JWKS again (the provider rotated its keys), at most once
  per ``refresh_seconds``, so tokens with made-up key ids cannot make it hammer the
  provider. Keys the provider no longer publishes stop being accepted at that fetch.
* Only asymmetric signatures count (RSA, RSA-PSS, ECDSA, EdDSA): ``none`` and HMAC
  algorithms are refused whatever the header says, and a key that names its algorithm
  is used with that algorithm only.
* Times are checked with ``clock_skew`` seconds of tolerance; ``exp`` is required.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt

from balsam.providers.identity.base import (
    Claims,
    ProviderUnavailable,
    SignInTokens,
    TokenRefused,
    client_of,
)

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: Keycloak's ``typ`` claim of tokens that are not access tokens.
NOT_ACCESS_TOKENS = frozenset({"id", "refresh", "logout", "offline"})
BACKCHANNEL_LOGOUT = "http://schemas.openid.net/event/backchannel-logout"
#: The oldest a back-channel logout token may be (by its ``iat``).
LOGOUT_TOKEN_AGE = 600.0
DISCOVERY_TTL = 3600.0
JWKS_TTL = 3600.0


@dataclass(frozen=True)
class Metadata:
    """The parts of the provider's discovery document Balsam uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None


def _metadata(document: Mapping[str, Any], issuer: str) -> Metadata:
    if document.get("issuer") != issuer:
        raise ProviderUnavailable(
            f"the discovery document names issuer {document.get('issuer')!r}, not {issuer!r}"
        )
    try:
        return Metadata(
            issuer=issuer,
            authorization_endpoint=str(document["authorization_endpoint"]),
            token_endpoint=str(document["token_endpoint"]),
            jwks_uri=str(document["jwks_uri"]),
            userinfo_endpoint=document.get("userinfo_endpoint"),
            end_session_endpoint=document.get("end_session_endpoint"),
        )
    except KeyError as missing:
        raise ProviderUnavailable(f"the discovery document has no {missing}") from None


class OidcProvider:
    """One OpenID Provider for one client (thread-safe; one per app)."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        scopes: Collection[str] = ("openid", "profile", "email"),
        clock_skew: int = 60,
        refresh_seconds: float = 10.0,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._issuer = issuer
        self.client_id = client_id
        self._secret = client_secret
        self.scopes = ["openid", *(s for s in scopes if s != "openid")]
        self.clock_skew = clock_skew
        self.refresh_seconds = refresh_seconds
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)
        # Reentrant: a key fetch asks for the discovery document under the same lock.
        self._lock = threading.RLock()
        self._meta: tuple[float, Metadata] | None = None
        self._keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        self._keys_at = 0.0
        self._jtis: dict[str, float] = {}

    @property
    def issuer(self) -> str:
        return self._issuer

    # -- discovery and keys --------------------------------------------------------

    def metadata(self) -> Metadata:
        """The discovery document's endpoints (cached; see the module's contract)."""
        cached = self._meta
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
        with self._lock:
            url = f"{self._issuer}/.well-known/openid-configuration"
            try:
                meta = _metadata(self._get_json(url), self._issuer)
            except ProviderUnavailable:
                if cached is None:
                    raise
                return cached[1]
            self._meta = (time.monotonic(), meta)
            return meta

    def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self._http.get(url, **kwargs)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise ProviderUnavailable(f"{url}: {exc}") from None
        if not isinstance(document, dict):
            raise ProviderUnavailable(f"{url}: not a JSON object")
        return document

    def _key(self, kid: str | None) -> tuple[jwt.PyJWK, str | None]:
        """The published key with id ``kid`` (the only one when the token names none),
        with the algorithm it names (None when it names none)."""
        now = time.monotonic()
        stale = now - self._keys_at >= JWKS_TTL
        if stale or (kid not in self._keys and now - self._keys_at >= self.refresh_seconds):
            with self._lock:
                if time.monotonic() - self._keys_at >= min(self.refresh_seconds, JWKS_TTL):
                    self._keys = self._fetch_keys()
                    self._keys_at = time.monotonic()
        keys = self._keys
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        if kid is None or kid not in keys:
            raise TokenRefused("signed with a key the provider does not publish")
        return keys[kid]

    def _fetch_keys(self) -> dict[str, tuple[jwt.PyJWK, str | None]]:
        document = self._get_json(self.metadata().jwks_uri)
        keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        for number, data in enumerate(document.get("keys") or []):
            if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                continue
            if data.get("alg") is not None and data["alg"] not in ASYMMETRIC:
                continue
            try:
                key = jwt.PyJWK(data)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type this library cannot use: tokens signed with it fail
            keys[str(data.get("kid") or f"#{number}")] = (key, data.get("alg"))
        return keys

    # -- tokens ----------------------------------------------------------------------

    def _decode(self, token: str, *, audience: list[str], require: list[str]) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenRefused("not a signed JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASYMMETRIC:
            raise TokenRefused(f"algorithm {alg!r} is not accepted")
        key, named = self._key(kid if isinstance(kid, str) else None)
        if named is not None and named != alg:
            raise TokenRefused("signed with another algorithm than its key's")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=audience,
                issuer=self._issuer,
                leeway=self.clock_skew,
                options={"require": require, "verify_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRefused("not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused("issued for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused("issued by another issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenRefused("bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(f"no {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:  # also a key of another type than the algorithm's
            raise TokenRefused(f"invalid ({type(exc).__name__})") from None
        return claims

    def verify_id_token(self, token: str, *, nonce: str) -> Claims:
        claims = self._decode(
            token, audience=[self.client_id], require=["exp", "iat", "iss", "aud", "sub"]
        )
        audiences = _audiences(claims)
        azp = claims.get("azp")
        if (azp is not None or len(audiences) > 1) and azp != self.client_id:
            raise TokenRefused("issued to another client (azp)")
        if not isinstance(claims.get("nonce"), str) or claims["nonce"] != nonce:
            raise TokenRefused("issued for another sign-in (nonce)")
        return claims

    def verify_access_token(
        self, token: str, *, audiences: Collection[str], parties: Collection[str]
    ) -> Claims:
        if not audiences:
            raise TokenRefused("the API accepts no provider tokens (no audiences set)")
        claims = self._decode(token, audience=list(audiences), require=["exp", "iss", "aud"])
        header_typ = str(jwt.get_unverified_header(token).get("typ", "")).lower()
        if header_typ == "logout+jwt" or str(claims.get("typ", "")).lower() in NOT_ACCESS_TOKENS:
            raise TokenRefused("not an access token")
        if parties and client_of(claims) not in parties:
            raise TokenRefused("issued to a client the API does not accept (azp)")
        return claims

    def verify_logout_token(self, token: str) -> Claims:
        claims = self._decode(
            token, audience=[self.client_id], require=["iat", "exp", "iss", "aud", "jti"]
        )
        if not isinstance(claims["iat"], int | float) or (
            time.time() - claims["iat"] > LOGOUT_TOKEN_AGE + self.clock_skew
        ):
            raise TokenRefused("an old logout token")
        audiences = _audiences(claims)
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise TokenRefused("issued to another client (azp)")
        events = claims.get("events")
        if not isinstance(events, dict) or BACKCHANNEL_LOGOUT not in events:
            raise TokenRefused("not a logout token (events)")
        if "nonce" in claims:
            raise TokenRefused("a logout token has no nonce")
        if not isinstance(claims.get("sub"), str) and not isinstance(claims.get("sid"), str):
            raise TokenRefused("a logout token names a user (sub) or a session (sid)")
        if not self._first_use(str(claims["jti"]), float(claims["exp"])):  # last: all else held
            raise TokenRefused("a logout token used before (jti)")
        return claims

    def _first_use(self, jti: str, expires: float) -> bool:
        """Whether a logout token's ``jti`` is new (remembered until it expires, in
        this process: a replayed token cannot end a later session)."""
        now = time.time()
        with self._lock:
            for old in [j for j, until in self._jtis.items() if until < now]:
                del self._jtis[old]
            if jti in self._jtis:
                return False
            self._jtis[jti] = min(expires, now + LOGOUT_TOKEN_AGE) + self.clock_skew
            return True

    # -- the authorization code flow -------------------------------------------------------

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = self.metadata().authorization_endpoint
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def redeem(self, *, code: str, redirect_uri: str, code_verifier: str) -> SignInTokens:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "client_id": self.client_id,
        }
        # client_secret_basic: both parts form-encoded first (RFC 6749, 2.3.1).
        headers = {}
        if self._secret:
            pair = f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            answer = self._http.post(self.metadata().token_endpoint, data=form, headers=headers)
            document = answer.json()
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise ProviderUnavailable(f"token endpoint: {exc}") from None
        if answer.status_code != 200 or not isinstance(document, dict):
            error = document.get("error") if isinstance(document, dict) else None
            raise TokenRefused(f"the provider refused the code ({error or answer.status_code})")
        id_token, access_token = document.get("id_token"), document.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            raise TokenRefused("the provider answered without an ID token")
        return SignInTokens(id_token=id_token, access_token=access_token)

    def userinfo(self, access_token: str) -> Claims:
        endpoint = self.metadata().userinfo_endpoint
        if not endpoint:
            return {}
        return self._get_json(endpoint, headers={"Authorization": f"Bearer {access_token}"})

    def end_session_url(self, *, post_logout_redirect_uri: str) -> str | None:
        endpoint = self.metadata().end_session_endpoint
        if not endpoint:
            return None
        query = urlencode(
            {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        )
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def _audiences(claims: Claims) -> list[str]:
    """A checked token's ``aud``, a list (it may be one string)."""
    aud = claims["aud"]
    return list(aud) if isinstance(aud, list) else [aud]
