"""What a query on a PostgreSQL connection needs and returns: plain values, so that
the services can name them without loading psycopg and pyarrow (some 60 MB of the
control plane's memory) before the first query (see :mod:`.query`)."""

from __future__ import annotations

from dataclasses import dataclass

from balsam.errors import BadRequest


@dataclass(frozen=True)
class PostgresTarget:
    """Where to connect; ``repr`` never shows the password."""

    host: str
    port: int
    database: str
    user: str
    password: str

    def __repr__(self) -> str:
        return f"PostgresTarget({self.user}@{self.host}:{self.port}/{self.database})"


@dataclass(frozen=True)
class QueryLimits:
    timeout_seconds: float = 300
    max_rows: int = 10_000_000
    max_bytes: int = 2 * 1024**3
    batch_rows: int = 10_000


@dataclass(frozen=True)
class QueryResult:
    rows: int
    bytes: int
    columns: list[str]


class QueryFailed(BadRequest):
    """PostgreSQL refused or failed the query (syntax, permissions, a write in a
    read-only transaction, the statement timeout); the message is PostgreSQL's."""

    reason = "query-failed"
