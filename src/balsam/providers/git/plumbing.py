"""Plumbing shared by the local git provider and the library mirrors: the
isolated git environment, name and path rules, ``ls-tree`` parsing, and
turning failed git commands into :class:`~balsam.errors.ProviderError`."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from balsam.errors import Conflict, InvalidInput, ProviderError
from balsam.providers.git.base import Author, TreeEntry

#: Environment variables a git child process may inherit (network settings only).
INHERITED_ENV = (
    "PATH",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
REPO_ID = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
URL_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s]*@")
FILE_MODES = frozenset({"100644", "100755"})
DEFAULT_SOURCE_SCHEMES = frozenset({"http", "https", "file"})


def git_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a git child process, free of user and system influence.

    Only ``PATH`` and proxy/TLS settings are inherited; system and global
    configuration files are ignored, ``HOME`` points nowhere (so no
    ``.netrc`` or XDG files are read) and credential prompts fail instead of
    blocking. ``extra`` is applied last.
    """
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": "http:https:file",
            "HOME": os.devnull,
            "LC_ALL": "C",
        }
    )
    env.update(extra or {})
    return env


def redact(text: str) -> str:
    """``text`` with the user-info part of any URL (credentials) masked."""
    return URL_USERINFO.sub(r"\1***@", text)


def is_valid_branch_name(name: str) -> bool:
    """Whether ``refs/heads/<name>`` is a well-formed ref and not option-like
    (the rules of ``git check-ref-format --branch``)."""
    if not name or name.startswith(("-", "/", ".")) or name.endswith(("/", ".", ".lock")):
        return False
    if name == "@" or ".." in name or "//" in name or "@{" in name or "/." in name:
        return False
    return not BAD_REF_CHARS.search(name) and ".lock/" not in name


def is_safe_path(path: str) -> bool:
    """Whether ``path`` is a plain relative POSIX path inside a repository:
    no absolute path, empty, ``.``, ``..`` or ``.git`` segment, backslash or NUL."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        return False
    return all(seg not in ("", ".", "..") and seg.lower() != ".git" for seg in path.split("/"))


@dataclass(frozen=True)
class RawEntry:
    """One record of ``git ls-tree -l -z``."""

    mode: str
    kind: str
    sha: str
    size: int | None
    path: str


def parse_ls_tree(output: bytes) -> list[RawEntry]:
    """Parse NUL-terminated ``ls-tree -l -z`` output; paths are not quoted."""
    entries = []
    for record in output.split(b"\x00"):
        if not record:
            continue
        meta, raw_path = record.split(b"\t", 1)
        mode, kind, sha, size = meta.decode("ascii").split()
        path = raw_path.decode("utf-8", "surrogateescape")
        entries.append(RawEntry(mode, kind, sha, None if size == "-" else int(size), path))
    return entries


def to_tree_entry(raw: RawEntry) -> TreeEntry | None:
    """A public entry for a regular file or a folder; None for symlinks and
    submodules, which Balsam neither lists nor reads."""
    name = raw.path.rsplit("/", 1)[-1]
    if raw.kind == "tree":
        return TreeEntry(path=raw.path, name=name, type="Folder")
    if raw.kind == "blob" and raw.mode in FILE_MODES:
        return TreeEntry(path=raw.path, name=name, type="File", size=raw.size)
    return None


def ident_env(author: Author) -> dict[str, str]:
    """Author and committer of a commit; characters git cannot store are dropped."""
    name = re.sub(r"[<>\x00-\x1f]", "", author.name).strip() or "Balsam"
    email = re.sub(r"[<>\x00-\x20]", "", author.email)
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def surviving_files(files: Mapping[str, bytes], source: list[RawEntry]) -> dict[str, bytes]:
    """The ``files`` a source tree lacks: neither the path itself nor a file
    at one of its parent folders exists in ``source``."""
    taken = {entry.path for entry in source}
    source_files = {entry.path for entry in source if entry.kind != "tree"}
    kept = {}
    for path, content in files.items():
        parts = path.split("/")
        parents = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if path not in taken and not parents & source_files:
            kept[path] = content
    return kept


def check_paths(files: Mapping[str, bytes]) -> None:
    """InvalidInput unless every path is a safe relative file path."""
    bad = [path for path in files if not is_safe_path(path)]
    if bad:
        raise InvalidInput("invalid file path", details={"paths": bad})


def publish(built: Path, target: Path, repo_id: str) -> None:
    """Rename the finished repository into place; Conflict if one appeared meanwhile."""
    try:
        built.rename(target)
    except OSError as exc:
        raise Conflict(f"repository {repo_id!r} already exists") from exc


def failure(command: str, result: subprocess.CompletedProcess[bytes]) -> ProviderError:
    """A ProviderError describing a failed git command, credentials masked."""
    stderr = redact(result.stderr.decode("utf-8", "replace").strip())
    return ProviderError(
        f"git {command} failed",
        details={"command": command, "returncode": result.returncode, "stderr": stderr},
    )
