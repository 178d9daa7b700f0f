"""Fetching one URL for an import, under the outbound rule, with nothing left to DNS.

Each hop's URL is checked (http or https, no credentials), its host resolved once and
the addresses checked (:func:`~balsam.domain.outbound.outbound_addresses`); the
connection then goes to one of those addresses and no other (:class:`_PinnedBackend`,
which checks the socket's peer address again before anything is sent), while the URL's
host name stays in the Host header, the TLS SNI and the certificate check. A second
resolution, and with it DNS rebinding, never happens. Redirects (301, 302, 303, 307,
308) are followed by hand, at most ``max_redirects``, each new URL checked as the first.
No proxy from the environment is used (it would connect elsewhere).

The body comes as chunks; more than ``max_bytes``, a pause longer than the read timeout
or the whole fetch outlasting its deadline ends it with :class:`FetchFailed`, as do
answers other than 200 and failed connections. Refusals by the outbound rule raise its
:class:`~balsam.errors.InvalidInput`.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpcore

from balsam.domain.outbound import outbound_addresses
from balsam.errors import N_, InvalidInput

#: Statuses whose Location is followed.
REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Characters left as they are in a path or query (everything else is %-escaped).
_SAFE = "/%:@!$&'()*+,;=-._~?"
_USER_AGENT = b"Balsam-import/1"


class FetchFailed(Exception):
    """The source could not be fetched; the message says why (English, for the
    import's ``error``)."""


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    connect_timeout: float
    read_timeout: float
    #: time.monotonic() by which the whole fetch must be over.
    deadline: float
    max_redirects: int
    private_hosts: list[str] = field(default_factory=list)


@dataclass
class Fetched:
    """A source answering 200: its final URL, what it says of itself, its body."""

    url: str
    content_type: str | None
    length: int | None
    chunks: Iterator[bytes]


@contextmanager
def fetch(
    url: str,
    limits: FetchLimits,
    *,
    field: str = "url",
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[Fetched]:
    """GET ``url`` (following redirects under the rule) and yield its body; the
    connection is closed when the block ends. ``ssl_context``: the certificates https
    is verified against (default: httpcore's, certifi's authorities)."""
    for _ in range(limits.max_redirects + 1):
        target, host, addresses = _checked(url, limits, field)
        backend = _PinnedBackend(host, addresses)
        with httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=backend, max_connections=1
        ) as pool:
            timeouts = {"timeout": _timeouts(limits)}
            with (
                _failures(),
                pool.stream("GET", target, headers=_headers(), extensions=timeouts) as response,
            ):
                if response.status in REDIRECTS:
                    url = _next_hop(url, response.headers)
                    continue
                if response.status != 200:
                    raise FetchFailed(f"The source answered HTTP {response.status}.")
                length = _length(response.headers, limits)
                yield Fetched(
                    url=url,
                    content_type=_header(response.headers, b"content-type"),
                    length=length,
                    chunks=_limited(response.iter_stream(), limits),
                )
                return
    raise FetchFailed(f"More than {limits.max_redirects} redirects.")


def check_url(url: str, private_hosts: list[str], *, field: str = "url") -> None:
    """InvalidInput unless ``url`` may be fetched now (scheme, credentials, addresses)."""
    _scheme(url, field)
    outbound_addresses(url, private_hosts, field=field)


def _scheme(url: str, field: str) -> None:
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        raise InvalidInput(
            N_("%(field)s is not a valid URL."), params={"field": field}, details={"field": field}
        ) from None
    if scheme not in ("http", "https"):
        raise InvalidInput(
            N_("%(field)s must be an http or https URL."),
            params={"field": field},
            details={"field": field},
        )


def _checked(url: str, limits: FetchLimits, field: str) -> tuple[httpcore.URL, str, list[str]]:
    """The URL as httpcore takes it, its host as httpcore names it (IDNA), and the
    addresses it may connect to."""
    _scheme(url, field)
    addresses = outbound_addresses(url, limits.private_hosts, field=field)
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        wire_host = host.encode("idna") if not _is_address(host) else host.encode()
    except UnicodeError:
        raise InvalidInput(
            N_("%(field)s is not a valid URL."), params={"field": field}, details={"field": field}
        ) from None
    if b":" in wire_host:
        wire_host = b"[" + wire_host + b"]"
    path = quote(parts.path or "/", safe=_SAFE)
    query = "?" + quote(parts.query, safe=_SAFE) if parts.query else ""
    target = httpcore.URL(
        scheme=parts.scheme.lower().encode(),
        host=wire_host,
        port=parts.port,
        target=(path + query).encode(),
    )
    return target, wire_host.decode("ascii"), addresses


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _headers() -> list[tuple[bytes, bytes]]:
    # identity: the bytes stored (and their SHA-256) are the file's, not a compression's.
    return [(b"User-Agent", _USER_AGENT), (b"Accept-Encoding", b"identity"), (b"Accept", b"*/*")]


def _timeouts(limits: FetchLimits) -> dict[str, float]:
    left = max(0.1, limits.deadline - time.monotonic())
    return {
        "connect": min(limits.connect_timeout, left),
        "read": min(limits.read_timeout, left),
        "write": min(limits.read_timeout, left),
        "pool": min(limits.connect_timeout, left),
    }


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _next_hop(url: str, headers: list[tuple[bytes, bytes]]) -> str:
    location = _header(headers, b"location")
    if not location:
        raise FetchFailed("The source redirected without saying where to.")
    try:
        return urljoin(url, location.strip()).split("#", 1)[0]
    except ValueError:
        raise FetchFailed("The source redirected to an address that is not a URL.") from None


def _length(headers: list[tuple[bytes, bytes]], limits: FetchLimits) -> int | None:
    declared = _header(headers, b"content-length")
    if declared is None or not declared.strip().isdigit():
        return None
    length = int(declared)
    if length > limits.max_bytes:
        raise _too_large(limits)
    return length


def _limited(chunks: Iterable[bytes], limits: FetchLimits) -> Iterator[bytes]:
    """``chunks`` while they stay within the size and time limits."""
    size = 0
    with _failures():
        for chunk in chunks:
            size += len(chunk)
            if size > limits.max_bytes:
                raise _too_large(limits)
            if time.monotonic() > limits.deadline:
                raise FetchFailed("The import took longer than it may.")
            yield chunk


def _too_large(limits: FetchLimits) -> FetchFailed:
    return FetchFailed(
        f"The file is larger than an import may bring in ({limits.max_bytes} bytes)."
    )


@contextmanager
def _failures() -> Iterator[None]:
    """httpcore's errors as :class:`FetchFailed`."""
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise FetchFailed(f"The source did not answer in time ({type(exc).__name__}).") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
        raise FetchFailed(f"Could not fetch from the source: {exc or type(exc).__name__}.") from exc
    except httpcore.UnsupportedProtocol as exc:
        raise FetchFailed(f"Could not fetch from the source: {exc}.") from exc


class _PinnedBackend(httpcore.SyncBackend):
    """Connects to the checked addresses of one host, never resolving its name again,
    and refuses a socket whose peer is not the address asked for."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self._host = host.casefold().strip("[]")
        self._addresses = addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if host.casefold().strip("[]") != self._host:
            raise httpcore.ConnectError(f"no checked address for {host}")
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in self._addresses:
            try:
                stream = super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            peer = stream.get_extra_info("socket").getpeername()[0]
            if ipaddress.ip_address(peer.split("%", 1)[0]) != ipaddress.ip_address(address):
                stream.close()
                raise httpcore.ConnectError(f"connected to {peer}, not to {address}")
            return stream
        raise failure
