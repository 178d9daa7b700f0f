"""Ids, bucket names and branch names (architecture §3).

* A project id is a lower-case ``[a-z0-9-]`` slug of the display name, with
  Unicode transliterated (``Årsstatistik för Åland`` → ``arsstatistik-for-aland``),
  at most :data:`MAX_ID` characters so that derived names (``proj-<id>``
  namespaces, buckets) stay within S3's and Kubernetes' 63-character limits.
* The bucket of a project is its id (ids already satisfy S3's rules).
* Branch names follow git's ref rules and must be one URL path segment.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import unicodedata

from unidecode import unidecode

from balsam.errors import N_, InvalidInput, NotFound

MAX_ID = 40
MAX_NAME = 200
_NON_SLUG = re.compile(r"[^a-z0-9]+")
_IP_LIKE = re.compile(r"^\d+(\.\d+){3}$")
_BRANCH_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def normalize_name(name: str) -> str:
    """Display name as stored: NFC, trimmed, inner whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", name).split())


def name_key(name: str) -> str:
    """What makes two display names duplicates: case- and space-insensitive."""
    return normalize_name(name).casefold()


def validate_display_name(name: str) -> str:
    clean = normalize_name(name)
    if not clean:
        raise InvalidInput(N_("The name must not be empty."), details={"field": "name"})
    if len(clean) > MAX_NAME:
        raise InvalidInput(
            N_("The name must be at most %(max)s characters."),
            params={"max": MAX_NAME},
            details={"field": "name"},
        )
    if any(unicodedata.category(c) == "Cc" for c in clean):
        raise InvalidInput(
            N_("The name must not contain control characters."), details={"field": "name"}
        )
    if not slug_base(clean):
        raise InvalidInput(
            N_("The name must contain at least one letter or digit."), details={"field": "name"}
        )
    return clean


def slug_base(name: str) -> str:
    """Transliterated slug of ``name`` (may be empty if nothing is left)."""
    ascii_text = unidecode(unicodedata.normalize("NFKC", name)).lower()
    slug = _NON_SLUG.sub("-", ascii_text).strip("-")
    return slug[:MAX_ID].rstrip("-")


def project_id_candidates(name: str) -> list[str]:
    """The plain slug first, then the slug with short random suffixes."""
    base = slug_base(name)
    if len(base) < 3:
        base = f"project-{base}".rstrip("-")
    stem = base[: MAX_ID - 5].rstrip("-")
    return [base] + [f"{stem}-{secrets.token_hex(2)}" for _ in range(8)]


def is_valid_bucket(name: str) -> bool:
    return (
        3 <= len(name) <= 63
        and re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", name) is not None
        and ".." not in name
        and not _IP_LIKE.match(name)
    )


def validate_branch_name(name: str) -> str:
    """Git-ref-safe, one URL path segment; InvalidInput otherwise."""
    if (
        not _BRANCH_OK.fullmatch(name)
        or ".." in name
        or name.endswith((".", ".lock"))
        or name in {"HEAD", "@"}
    ):
        raise InvalidInput(
            N_(
                "A branch name is 1-100 characters of letters, digits, '.', '_' and '-', "
                "starts with a letter or digit, has no '..' and does not end in '.' or '.lock'."
            ),
            details={"field": "branch"},
        )
    if name in RESERVED_BRANCHES:
        # A branch's data is <branch>/ in the bucket: these folders are Balsam's own.
        raise InvalidInput(
            N_("'%(name)s' is reserved: the bucket's %(name)s/ folder is Balsam's."),
            params={"name": name},
            details={"field": "branch"},
        )
    return name


#: Folders at the top of every bucket that are not a branch's: recorded runs' results
#: (``runs/<id>/``) and temporary data (``tmp/``).
RESERVED_BRANCHES = frozenset({"runs", "tmp"})


def encode_file_id(path: str) -> str:
    """A file id: the path in URL-safe base64 without padding (one path segment)."""
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def decode_file_id(file_id: str) -> str:
    """The repository path a file id names; NotFound unless it is a safe relative path."""
    try:
        raw = base64.urlsafe_b64decode(file_id + "=" * (-len(file_id) % 4))
        path = raw.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise NotFound("No such file.") from None
    if encode_file_id(path) != file_id or not is_safe_relative_path(path):
        raise NotFound("No such file.")
    return path


def is_safe_relative_path(path: str) -> bool:
    parts = path.split("/")
    return (
        bool(path)
        and "\x00" not in path
        and "\\" not in path
        and not path.startswith("/")
        and all(p not in {"", ".", ".."} for p in parts)
    )
