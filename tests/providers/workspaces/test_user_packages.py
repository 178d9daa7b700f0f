"""Where pip and R install inside a workspace, and reading back what was installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from balsam.providers.workspaces import user_packages


def _env(tmp_path: Path) -> Path:
    env = tmp_path / "env"
    (env / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    return env


def test_pip_is_pointed_at_the_named_index_only(tmp_path: Path) -> None:
    env, home = _env(tmp_path), tmp_path / "home"
    named = user_packages.server_environment(env, home, "https://mirror.example/simple")
    assert named["PIP_INDEX_URL"] == "https://mirror.example/simple"
    # The machine's pip.conf may name more: cleared; no version check against PyPI.
    assert named["PIP_EXTRA_INDEX_URL"] == "" and named["PIP_FIND_LINKS"] == ""
    assert named["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"
    assert named["PIP_PREFIX"] == str(home / ".local")
    assert named["BALSAM_USER_SITE"] == str(home / ".local/lib/python3.11/site-packages")
    assert user_packages.server_environment(env, home, None)["PIP_INDEX_URL"] == (
        "https://pypi.org/simple"
    )


def test_the_pth_file_goes_into_the_environments_site_packages(tmp_path: Path) -> None:
    env = _env(tmp_path)
    user_packages.write_pth(env)
    text = (env / "lib/python3.11/site-packages" / user_packages.PTH_NAME).read_text()
    assert text.startswith("import os, sys;") and "sys.path.append" in text


def test_scan_reads_names_and_versions_and_drops_forged_ones(tmp_path: Path) -> None:
    env, home = _env(tmp_path), tmp_path / "home"
    site = home / ".local/lib/python3.11/site-packages"
    for name, version in [("Probe-Pkg", "1.0"), ("bad name", "1"), ("ok", "<script>")]:
        info = site / f"{name.replace(' ', '_')}-{version.strip('<>')}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    library = home / "R/library"
    for folder, text in [
        ("tibble", "Package: tibble\nVersion: 3.2.1\nTitle: x\n  Package: continued\n"),
        ("evil", "Package: ../../x\nVersion: 1\n"),
        ("broken", "no fields here"),
    ]:
        (library / folder).mkdir(parents=True)
        (library / folder / "DESCRIPTION").write_text(text)
    found = user_packages.scan(sys.executable, env, home, None)
    assert found == {"Probe-Pkg": "1.0", "R/tibble": "3.2.1"}


def test_scan_of_an_empty_home_is_empty_and_of_a_failing_python_none(tmp_path: Path) -> None:
    env, home = _env(tmp_path), tmp_path / "home"
    home.mkdir()
    assert user_packages.scan(sys.executable, env, home, None) == {}
    assert user_packages.scan(str(tmp_path / "no-python"), env, home, None) is None


def test_the_scan_is_not_held_up_or_blown_up_by_what_a_user_plants(tmp_path: Path) -> None:
    """A FIFO where a METADATA or DESCRIPTION is expected, a 1 GiB (sparse) METADATA,
    a 10 MB name, and a pip distribution named like an R package."""
    import os
    import time

    env, home = _env(tmp_path), tmp_path / "home"
    site = home / ".local/lib/python3.11/site-packages"
    for folder in ("fifo-1.dist-info", "huge-1.dist-info", "long-1.dist-info", "r-1.dist-info"):
        (site / folder).mkdir(parents=True)
    os.mkfifo(site / "fifo-1.dist-info/METADATA")
    with (site / "huge-1.dist-info/METADATA").open("wb") as huge:
        huge.write(b"Name: huge\nVersion: 1\n")
        huge.truncate(1 << 30)
    (site / "long-1.dist-info/METADATA").write_text("Name: " + "x" * 10_000_000 + "\nVersion: 1\n")
    (site / "r-1.dist-info/METADATA").write_text("Name: R/ggplot2\nVersion: 9.9.9\n")
    (home / "R/library/fifo").mkdir(parents=True)
    os.mkfifo(home / "R/library/fifo/DESCRIPTION")
    started = time.monotonic()
    found = user_packages.scan(sys.executable, env, home, None)
    assert time.monotonic() - started < 5
    assert found == {"huge": "1"}


def test_a_flood_of_entries_hides_nothing_and_too_much_metadata_reads_as_unknown(
    tmp_path: Path,
) -> None:
    env, home = _env(tmp_path), tmp_path / "home"
    site = home / ".local/lib/python3.11/site-packages"
    site.mkdir(parents=True)
    for i in range(20_000):  # not packages: looked at, never read
        (site / f"aaa{i}").mkdir()
    (site / "zreal-1.dist-info").mkdir()
    (site / "zreal-1.dist-info/METADATA").write_text("Name: zreal\nVersion: 1\n")
    assert user_packages.scan(sys.executable, env, home, None) == {"zreal": "1"}
    for i in range(400):  # 16 KiB of headers each: past the 4 MiB read in all
        info = site / f"big{i}-1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("a: b\n" * 4000)
    assert user_packages.scan(sys.executable, env, home, None) is None


def test_output_the_user_tampered_with_reads_as_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, home = _env(tmp_path), tmp_path / "home"
    home.mkdir()
    for planted in (b"[" * 300_000, b'{"python": {"x\\n": "1"}}', b"null"):
        monkeypatch.setattr(user_packages, "_bounded_output", lambda _proc, out=planted: out)
        assert user_packages.scan(sys.executable, env, home, None) in (None, {})
