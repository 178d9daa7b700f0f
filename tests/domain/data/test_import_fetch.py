"""The import's fetch over https: it connects to the checked address, yet TLS still
checks the certificate against the URL's host name (SNI included)."""

from __future__ import annotations

import datetime
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from balsam.domain.data.fetch import FetchFailed, FetchLimits, fetch
from tests.fixtures.http_source import Answer, Source, http_source


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str,
    issuer: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    dns: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test CA", "Test CA", key, key, ca=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return folder, key


def _server_tls(folder: Path, signer: ec.EllipticCurvePrivateKey, dns: str) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(dns, "Test CA", key, signer, ca=False, dns=dns)
    (folder / f"{dns}.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / f"{dns}.pem")
    return context


@pytest.fixture
def tls_source(authority: tuple[Path, ec.EllipticCurvePrivateKey]) -> Iterator[Source]:
    with http_source(_server_tls(*authority, "localhost")) as served:
        served.answers["/x"] = Answer(body=b"over tls")
        yield served


def _limits() -> FetchLimits:
    return FetchLimits(
        max_bytes=1000,
        connect_timeout=2,
        read_timeout=5,
        deadline=time.monotonic() + 20,
        max_redirects=0,
        private_hosts=["localhost", "127.0.0.1"],
    )


def _client_tls(folder: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(folder / "ca.pem"))


def test_https_is_verified_against_the_urls_host_name(
    authority: tuple[Path, ec.EllipticCurvePrivateKey], tls_source: Source
) -> None:
    url = f"https://localhost:{tls_source.port}/x"
    with fetch(url, _limits(), ssl_context=_client_tls(authority[0])) as fetched:
        assert b"".join(fetched.chunks) == b"over tls"


def test_a_certificate_for_another_name_is_refused(
    authority: tuple[Path, ec.EllipticCurvePrivateKey], tls_source: Source
) -> None:
    # The same server reached by its address: the certificate names 'localhost' only.
    url = f"https://127.0.0.1:{tls_source.port}/x"
    with pytest.raises(FetchFailed), fetch(url, _limits(), ssl_context=_client_tls(authority[0])):
        pass
    assert tls_source.requests == []


def test_an_unknown_authority_is_refused(tls_source: Source) -> None:
    url = f"https://localhost:{tls_source.port}/x"
    with pytest.raises(FetchFailed), fetch(url, _limits()):
        pass
    assert tls_source.requests == []
