"""Bare repositories on the local disk, driven by the ``git`` command line.

Layout: ``<root>/<repo_id>.git`` is a bare repository. Nothing else under
``root`` is a repository; hidden ``.create-*`` and ``.delete-*`` folders are
scratch space of operations in flight.

Every git command runs from an argument list (never a shell) in an isolated
environment (:func:`git_environment`: no system or user configuration, no
prompts) and with a timeout. Commits are written with plumbing against a
temporary index, so no working tree exists and a branch only moves through
``update-ref`` with the expected old value: a commit racing a concurrent push
fails with :class:`~balsam.errors.Conflict` instead of overwriting it.

A repository appears atomically: it is built in a scratch folder and renamed
into place, so a failed ``create_repository`` leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from balsam.children import dying_with_parent, group_dying_with_parent
from balsam.errors import Conflict, InvalidInput, NotFound, ProviderError
from balsam.providers.git.base import Author, GitProvider, TreeEntry
from balsam.providers.git.plumbing import (
    DEFAULT_SOURCE_SCHEMES,
    FILE_MODES,
    REPO_ID,
    check_paths,
    failure,
    git_environment,
    ident_env,
    is_safe_path,
    is_valid_branch_name,
    parse_ls_tree,
    publish,
    redact,
    surviving_files,
    to_tree_entry,
)

#: A commit id as users give it: 7 to 64 hex digits (never an option or a ref name).
_COMMIT = re.compile(r"[0-9a-f]{7,64}")

__all__ = ["LocalGitProvider", "git_environment", "is_safe_path", "is_valid_branch_name", "redact"]

#: Scratch folders of operations in flight: ``.create-<pid>-<random>`` (older
#: releases: ``.create-<random>``).
_SCRATCH = re.compile(r"^\.(?:create|delete)-(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+$")


class LocalGitProvider(GitProvider):
    """Bare repositories under ``root``, one ``<repo_id>.git`` folder each.

    ``timeout`` bounds every local git command, ``clone_timeout`` the clone of
    a ``source_url``. ``source_schemes`` lists the URL schemes a source may
    use; a deployment that lets users name arbitrary sources should drop
    ``file`` (it reads any repository the server process can read).
    """

    def __init__(
        self,
        root: Path,
        *,
        timeout: float = 60.0,
        clone_timeout: float = 300.0,
        source_schemes: frozenset[str] = DEFAULT_SOURCE_SCHEMES,
    ) -> None:
        self._root = Path(root)
        # Made here, once: an operation never makes it again, so a repository folder
        # lost while Balsam runs fails the health check and creations (ProviderError)
        # instead of being replaced silently by an empty one.
        self._root.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        self._clone_timeout = clone_timeout
        self._source_schemes = source_schemes

    # -- running git -----------------------------------------------------

    def _run(
        self,
        args: Sequence[str],
        *,
        git_dir: Path | None = None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        remote: bool = False,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``git [--git-dir=...] args``; a non-zero exit is returned, a
        timeout or a missing git binary raises ProviderError.

        git dies with Balsam (``subprocess.run`` holds this thread until it has
        ended, so the parent-death signal cannot fire early). ``remote``: git
        talks to a remote through a helper (``git-remote-http``) that would
        outlive it, so its whole process group dies with Balsam."""
        prefix = ["git", f"--git-dir={git_dir}"] if git_dir is not None else ["git"]
        command = [*prefix, *args]
        extra = {"GIT_LITERAL_PATHSPECS": "1", **(env or {})}
        try:
            return subprocess.run(
                group_dying_with_parent(command) if remote else dying_with_parent(command),
                input=stdin,
                capture_output=True,
                env=git_environment(extra),
                timeout=timeout or self._timeout,
                check=False,
                start_new_session=remote,
            )
        except subprocess.TimeoutExpired as exc:
            raise ProviderError(f"git {args[0]} timed out", details={"command": args[0]}) from exc
        except OSError as exc:
            raise ProviderError("git could not be started", details={"error": str(exc)}) from exc

    def _git(
        self,
        args: Sequence[str],
        *,
        git_dir: Path | None = None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> bytes:
        """Run git and return its stdout; a non-zero exit raises ProviderError."""
        result = self._run(args, git_dir=git_dir, stdin=stdin, env=env)
        if result.returncode != 0:
            raise failure(args[0], result)
        return result.stdout

    # -- repositories ----------------------------------------------------

    def repository_path(self, repo_id: str) -> Path:
        """Folder of the bare repository (for ``git http-backend``). NotFound if missing."""
        path = self._candidate_path(repo_id)
        if path is None or not (path / "HEAD").is_file():
            raise NotFound(f"repository {repo_id!r} does not exist")
        return path

    def _candidate_path(self, repo_id: str) -> Path | None:
        """Where ``repo_id`` lives, or None if it is not a valid id."""
        return self._root / f"{repo_id}.git" if REPO_ID.match(repo_id) else None

    def repository_exists(self, repo_id: str) -> bool:
        path = self._candidate_path(repo_id)
        return path is not None and (path / "HEAD").is_file()

    def create_repository(
        self,
        repo_id: str,
        *,
        default_branch: str,
        files: Mapping[str, bytes],
        message: str,
        author: Author,
        source_url: str | None = None,
    ) -> None:
        target = self._candidate_path(repo_id)
        if target is None:
            raise InvalidInput(f"invalid repository id {repo_id!r}")
        if not is_valid_branch_name(default_branch):
            raise InvalidInput(f"invalid branch name {default_branch!r}")
        check_paths(files)
        if source_url is not None:
            self._check_source_url(source_url)
        if target.exists():
            raise Conflict(f"repository {repo_id!r} already exists")
        self.check()
        scratch = Path(tempfile.mkdtemp(prefix=f".create-{os.getpid()}-", dir=self._root))
        try:
            built = self._build_repository(
                scratch, default_branch, files, message, author, source_url
            )
            publish(built, target, repo_id)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _build_repository(
        self,
        scratch: Path,
        default_branch: str,
        files: Mapping[str, bytes],
        message: str,
        author: Author,
        source_url: str | None,
    ) -> Path:
        """Build the complete repository inside ``scratch`` and return its path."""
        bare = scratch / "repo.git"
        self._git(
            ["init", "-q", "--bare", "--template=", f"--initial-branch={default_branch}", str(bare)]
        )
        base_tree: str | None = None
        if source_url is not None:
            base_tree = self._import_source(bare, source_url, scratch / "source.git")
        if base_tree is not None:
            source = parse_ls_tree(
                self._git(["ls-tree", "-r", "-t", "-z", "-l", base_tree], git_dir=bare)
            )
            files = surviving_files(files, source)
        sha = self._commit_tree(bare, base_tree, files, message=message, author=author)
        self._update_ref(bare, f"refs/heads/{default_branch}", sha, old="")
        return bare

    def _check_source_url(self, url: str) -> None:
        """InvalidInput unless ``url`` is ``<allowed scheme>://...`` and harmless to git."""
        try:
            scheme = urllib.parse.urlsplit(url).scheme.lower() if "://" in url else ""
        except ValueError:
            scheme = ""
        if (
            url.startswith("-")
            or scheme not in self._source_schemes
            or not url.lower().startswith(f"{scheme}://")
            or any(ch in url for ch in "\x00\r\n")
        ):
            raise InvalidInput(
                "source must be an http, https or file URL", details={"source": redact(url)}
            )

    def _import_source(self, bare: Path, url: str, clone_dir: Path) -> str | None:
        """Copy the tree of the source's default branch into ``bare``; return
        the tree sha (None for an empty source). InvalidInput if unreadable."""
        clone = ["clone", "-q", "--bare", "--depth", "1", "--no-tags", "--single-branch"]
        # fsck: a hostile source must not plant malformed objects; no redirects:
        # a public source must not bounce the clone to an address it may not name.
        source_config = {
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "transfer.fsckObjects",
            "GIT_CONFIG_VALUE_0": "true",
            "GIT_CONFIG_KEY_1": "http.followRedirects",
            "GIT_CONFIG_VALUE_1": "false",
        }
        try:
            result = self._run(
                [*clone, "--template=", "--", url, str(clone_dir)],
                env=source_config,
                timeout=self._clone_timeout,
                remote=True,
            )
        except ProviderError as exc:
            raise InvalidInput("the source repository cannot be read", details=exc.details) from exc
        if result.returncode != 0:
            stderr = redact(result.stderr.decode("utf-8", "replace"))
            raise InvalidInput(
                "the source repository cannot be read",
                details={"source": redact(url), "stderr": stderr},
            )
        found = self._run(["rev-parse", "--verify", "-q", "HEAD^{tree}"], git_dir=clone_dir)
        if found.returncode != 0:
            return None
        tree = found.stdout.decode("ascii").strip()
        objects = self._git(["rev-list", "--objects", tree], git_dir=clone_dir)
        pack_base = bare / "objects" / "pack" / "pack"
        self._git(["pack-objects", "-q", str(pack_base)], git_dir=clone_dir, stdin=objects)
        return tree

    def check(self) -> None:
        if not self._root.is_dir() or not os.access(self._root, os.W_OK | os.X_OK):
            raise ProviderError(
                "The repositories' folder is missing or not writable.",
                details={"path": str(self._root)},
            )

    def sweep(self) -> int:
        """Scratch folders (``.create-<pid>-*``, ``.delete-<pid>-*``) of processes that
        are gone; those of live processes are theirs. Folders of releases before the pid
        was in the name go when an hour old."""
        swept = 0
        for entry in self._root.glob(".*-*"):
            found = _SCRATCH.match(entry.name)
            if found is None or not entry.is_dir():
                continue
            pid = found.group("pid")
            if pid is not None and (int(pid) == os.getpid() or Path(f"/proc/{pid}").exists()):
                continue
            if pid is None and time.time() - entry.stat().st_mtime < 3600:
                continue
            shutil.rmtree(entry, ignore_errors=True)
            swept += 1
        return swept

    def delete_repository(self, repo_id: str) -> None:
        path = self._candidate_path(repo_id)
        if path is None or not path.exists():
            return
        doomed = Path(tempfile.mkdtemp(prefix=f".delete-{os.getpid()}-", dir=self._root))
        try:
            path.rename(doomed / "repo.git")
        except FileNotFoundError:  # deleted concurrently
            pass
        finally:
            shutil.rmtree(doomed, ignore_errors=True)

    # -- branches --------------------------------------------------------

    def list_branches(self, repo_id: str) -> list[str]:
        repo = self.repository_path(repo_id)
        out = self._git(["for-each-ref", "--format=%(refname)", "refs/heads/"], git_dir=repo)
        refs = out.decode("utf-8", "surrogateescape").splitlines()
        return sorted(ref.removeprefix("refs/heads/") for ref in refs)

    def create_branch(self, repo_id: str, name: str, *, from_branch: str) -> None:
        repo = self.repository_path(repo_id)
        if not is_valid_branch_name(name):
            raise InvalidInput(f"invalid branch name {name!r}")
        head = self._head_commit(repo, from_branch)
        if self._ref_value(repo, f"refs/heads/{name}") is not None:
            raise Conflict(f"branch {name!r} already exists")
        self._update_ref(repo, f"refs/heads/{name}", head, old="")

    def delete_branch(self, repo_id: str, name: str) -> None:
        if not self.repository_exists(repo_id) or not is_valid_branch_name(name):
            return
        repo = self.repository_path(repo_id)
        ref = f"refs/heads/{name}"
        if ref == self._default_ref(repo):
            raise Conflict(f"branch {name!r} is the default branch and cannot be deleted")
        if self._ref_value(repo, ref) is not None:
            self._git(["update-ref", "-d", ref], git_dir=repo)

    def _default_ref(self, repo: Path) -> str | None:
        """The ref HEAD points at (``refs/heads/<default branch>``), if any."""
        result = self._run(["symbolic-ref", "-q", "HEAD"], git_dir=repo)
        return result.stdout.decode("utf-8", "surrogateescape").strip() or None

    def _ref_value(self, repo: Path, ref: str) -> str | None:
        """The commit ``ref`` points at, or None if it does not exist."""
        result = self._run(["rev-parse", "--verify", "-q", f"{ref}^{{commit}}"], git_dir=repo)
        return result.stdout.decode("ascii").strip() if result.returncode == 0 else None

    def _head_commit(self, repo: Path, branch: str) -> str:
        """Head commit of ``branch``; NotFound if the branch does not exist."""
        valid = is_valid_branch_name(branch)
        sha = self._ref_value(repo, f"refs/heads/{branch}") if valid else None
        if sha is None:
            raise NotFound(f"branch {branch!r} does not exist")
        return sha

    def _update_ref(self, repo: Path, ref: str, new: str, *, old: str) -> None:
        """Move ``ref`` from ``old`` ("" = must not exist) to ``new``; Conflict
        if the ref changed meanwhile (a concurrent push or branch creation)."""
        result = self._run(["update-ref", "--no-deref", ref, new, old], git_dir=repo)
        if result.returncode == 0:
            return
        current = self._ref_value(repo, ref) or ""
        if current != old or b"cannot lock ref" in result.stderr:
            raise Conflict(
                f"{ref.removeprefix('refs/heads/')!r} was changed concurrently",
                details={"stderr": result.stderr.decode("utf-8", "replace")},
            )
        raise failure("update-ref", result)

    # -- reading ---------------------------------------------------------

    def list_tree(self, repo_id: str, branch: str) -> list[TreeEntry]:
        repo = self.repository_path(repo_id)
        head = self._head_commit(repo, branch)
        raw = parse_ls_tree(self._git(["ls-tree", "-r", "-t", "-z", "-l", head], git_dir=repo))
        entries = [entry for entry in map(to_tree_entry, raw) if entry is not None]
        return sorted(entries, key=lambda entry: entry.path)

    def list_folder(self, repo_id: str, branch: str, folder: str) -> list[TreeEntry]:
        repo = self.repository_path(repo_id)
        if folder and not is_safe_path(folder):
            raise NotFound(f"no folder at {folder!r}")
        head = self._head_commit(repo, branch)
        where = ["--", f"{folder}/"] if folder else []
        raw = parse_ls_tree(
            self._git(["ls-tree", "-z", "-l", "--full-tree", head, *where], git_dir=repo)
        )
        entries = [entry for entry in map(to_tree_entry, raw) if entry is not None]
        if folder and not entries:  # git keeps no empty folder: it is not one
            raise NotFound(f"no folder at {folder!r}")
        return sorted(entries, key=lambda entry: entry.path)

    def read_file(self, repo_id: str, branch: str, path: str) -> bytes:
        repo, sha, _size = self._file_blob(repo_id, branch, path)
        return self._git(["cat-file", "blob", sha], git_dir=repo)

    def open_file(self, repo_id: str, branch: str, path: str) -> tuple[int, Iterator[bytes]]:
        repo, sha, size = self._file_blob(repo_id, branch, path)
        return size, stream_blob(repo, sha)

    def resolve_commit(self, repo_id: str, branch: str, commit: str | None = None) -> str:
        repo = self.repository_path(repo_id)
        head = self._head_commit(repo, branch)
        if commit is None:
            return head
        if not _COMMIT.fullmatch(commit):
            raise NotFound(f"no commit {commit[:80]!r} on branch {branch!r}")
        full = self._ref_value(repo, commit)
        if full is None:
            raise NotFound(f"no commit {commit!r} on branch {branch!r}")
        on_branch = self._run(["merge-base", "--is-ancestor", full, head], git_dir=repo)
        if on_branch.returncode != 0:
            raise NotFound(f"no commit {commit!r} on branch {branch!r}")
        return full

    def read_file_at(self, repo_id: str, commit: str, path: str) -> bytes:
        repo = self.repository_path(repo_id)
        if not _COMMIT.fullmatch(commit):
            raise NotFound(f"no commit {commit[:80]!r}")
        _repo, sha, _size = self._blob_in(repo, commit, path)
        return self._git(["cat-file", "blob", sha], git_dir=repo)

    def archive(self, repo_id: str, commit: str) -> bytes:
        repo = self.repository_path(repo_id)
        if not _COMMIT.fullmatch(commit):
            raise NotFound(f"no commit {commit[:80]!r}")
        return self._git(["archive", "--format=tar", commit], git_dir=repo)

    def _file_blob(self, repo_id: str, branch: str, path: str) -> tuple[Path, str, int]:
        """The repository, blob id and size of the file at ``path`` (NotFound else)."""
        repo = self.repository_path(repo_id)
        return self._blob_in(repo, self._head_commit(repo, branch), path)

    def _blob_in(self, repo: Path, head: str, path: str) -> tuple[Path, str, int]:
        """The repository, blob id and size of the file at ``path`` in commit ``head``."""
        if not is_safe_path(path):
            raise NotFound(f"no file at {path!r}")
        listing = self._git(["ls-tree", "-z", "-l", "--full-tree", head, "--", path], git_dir=repo)
        match = [entry for entry in parse_ls_tree(listing) if entry.path == path]
        if not match or match[0].kind != "blob" or match[0].mode not in FILE_MODES:
            raise NotFound(f"no file at {path!r}")
        return repo, match[0].sha, int(match[0].size or 0)

    # -- writing ---------------------------------------------------------

    def commit_files(
        self,
        repo_id: str,
        branch: str,
        files: Mapping[str, bytes],
        *,
        message: str,
        author: Author,
    ) -> str:
        repo = self.repository_path(repo_id)
        check_paths(files)
        parent = self._head_commit(repo, branch)
        sha = self._commit_tree(repo, parent, files, message=message, author=author, parent=parent)
        self._update_ref(repo, f"refs/heads/{branch}", sha, old=parent)
        return sha

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
        """Write a commit whose tree is ``base`` (a tree-ish, or empty) with
        ``files`` added or replaced; no ref moves. Returns the commit sha."""
        with tempfile.TemporaryDirectory(prefix=".commit-", dir=repo.parent) as scratch:
            index_env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            if base is not None:
                self._git(["read-tree", base], git_dir=repo, env=index_env)
            info = self._index_info(repo, files, Path(scratch))
            self._git(
                ["update-index", "--add", "--replace", "-z", "--index-info"],
                git_dir=repo,
                stdin=info,
                env=index_env,
            )
            tree = self._git(["write-tree"], git_dir=repo, env=index_env).decode().strip()
        parents = ["-p", parent] if parent is not None else []
        commit = self._git(
            ["commit-tree", tree, *parents],
            git_dir=repo,
            stdin=message.encode("utf-8"),
            env=ident_env(author),
        )
        return commit.decode("ascii").strip()

    def _index_info(self, repo: Path, files: Mapping[str, bytes], scratch: Path) -> bytes:
        """Write ``files`` as blobs (one ``hash-object`` for all) and return
        ``update-index -z --index-info`` input for them."""
        paths = list(files)
        blob_files = []
        for number, path in enumerate(paths):
            blob_file = scratch / f"blob-{number}"
            blob_file.write_bytes(files[path])
            blob_files.append(str(blob_file))
        listing = "".join(f"{name}\n" for name in blob_files).encode()
        out = self._git(
            ["hash-object", "-w", "--no-filters", "--stdin-paths"], git_dir=repo, stdin=listing
        )
        shas = out.decode("ascii").split()
        return b"".join(
            f"100644 {sha}\t".encode() + path.encode("utf-8", "surrogateescape") + b"\x00"
            for path, sha in zip(paths, shas, strict=True)
        )


def stream_blob(git_dir: Path, sha: str, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """The blob's content in chunks, never all in memory; the git process ends
    when the iterator is closed or garbage-collected."""
    # No parent-death signal here: a thread pool steps through this generator, so
    # the thread that forks git may end while another still reads (the signal
    # would cut the file short). git writes into a pipe only Balsam reads: when
    # Balsam dies, its next write fails and it exits.
    process = subprocess.Popen(
        ["git", f"--git-dir={git_dir}", "cat-file", "blob", sha],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=git_environment(),
    )
    assert process.stdout is not None
    try:
        while chunk := process.stdout.read(chunk_size):
            yield chunk
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()
        process.wait()
