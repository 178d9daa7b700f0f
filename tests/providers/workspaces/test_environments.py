"""Template environments: a failed build is a visible reason and leaves nothing
behind; the default interpreter is one that workspace users can run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from balsam.domain.workspaces.templates import load_templates
from balsam.providers.workspaces.base import EnvironmentSpec, WorkspaceStartError
from balsam.providers.workspaces.environments import EnvironmentBuilder, default_python
from tests.fixtures.app import ENVIRONMENTS

BROKEN = EnvironmentSpec("broken", ("balsam-test-no-such-package-3f9a==0.0.1",))


def test_a_failed_build_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    builder = EnvironmentBuilder(tmp_path / "envs", timeout=300)
    said: list[str] = []
    with pytest.raises(WorkspaceStartError) as failed:
        builder.ensure(BROKEN, said.append)
    assert "Building the environment failed" in failed.value.message
    assert "balsam-test-no-such-package-3f9a" in failed.value.message
    assert said and said[0].startswith(f"Building environment {BROKEN.name}")
    assert not builder.path(BROKEN).exists()
    assert builder.lock(BROKEN) is None
    assert (tmp_path / "envs" / f"{BROKEN.name}.log").read_text()  # the installer's output


def test_versions_follow_requirements_not_their_order() -> None:
    a = EnvironmentSpec("t", ("x==1", "y==2"))
    assert a.version == EnvironmentSpec("t", ("y==2", "x==1")).version
    assert a.version != EnvironmentSpec("t", ("x==1", "y==3")).version
    assert a.name == f"t-{a.version}"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs workspaces as other users")
def test_default_python_is_reachable_by_other_users() -> None:
    python = Path(default_python()).resolve()
    for folder in [python, *python.parents]:
        assert folder.stat().st_mode & 0o001, folder


def test_a_built_environment_is_writable_by_balsam_alone() -> None:
    """Workspaces of every user run from it: a file any of them could write (uv's
    own 0666 ``.lock`` was one) would be a channel between them, or a way in."""
    spec = load_templates(None)["python"].environment
    builder = EnvironmentBuilder(ENVIRONMENTS)
    target = builder.ensure(spec, lambda _: None)
    assert not (target / ".lock").exists()
    writable = [
        str(path)
        for path in (target, *target.rglob("*"))
        if not path.is_symlink() and path.stat().st_mode & 0o022
    ]
    assert writable == []


def test_a_template_without_its_system_packages_fails_with_their_names(tmp_path: Path) -> None:
    """Before anything is built: the reason names what the administrator installs."""
    spec = EnvironmentSpec(
        "needs-deb", ("x==1",), system_packages=("bash", "balsam-test-no-such-deb-3f9a")
    )
    builder = EnvironmentBuilder(tmp_path / "envs", timeout=300)
    with pytest.raises(WorkspaceStartError) as failed:
        builder.ensure(spec, lambda _: None)
    assert "balsam-test-no-such-deb-3f9a" in failed.value.message
    assert "bash," not in failed.value.message  # installed: not named
    assert "apt-get install balsam-test-no-such-deb-3f9a" in failed.value.message
    assert not builder.path(spec).exists()


def test_system_packages_r_and_cran_make_new_versions_and_only_they() -> None:
    plain = EnvironmentSpec("t", ("x==1",))
    assert plain.version == EnvironmentSpec("t", ("x==1",), system_packages=()).version
    assert (
        plain.version != EnvironmentSpec("t", ("x==1",), system_packages=("r-base-core",)).version
    )
    assert plain.version != EnvironmentSpec("t", ("x==1",), r=True).version
    assert plain.version != EnvironmentSpec("t", ("x==1",), cran_packages=("treemap",)).version


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        ({"kernels": ["python3", "ir"]}, "an R kernel needs the system packages"),
        ({"systemPackages": ["r-base-core; rm -rf /"]}, "not Debian package names"),
        ({"cranPackages": ["treemap'); system('id"]}, "not R package names"),
        ({"kernels": ["julia"]}, "kernels"),
    ],
)
def test_templates_file_refuses_what_it_cannot_build(
    tmp_path: Path, extra: dict[str, object], refused: str
) -> None:
    file = tmp_path / "templates.json"
    file.write_text(json.dumps([{"id": "t", "name": "T", "requirements": ["x==1"], **extra}]))
    with pytest.raises(ValueError, match=refused):
        load_templates(file)


def test_the_built_in_r_templates_name_what_r_needs() -> None:
    for template in ("r", "elyra"):
        spec = load_templates(None)[template].environment
        assert spec.r
        assert {"r-base-core", "r-cran-irkernel", "r-cran-reticulate"} <= set(spec.system_packages)
    assert not load_templates(None)["python"].environment.r
