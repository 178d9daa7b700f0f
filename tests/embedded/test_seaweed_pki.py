"""The private CA, certificates, JWT keys and security.toml of the embedded SeaweedFS."""

from __future__ import annotations

import ipaddress
import json
import stat
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from balsam.embedded import client_tls, filer_jwt_key, prepare_security, rotate_pki, seaweed_pki
from balsam.embedded.seaweed_pki import WEED_COMPONENTS, allowed_common_names


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_every_file_is_private(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    prepare_security(conf)
    assert stat.S_IMODE(conf.stat().st_mode) == 0o700
    files = list(conf.iterdir())
    assert {f.name for f in files} >= {
        "ca.crt",
        "ca.key",
        "balsam.key",
        "jwt.json",
        "security.toml",
    }
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_certificates_chain_to_the_ca_with_loopback_names(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    prepare_security(conf)
    ca = cert(conf / "ca.crt")
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    for stem, name in [*((c, f"seaweedfs-{c}") for c in (*WEED_COMPONENTS, "client")),
                       ("balsam", "balsam")]:  # fmt: skip
        leaf = cert(conf / f"{stem}.crt")
        assert common_name(leaf) == name
        leaf.verify_directly_issued_by(ca)
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
        assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_security_toml_requires_known_common_names_on_every_grpc_listener(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "conf"
    config = tomllib.loads(prepare_security(conf).read_text())
    assert config["grpc"]["ca"] == str(conf / "ca.crt")
    assert config["grpc"]["allowed_wildcard_domain"] == ""
    expected = ",".join(allowed_common_names())
    for component in WEED_COMPONENTS:
        section = config["grpc"][component]
        assert section["allowed_commonNames"] == expected
        assert Path(section["cert"]).exists() and Path(section["key"]).exists()
    assert set(allowed_common_names()) == {
        f"seaweedfs-{c}" for c in (*WEED_COMPONENTS, "client")
    } | {"balsam"}
    assert Path(config["grpc"]["client"]["cert"]) == conf / "client.crt"
    assert config["access"]["ui"] is False
    assert config["filer"]["expose_directory_metadata"]["enabled"] is False
    assert config["jwt"]["filer_signing"]["key"] == filer_jwt_key(conf)
    jwt = config["jwt"]
    keys = {jwt["signing"]["key"], jwt["signing"]["read"]["key"],
            jwt["filer_signing"]["key"], jwt["filer_signing"]["read"]["key"]}  # fmt: skip
    assert len(keys) == 4 and all(len(key) == 64 for key in keys)


def test_ca_and_jwt_keys_persist_and_leaf_certificates_are_reissued(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    prepare_security(conf)
    first = client_tls(conf)
    key = filer_jwt_key(conf)
    prepare_security(conf)
    second = client_tls(conf)
    assert second.ca_pem == first.ca_pem
    assert filer_jwt_key(conf) == key
    assert second.cert_pem != first.cert_pem and second.key_pem != first.key_pem


def test_a_ca_close_to_expiry_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    monkeypatch.setattr(seaweed_pki, "_CA_LIFETIME", seaweed_pki._CA_RENEW_BEFORE / 2)
    prepare_security(conf)
    short_lived = (conf / "ca.crt").read_bytes()
    monkeypatch.undo()
    prepare_security(conf)
    assert (conf / "ca.crt").read_bytes() != short_lived
    prepare_security(conf)  # and the fresh one is kept
    assert client_tls(conf).ca_pem == (conf / "ca.crt").read_bytes()


def test_rotation_replaces_the_ca_and_every_jwt_key(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    prepare_security(conf)
    before = (client_tls(conf), (conf / "jwt.json").read_text())
    rotate_pki(conf)
    after = (client_tls(conf), (conf / "jwt.json").read_text())
    assert after[0].ca_pem != before[0].ca_pem
    old_keys, new_keys = json.loads(before[1]), json.loads(after[1])
    assert all(old_keys[name] != new_keys[name] for name in old_keys)
    new_cert = x509.load_pem_x509_certificate(after[0].cert_pem)
    with pytest.raises((ValueError, InvalidSignature)):
        new_cert.verify_directly_issued_by(x509.load_pem_x509_certificate(before[0].ca_pem))


def test_client_key_stays_out_of_repr(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    prepare_security(conf)
    tls = client_tls(conf)
    assert b"PRIVATE KEY" in tls.key_pem
    assert "PRIVATE" not in repr(tls) and "key_pem" not in repr(tls)


def test_client_side_needs_a_prepared_conf_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        client_tls(tmp_path)
    with pytest.raises(FileNotFoundError):
        filer_jwt_key(tmp_path)
