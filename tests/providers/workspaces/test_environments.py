"""Template environments: a failed build is a visible reason and leaves nothing
behind; the default interpreter is one that workspace users can run."""

from __future__ import annotations

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
