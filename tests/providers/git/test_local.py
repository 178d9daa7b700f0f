"""LocalGitProvider against the real git command line."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from balsam.errors import Conflict, InvalidInput, NotFound
from balsam.providers.git.base import Author, TreeEntry
from balsam.providers.git.local import LocalGitProvider, git_environment

AUTHOR = Author("Åsa Tester", "asa@example.org")
FILES = {
    "README.md": b"# Demo\n",
    "docs/with space.md": b"spaces\n",
    "docs/ünïcödé/Årsstatistik.csv": "å,ä,ö\n".encode(),
    'odd/quo"te\nnewline.txt': b"odd\n",
}
IDENTITY = {
    "GIT_AUTHOR_NAME": "CLI",
    "GIT_AUTHOR_EMAIL": "cli@example.org",
    "GIT_COMMITTER_NAME": "CLI",
    "GIT_COMMITTER_EMAIL": "cli@example.org",
}


def git(*args: str, cwd: Path | None = None) -> str:
    """Run the git CLI in an isolated environment and return stdout."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=git_environment(IDENTITY), capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture
def provider(tmp_path: Path) -> LocalGitProvider:
    return LocalGitProvider(tmp_path / "repos")


@pytest.fixture
def repo(provider: LocalGitProvider) -> str:
    provider.create_repository(
        "demo", default_branch="main", files=FILES, message="Initial", author=AUTHOR
    )
    return "demo"


def make_source(path: Path, files: Mapping[str, bytes]) -> str:
    """A normal repository with two commits; returns its file:// URL."""
    git("init", "-q", "-b", "trunk", str(path))
    (path / "old.txt").write_text("first commit only\n")
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "first", cwd=path)
    (path / "old.txt").unlink()
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(content)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "second", cwd=path)
    return path.as_uri()


def test_create_and_list_tree(provider: LocalGitProvider, repo: str) -> None:
    assert provider.repository_exists(repo)
    assert provider.list_branches(repo) == ["main"]
    tree = provider.list_tree(repo, "main")
    assert [entry.path for entry in tree] == sorted(entry.path for entry in tree)
    assert TreeEntry("docs", "docs", "Folder") in tree
    assert TreeEntry("docs/ünïcödé", "ünïcödé", "Folder") in tree
    assert TreeEntry("docs/with space.md", "with space.md", "File", 7) in tree
    files = {entry.path for entry in tree if entry.type == "File"}
    assert files == set(FILES)


def test_read_file_round_trips_odd_names(provider: LocalGitProvider, repo: str) -> None:
    for path, content in FILES.items():
        assert provider.read_file(repo, "main", path) == content


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "docs/../README.md",
        "./README.md",
        "README.md\x00",
        "docs//with space.md",
        "docs\\with space.md",
        "",
        "docs",
        "docs/",
        "missing.txt",
        ".git/config",
    ],
)
def test_read_file_refuses_non_files(provider: LocalGitProvider, repo: str, path: str) -> None:
    with pytest.raises(NotFound):
        provider.read_file(repo, "main", path)


def test_symlinks_are_neither_listed_nor_read(
    provider: LocalGitProvider, repo: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    git("clone", "-q", provider.repository_path(repo).as_uri(), str(work))
    (work / "passwd").symlink_to("/etc/passwd")
    (work / "etc").symlink_to("/etc")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "symlinks", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    for path in ("passwd", "etc", "etc/passwd", "etc/hostname"):
        with pytest.raises(NotFound):
            provider.read_file(repo, "main", path)
    paths = {entry.path for entry in provider.list_tree(repo, "main")}
    assert not paths & {"passwd", "etc"}


def test_missing_repository_and_branch(provider: LocalGitProvider, repo: str) -> None:
    for call in (
        lambda: provider.list_tree("nope", "main"),
        lambda: provider.list_tree(repo, "nope"),
        lambda: provider.read_file(repo, "-x", "README.md"),
        lambda: provider.list_branches("nope"),
        lambda: provider.repository_path("nope"),
        lambda: provider.repository_path("../repos/demo"),
    ):
        with pytest.raises(NotFound):
            call()
    assert not provider.repository_exists("../demo")


def test_branches(provider: LocalGitProvider, repo: str) -> None:
    provider.create_branch(repo, "feature/ä", from_branch="main")
    assert provider.list_branches(repo) == ["feature/ä", "main"]
    assert provider.read_file(repo, "feature/ä", "README.md") == FILES["README.md"]
    with pytest.raises(Conflict):
        provider.create_branch(repo, "feature/ä", from_branch="main")
    with pytest.raises(Conflict):
        provider.create_branch(repo, "feature/ä/sub", from_branch="main")
    with pytest.raises(NotFound):
        provider.create_branch(repo, "other", from_branch="nope")
    with pytest.raises(InvalidInput):
        provider.create_branch(repo, "--force", from_branch="main")
    provider.delete_branch(repo, "feature/ä")
    provider.delete_branch(repo, "feature/ä")
    provider.delete_branch(repo, "--all")
    provider.delete_branch("nope", "x")
    with pytest.raises(Conflict):
        provider.delete_branch(repo, "main")
    assert provider.list_branches(repo) == ["main"]


def test_commit_files(provider: LocalGitProvider, repo: str) -> None:
    git_dir = provider.repository_path(repo)
    before = git(f"--git-dir={git_dir}", "rev-parse", "refs/heads/main").strip()
    sha = provider.commit_files(
        repo,
        "main",
        {"README.md": b"changed\n", "Resources/Ny/fil.py": b"print(1)\n"},
        message="-m looks like an option",
        author=AUTHOR,
    )
    assert git(f"--git-dir={git_dir}", "rev-parse", "refs/heads/main").strip() == sha
    assert git(f"--git-dir={git_dir}", "rev-parse", f"{sha}^").strip() == before
    log = git(f"--git-dir={git_dir}", "log", "-1", "--format=%an <%ae>|%s", sha)
    assert log.strip() == "Åsa Tester <asa@example.org>|-m looks like an option"
    assert provider.read_file(repo, "main", "README.md") == b"changed\n"
    assert provider.read_file(repo, "main", "Resources/Ny/fil.py") == b"print(1)\n"
    assert provider.read_file(repo, "main", "docs/with space.md") == FILES["docs/with space.md"]
    git(f"--git-dir={git_dir}", "fsck", "--strict")


@pytest.mark.parametrize("path", ["../evil", "/abs", ".git/hooks/post-update", "a//b"])
def test_commit_files_refuses_bad_paths(provider: LocalGitProvider, repo: str, path: str) -> None:
    with pytest.raises(InvalidInput):
        provider.commit_files(repo, "main", {path: b"x"}, message="m", author=AUTHOR)


class RacingProvider(LocalGitProvider):
    """Injects a concurrent commit between building a commit and moving the branch."""

    def _commit_tree(
        self,
        repo: Path,
        base: str | None,
        files: Mapping[str, bytes],
        *,
        message: str,
        author: Author,
        parent: str | None = None,
    ) -> str:
        sha = super()._commit_tree(repo, base, files, message=message, author=author, parent=parent)
        if parent is not None:
            rival = LocalGitProvider(repo.parent)
            rival.commit_files("demo", "main", {"race.txt": b"won"}, message="r", author=AUTHOR)
        return sha


def test_commit_race_is_a_conflict(provider: LocalGitProvider, repo: str, tmp_path: Path) -> None:
    racing = RacingProvider(tmp_path / "repos")
    with pytest.raises(Conflict):
        racing.commit_files(repo, "main", {"lost.txt": b"x"}, message="m", author=AUTHOR)
    assert provider.read_file(repo, "main", "race.txt") == b"won"
    with pytest.raises(NotFound):
        provider.read_file(repo, "main", "lost.txt")


def test_create_from_source(provider: LocalGitProvider, tmp_path: Path) -> None:
    url = make_source(
        tmp_path / "source", {"README.md": b"source readme\n", "data/a b.csv": b"1\n"}
    )
    provider.create_repository(
        "copy",
        default_branch="main",
        files={"README.md": b"ours\n", ".gitignore": b"*.tmp\n", "data/a b.csv/x": b"no"},
        message="From template",
        author=AUTHOR,
        source_url=url,
    )
    assert provider.list_branches("copy") == ["main"]
    assert provider.read_file("copy", "main", "README.md") == b"source readme\n"
    assert provider.read_file("copy", "main", "data/a b.csv") == b"1\n"
    assert provider.read_file("copy", "main", ".gitignore") == b"*.tmp\n"
    with pytest.raises(NotFound):
        provider.read_file("copy", "main", "old.txt")
    git_dir = provider.repository_path("copy")
    assert git(f"--git-dir={git_dir}", "rev-list", "--all", "--count").strip() == "1"
    assert not (git_dir / "shallow").exists()
    assert "source" not in (git_dir / "config").read_text()
    git(f"--git-dir={git_dir}", "fsck", "--strict")


def test_create_from_empty_source(provider: LocalGitProvider, tmp_path: Path) -> None:
    git("init", "-q", "--bare", str(tmp_path / "empty.git"))
    provider.create_repository(
        "copy",
        default_branch="main",
        files={"README.md": b"r"},
        message="m",
        author=AUTHOR,
        source_url=(tmp_path / "empty.git").as_uri(),
    )
    assert [entry.path for entry in provider.list_tree("copy", "main")] == ["README.md"]


@pytest.mark.parametrize(
    "source",
    [
        "file:///nonexistent/repo.git",
        "ext::sh -c touch% {marker}",
        "--upload-pack=touch {marker}",
        "-c",
        "{local_path}",
        "ssh://localhost/{local_path}",
        "git://127.0.0.1:1/x.git",
        "http://127.0.0.1:1/x.git",
        "file://{local_path}\n",
    ],
)
def test_unreadable_source_leaves_nothing(
    provider: LocalGitProvider, tmp_path: Path, source: str
) -> None:
    local = make_source(tmp_path / "source", {"a.txt": b"a"}).removeprefix("file://")
    marker = tmp_path / "pwned"
    url = source.format(marker=marker, local_path=local)
    with pytest.raises(InvalidInput):
        provider.create_repository(
            "bad", default_branch="main", files={}, message="m", author=AUTHOR, source_url=url
        )
    assert not provider.repository_exists("bad")
    assert not marker.exists()
    assert not (tmp_path / "repos").exists() or list((tmp_path / "repos").iterdir()) == []


def test_source_credentials_are_not_echoed(provider: LocalGitProvider) -> None:
    with pytest.raises(InvalidInput) as caught:
        provider.create_repository(
            "bad",
            default_branch="main",
            files={},
            message="m",
            author=AUTHOR,
            source_url="http://user:s3cr3t@127.0.0.1:1/x.git",
        )
    assert "s3cr3t" not in repr(caught.value.details) + caught.value.message


def test_create_twice_and_invalid_input(provider: LocalGitProvider, repo: str) -> None:
    with pytest.raises(Conflict):
        provider.create_repository(
            repo, default_branch="main", files={}, message="m", author=AUTHOR
        )
    for repo_id, branch, files in (
        ("Bad Id", "main", {}),
        ("ok", "-main", {}),
        ("ok", "main", {"../x": b""}),
    ):
        with pytest.raises(InvalidInput):
            provider.create_repository(
                repo_id, default_branch=branch, files=files, message="m", author=AUTHOR
            )
    assert not provider.repository_exists("ok")


def test_delete_is_idempotent(provider: LocalGitProvider, repo: str, tmp_path: Path) -> None:
    provider.delete_repository(repo)
    provider.delete_repository(repo)
    provider.delete_repository("../etc")
    assert not provider.repository_exists(repo)
    assert list((tmp_path / "repos").iterdir()) == []


def test_scratch_of_dead_processes_is_swept_and_live_ones_kept(
    provider: LocalGitProvider, tmp_path: Path
) -> None:
    """A creation ``kill -9`` interrupted left ``.create-*`` folders that no start
    removed (a review found eight)."""
    root = tmp_path / "repos"
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = root / f".create-{dead.pid}-abc_123"
    mine = root / f".create-{os.getpid()}-def456"
    old = root / ".delete-k2j3h4"  # an older release's name, an hour old
    fresh = root / ".create-zz9x8y"  # an older release's name, just made
    for folder in (gone, mine, old, fresh):
        (folder / "repo.git").mkdir(parents=True)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert provider.sweep() == 2
    assert not gone.exists() and not old.exists()
    assert mine.exists() and fresh.exists()
