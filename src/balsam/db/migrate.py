"""Apply the Alembic migrations shipped inside the package.

Alembic (with Mako) costs the long-running control plane some 16 MB it would keep
for nothing after start-up, so it is loaded only when there is something to do: a
database already at the newest revision is recognised by reading its
``alembic_version`` row and the revision numbers written in the migration files.
``balsam up`` applies migrations in a child process (:func:`upgrade_in_child`) so
that its own process never loads Alembic at all.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from balsam.db.engine import make_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(?:\"([^\"]*)\"|None)\s*$", re.M)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (idempotent); Alembic is not
    loaded when the database is at the head revision already."""
    if revision == "head" and is_at_head(url):
        return
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def upgrade_in_child(url: str) -> None:
    """:func:`upgrade` to the head in a child process, the URL (which may hold a
    password) on its standard input, never in its arguments. Raises
    :class:`MigrationFailed` with the child's last line of output when it fails."""
    if is_at_head(url):
        return
    done = subprocess.run(
        [sys.executable, "-m", "balsam.db.migrate"],
        input=url,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        raise MigrationFailed(lines[-1])


class MigrationFailed(RuntimeError):
    """The database could not be migrated; the message is the migration's error."""


def head_revision() -> str | None:
    """The newest revision among the shipped migrations, read from their files'
    ``revision``/``down_revision`` lines; None unless there is exactly one head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for kind, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            (revisions if kind == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def is_at_head(url: str) -> bool:
    """Whether the database at ``url`` is at :func:`head_revision` (False when it
    cannot be read: no database yet, no version table; Alembic then decides)."""
    head = head_revision()
    if head is None:
        return False
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return list(rows) == [head]
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def _main() -> int:  # pragma: no cover - run by upgrade_in_child, in a child
    try:
        upgrade(sys.stdin.read().strip())
    except Exception as exc:
        cause = getattr(exc, "orig", None) or exc
        lines = str(cause).strip().splitlines() or [""]
        print(f"{type(cause).__name__}: {lines[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
