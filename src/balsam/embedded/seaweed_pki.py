"""Keys that close the embedded SeaweedFS to every local process but Balsam.

Per storage conf dir (``<storage data dir>/conf/``, mode 0700), all files 0600:

* a private CA (``ca.crt``, ``ca.key``; ECDSA P-256, valid ten years), made on
  first use and again when less than a year of it is left, or by :func:`rotate_pki`;
* one certificate per weed component (``<component>.crt`` / ``.key``, common
  name ``seaweedfs-<component>``) and one for Balsam itself (``balsam.crt`` /
  ``.key``, common name ``balsam``), reissued from the CA at every
  :func:`prepare_security` (it is cheap), each with SANs ``IP:127.0.0.1`` and
  ``DNS:localhost``, usable as server and as client certificate;
* the four JWT signing keys of weed (``jwt.json``), made once and kept, because
  Balsam's IAM gRPC client signs a filer admin token with the
  ``[jwt.filer_signing]`` key; :func:`rotate_pki` replaces them too;
* ``security.toml``, which weed reads from its ``-config_dir``: mutual TLS on
  every gRPC listener, each accepting only the weed components' and Balsam's
  common names, the JWT keys, and weed's web UIs and filer directory listings off.

Nothing here is ever written outside the conf dir or logged. A rotation takes
effect when weed starts next; clients then call :func:`client_tls` again.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Every [grpc.<component>] section of weed's `scaffold -config=security` (4.48).
WEED_COMPONENTS = (
    "master", "volume", "filer", "s3", "admin", "worker", "msg_broker", "msg_agent", "mq",
)  # fmt: skip
CLIENT_COMMON_NAME = "balsam"
_JWT_SECTIONS = {
    "signing": "jwt.signing",
    "signing_read": "jwt.signing.read",
    "filer_signing": "jwt.filer_signing",
    "filer_signing_read": "jwt.filer_signing.read",
}
_CA_LIFETIME = datetime.timedelta(days=3650)
_CA_RENEW_BEFORE = datetime.timedelta(days=365)
_CLOCK_SKEW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class SeaweedClientTls:
    """What a gRPC client needs to pass weed's mutual TLS as Balsam (PEM bytes)."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes = field(repr=False)


def weed_common_name(component: str) -> str:
    """The common name of a weed component's certificate (``client`` included)."""
    return f"seaweedfs-{component}"


def allowed_common_names() -> list[str]:
    """Who may call any weed gRPC listener: weed's own components and Balsam."""
    return [weed_common_name(c) for c in (*WEED_COMPONENTS, "client")] + [CLIENT_COMMON_NAME]


def prepare_security(conf_dir: Path) -> Path:
    """Make ``conf_dir`` ready for a weed start and return its ``security.toml``.

    Creates the CA if missing, unreadable or within a year of expiry, reissues
    every component certificate and Balsam's, creates the JWT keys if missing,
    and rewrites ``security.toml``. Idempotent apart from the fresh certificates."""
    conf_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key, ca_cert = _load_or_create_ca(conf_dir)
    for component in (*WEED_COMPONENTS, "client"):
        _issue(conf_dir, component, weed_common_name(component), ca_key, ca_cert)
    _issue(conf_dir, CLIENT_COMMON_NAME, CLIENT_COMMON_NAME, ca_key, ca_cert)
    keys = _load_or_create_jwt_keys(conf_dir)
    path = conf_dir / "security.toml"
    _write_private(path, _security_toml(conf_dir, keys).encode())
    return path


def rotate_pki(conf_dir: Path) -> Path:
    """Replace the CA and the JWT keys, then reissue everything (see
    :func:`prepare_security`). Weed must be restarted to use them; tokens and
    certificates from before stop working then."""
    for name in ("ca.key", "ca.crt", "jwt.json"):
        (conf_dir / name).unlink(missing_ok=True)
    return prepare_security(conf_dir)


def client_tls(conf_dir: Path) -> SeaweedClientTls:
    """Balsam's client certificate, its key and the CA, as made by the last
    :func:`prepare_security` on ``conf_dir``. Read them again after a rotation.
    Raises FileNotFoundError before the first one."""
    return SeaweedClientTls(
        ca_pem=(conf_dir / "ca.crt").read_bytes(),
        cert_pem=(conf_dir / f"{CLIENT_COMMON_NAME}.crt").read_bytes(),
        key_pem=(conf_dir / f"{CLIENT_COMMON_NAME}.key").read_bytes(),
    )


def filer_jwt_key(conf_dir: Path) -> str:
    """The ``[jwt.filer_signing]`` key: a filer admin JWT (HS256) signed with it
    passes the filer's IAM gRPC service. Raises FileNotFoundError before the
    first :func:`prepare_security`."""
    return _read_jwt_keys(conf_dir / "jwt.json")["filer_signing"]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _load_or_create_ca(conf_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        key = serialization.load_pem_private_key((conf_dir / "ca.key").read_bytes(), None)
        cert = x509.load_pem_x509_certificate((conf_dir / "ca.crt").read_bytes())
    except (OSError, ValueError):
        return _create_ca(conf_dir)
    fresh = cert.not_valid_after_utc - _now() > _CA_RENEW_BEFORE
    if not (fresh and isinstance(key, ec.EllipticCurvePrivateKey)):
        return _create_ca(conf_dir)
    return key, cert


def _create_ca(conf_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Balsam SeaweedFS CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(conf_dir / "ca.key", _key_pem(key))
    _write_private(conf_dir / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _issue(
    conf_dir: Path,
    file_stem: str,
    common_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - _CLOCK_SKEW)
        .not_valid_after(ca_cert.not_valid_after_utc)  # reissued at every start anyway
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(conf_dir / f"{file_stem}.key", _key_pem(key))
    _write_private(conf_dir / f"{file_stem}.crt", cert.public_bytes(serialization.Encoding.PEM))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=not ca, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_or_create_jwt_keys(conf_dir: Path) -> dict[str, str]:
    path = conf_dir / "jwt.json"
    try:
        return _read_jwt_keys(path)
    except (OSError, ValueError, KeyError, TypeError):
        keys = {name: secrets.token_hex(32) for name in _JWT_SECTIONS}
        _write_private(path, json.dumps(keys).encode())
        return keys


def _read_jwt_keys(path: Path) -> dict[str, str]:
    stored = json.loads(path.read_text(encoding="utf-8"))
    keys = {name: stored[name] for name in _JWT_SECTIONS}
    if not all(isinstance(value, str) and len(value) >= 32 for value in keys.values()):
        raise ValueError(f"{path} holds no valid JWT keys")
    return keys


def _security_toml(conf_dir: Path, keys: dict[str, str]) -> str:
    def quoted(value: str | Path) -> str:
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string

    allowed = quoted(",".join(allowed_common_names()))
    lines = [f"[{section}]\nkey = {quoted(keys[key])}\n" for key, section in _JWT_SECTIONS.items()]
    lines += [
        # Web UIs and directory listings of the internal HTTP ports (also closed
        # by -disableHttp, but this holds if a flag changes).
        "[access]\nui = false\n",
        "[filer.expose_directory_metadata]\nenabled = false\n",
        f'[grpc]\nca = {quoted(conf_dir / "ca.crt")}\nallowed_wildcard_domain = ""\n',
    ]
    for component in WEED_COMPONENTS:
        lines.append(
            f"[grpc.{component}]\ncert = {quoted(conf_dir / f'{component}.crt')}\n"
            f"key = {quoted(conf_dir / f'{component}.key')}\nallowed_commonNames = {allowed}\n"
        )
    lines.append(
        f"[grpc.client]\ncert = {quoted(conf_dir / 'client.crt')}\n"
        f"key = {quoted(conf_dir / 'client.key')}\n"
    )
    return "\n".join(lines)


def _write_private(path: Path, content: bytes) -> None:
    """Replace ``path`` atomically with a 0600 file (a reader never sees half a key)."""
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
