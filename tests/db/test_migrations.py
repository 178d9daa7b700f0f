"""The shipped Alembic migrations, on whichever backend the session selected."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from balsam.db.engine import make_engine
from balsam.db.migrate import (
    MigrationFailed,
    alembic_config,
    is_at_head,
    upgrade,
    upgrade_in_child,
)
from balsam.db.migrate import head_revision as head_revision_of_files
from balsam.db.models import Base


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_database_url)
    yield engine
    engine.dispose()


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_creates_every_table(engine: Engine) -> None:
    upgrade(engine.url.render_as_string(hide_password=False))

    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert current_revision(engine) == head_revision(str(engine.url))


def test_upgrade_is_idempotent(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    upgrade(url)
    before = current_revision(engine)

    upgrade(url)

    assert current_revision(engine) == before == head_revision(url)


def test_models_match_migrations(engine: Engine) -> None:
    """Fails when a model changed without a migration: write one with
    ``alembic revision --autogenerate`` (see src/balsam/db/migrations)."""
    upgrade(engine.url.render_as_string(hide_password=False))

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_the_head_read_from_the_files_is_alembics(fresh_database_url: str) -> None:
    assert head_revision_of_files() == head_revision(fresh_database_url)


def test_a_database_at_the_head_is_left_without_loading_alembic(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    assert not is_at_head(url)  # empty: Alembic decides
    upgrade(url)
    assert is_at_head(url)

    check = (
        "import sys; from balsam.db.migrate import upgrade; upgrade(sys.stdin.read()); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], input=url, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_a_database_behind_the_head_is_migrated_in_a_child(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    upgrade(url, "0011")
    assert current_revision(engine) == "0011"

    upgrade_in_child(url)

    assert current_revision(engine) == head_revision(url)
    assert "alembic" not in subprocess.run(  # the test process itself imported it; not a child
        [sys.executable, "-c", "import sys, balsam.db.migrate; print(list(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_a_migration_that_fails_in_the_child_says_why(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()  # a folder where the SQLite file should be
    with pytest.raises(MigrationFailed, match="unable to open database file"):
        upgrade_in_child(f"sqlite:///{tmp_path / 'db'}")
