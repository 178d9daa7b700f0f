"""The git provider contract.

A git provider owns project repositories. Repository ids are Balsam project
ids (``[a-z0-9-]``); branch names have already been validated by the caller
(:func:`balsam.domain.projects.naming.validate_branch_name`). Paths inside a
repository are POSIX paths relative to its root, never absolute and never
containing ``..``; the provider must still refuse such paths itself.

========================  ==========================
create                    undo
========================  ==========================
``create_repository``     ``delete_repository``
``create_branch``         ``delete_branch``
========================  ==========================

Inverses are idempotent. Backend failures raise
:class:`balsam.errors.ProviderError`; a missing repository, branch or path
raises :class:`balsam.errors.NotFound`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Author:
    """Who a commit is authored by."""

    name: str
    email: str


@dataclass(frozen=True)
class TreeEntry:
    """One file or folder of a repository tree."""

    path: str
    name: str
    type: Literal["File", "Folder"]
    size: int | None = None


class GitProvider(abc.ABC):
    """Project repositories."""

    @abc.abstractmethod
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
        """Create a repository with one initial commit on ``default_branch``.

        The commit holds ``files``; with ``source_url`` it also holds the files
        of that repository's default branch (its history is not kept), and
        ``files`` are added on top only where the source lacks them. Raises
        InvalidInput if the source cannot be read (the repository is then not
        created)."""

    @abc.abstractmethod
    def delete_repository(self, repo_id: str) -> None:
        """Delete the repository. Idempotent."""

    @abc.abstractmethod
    def repository_exists(self, repo_id: str) -> bool:
        """Whether the repository exists."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise ProviderError unless repositories can be served and created (for the
        health check): a probe that cannot fail would hide a lost repository folder."""

    def sweep(self) -> int:
        """Remove what operations of dead processes left behind (scratch space of a
        creation ``kill -9`` interrupted); how many. Safe while operations run."""
        return 0

    @abc.abstractmethod
    def list_branches(self, repo_id: str) -> list[str]:
        """Branch names of the repository."""

    @abc.abstractmethod
    def create_branch(self, repo_id: str, name: str, *, from_branch: str) -> None:
        """Create ``name`` at the head of ``from_branch``. Conflict if it exists."""

    @abc.abstractmethod
    def delete_branch(self, repo_id: str, name: str) -> None:
        """Delete a branch. Idempotent."""

    @abc.abstractmethod
    def list_tree(self, repo_id: str, branch: str) -> list[TreeEntry]:
        """Every file and folder on the branch head, recursively, sorted by path."""

    @abc.abstractmethod
    def list_folder(self, repo_id: str, branch: str, folder: str) -> list[TreeEntry]:
        """The files and folders directly in ``folder`` (``""``: the top) on the
        branch head, sorted by path; NotFound unless it is a folder there."""

    @abc.abstractmethod
    def open_file(self, repo_id: str, branch: str, path: str) -> tuple[int, Iterator[bytes]]:
        """The size of the file at ``path`` and its content in chunks, read as they
        are consumed (never all in memory). NotFound as :meth:`read_file`."""

    @abc.abstractmethod
    def read_file(self, repo_id: str, branch: str, path: str) -> bytes:
        """Content of the file at ``path`` on the branch head. NotFound if the
        path is not a file in that tree."""

    @abc.abstractmethod
    def resolve_commit(self, repo_id: str, branch: str, commit: str | None = None) -> str:
        """The full id of ``commit`` (the branch head when None). NotFound unless the
        branch exists and ``commit`` (hex, 7 to 64 digits) is on it (the head or an
        ancestor)."""

    @abc.abstractmethod
    def read_file_at(self, repo_id: str, commit: str, path: str) -> bytes:
        """Content of the file at ``path`` in ``commit`` (a full id from
        :meth:`resolve_commit`). NotFound if the path is not a file there."""

    @abc.abstractmethod
    def archive(self, repo_id: str, commit: str) -> bytes:
        """The tree of ``commit`` as a tar archive (``git archive``)."""

    @abc.abstractmethod
    def commit_files(
        self,
        repo_id: str,
        branch: str,
        files: Mapping[str, bytes],
        *,
        message: str,
        author: Author,
    ) -> str:
        """Add or replace ``files`` on the branch in one commit; return its sha."""
