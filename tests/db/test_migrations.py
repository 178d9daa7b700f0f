"""The shipped Alembic migrations, on whichever backend the session selected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from balsam.db.engine import make_engine
from balsam.db.migrate import alembic_config, upgrade
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
