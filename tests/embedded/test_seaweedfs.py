"""The embedded SeaweedFS: ports, secrets, start failures, admin credentials."""

from __future__ import annotations

import json
import os
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from balsam.embedded import (
    EmbeddedServiceError,
    PortInUseError,
    SeaweedPorts,
    SeaweedServer,
    find_weed_binary,
    load_or_create_admin_credentials,
)
from tests.fixtures.seaweed import SeaweedEndpoint


def server_in(tmp_path: Path, **options: object) -> SeaweedServer:
    return SeaweedServer(
        tmp_path / "seaweed",
        ports=SeaweedPorts.pick_free(),
        admin_access_key="AKTEST",
        admin_secret_key="s3cr3t-never-shown",
        **options,  # type: ignore[arg-type]
    )


def fake_weed(tmp_path: Path, script: str) -> Path:
    path = tmp_path / "fake-weed"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o700)
    return path


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket ``pid`` listens on, from /proc."""
    fd_dir = Path(f"/proc/{pid}/fd")
    inodes = {os.readlink(fd_dir / fd)[8:-1] for fd in os.listdir(fd_dir)
              if os.readlink(fd_dir / fd).startswith("socket:[")}  # fmt: skip
    found: set[tuple[str, int]] = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.add((address, int(port, 16)))
    return found


def test_command_line_holds_no_secret(seaweed: SeaweedEndpoint) -> None:
    pid = seaweed.server.pid
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert "mini" in cmdline
    assert seaweed.admin_secret_key not in cmdline
    assert seaweed.admin_access_key not in cmdline


def test_listens_on_its_ports_on_loopback_only(seaweed: SeaweedEndpoint) -> None:
    pid = seaweed.server.pid
    assert pid is not None
    listening = listening_addresses(pid)
    assert {address for address, _ in listening} == {"0100007F"}  # 127.0.0.1
    assert {port for _, port in listening} == set(seaweed.server.ports.as_dict().values())


@pytest.mark.parametrize(
    ("service", "path", "status"),
    [("filer", "/etc/iam/identities/", 404), ("filer", "/buckets/", 404),  # -disableHttp
     ("volume", "/1,0123456789", 401)],  # no JWT from weed
)  # fmt: skip
def test_internal_http_ports_refuse_requests_from_others(
    seaweed: SeaweedEndpoint, service: str, path: str, status: int
) -> None:
    port = seaweed.server.ports.as_dict()[service]
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
    assert caught.value.code == status


def test_refuses_to_start_on_a_busy_port(tmp_path: Path) -> None:
    server = server_in(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.ports.filer))
        squatter.listen()
        with pytest.raises(PortInUseError, match=str(server.ports.filer)) as caught:
            server.start()
    assert caught.value.port == server.ports.filer
    assert not server.running


def test_early_exit_reports_the_log_tail(tmp_path: Path) -> None:
    weed = fake_weed(tmp_path, "echo 'fatal: disk on fire' >&2; exit 3")
    server = server_in(tmp_path, weed_binary=weed)
    with pytest.raises(EmbeddedServiceError, match="disk on fire") as caught:
        server.start()
    assert "status 3" in str(caught.value)
    assert not server.running
    assert stat.S_IMODE(server.log_path.stat().st_mode) == 0o600


def test_start_timeout_stops_the_child(tmp_path: Path) -> None:
    weed = fake_weed(tmp_path, "exec sleep 60")
    server = server_in(tmp_path, weed_binary=weed, start_timeout=0.5, stop_timeout=2)
    with pytest.raises(EmbeddedServiceError, match="did not answer"):
        server.start()
    assert not server.running
    server.stop()  # idempotent


def test_secret_reaches_weed_only_through_its_environment(tmp_path: Path) -> None:
    weed = fake_weed(tmp_path, 'echo "args: $*"; echo "key: $AWS_SECRET_ACCESS_KEY"; exit 1')
    server = server_in(tmp_path, weed_binary=weed, memory_limit_mib=300)
    with pytest.raises(EmbeddedServiceError) as caught:
        server.start()
    log = server.log_path.read_text()
    assert "key: s3cr3t-never-shown" in log
    args = next(line for line in log.splitlines() if line.startswith("args: "))
    assert "s3cr3t" not in args
    assert "-ip.bind=127.0.0.1" in args
    assert "-master.telemetry=false" in args
    assert "s3cr3t" not in repr(server)
    assert caught.value is not None


def test_ports_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        SeaweedPorts.from_http(s3=8333, master=9333, volume=9340, filer=8333)
    with pytest.raises(ValueError, match="distinct"):  # a gRPC twin hits another port
        SeaweedPorts.from_http(s3=8333, master=9333, volume=9340, filer=8888, admin=18333)


def test_weed_binary_is_found() -> None:
    binary = find_weed_binary()
    assert binary.is_file()
    assert os.access(binary, os.X_OK)


def test_admin_credentials_are_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "storage" / "admin.json"
    access_key, secret_key = load_or_create_admin_credentials(path)

    assert len(access_key) >= 16 and len(secret_key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"access_key": access_key, "secret_key": secret_key}
    assert load_or_create_admin_credentials(path) == (access_key, secret_key)
    assert list(path.parent.iterdir()) == [path]  # no scratch files left behind


def test_admin_credentials_differ_per_installation(tmp_path: Path) -> None:
    first = load_or_create_admin_credentials(tmp_path / "a" / "admin.json")
    second = load_or_create_admin_credentials(tmp_path / "b" / "admin.json")
    assert first[0] != second[0] and first[1] != second[1]


def test_loose_credentials_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "admin.json"
    path.write_text(json.dumps({"access_key": "AK", "secret_key": "SK"}))
    path.chmod(0o644)
    assert load_or_create_admin_credentials(path) == ("AK", "SK")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "content", ["not json", "[]", '{"access_key": "AK"}', '{"access_key": "", "secret_key": "x"}']
)
def test_broken_credentials_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "admin.json"
    path.write_text(content)
    with pytest.raises(EmbeddedServiceError, match="not a valid credentials file"):
        load_or_create_admin_credentials(path)
