"""``balsam library``: register, list, sync and remove knowledge libraries.

The commands work on the database and the mirrors directly (no running
server needed) as the administrator ``cli:<OS user>``; ``sync`` fetches in
the foreground and exits 1 if a library failed to sync.
"""

from __future__ import annotations

from pathlib import Path

import click

from balsam.cli.admin import cli_actor, data_dir_option, database_context, reported_errors
from balsam.cli.settings_cmd import load_settings
from balsam.db.models import KnowledgeLibrary
from balsam.domain.library.schemas import LibraryCreate
from balsam.domain.library.service import LibraryService


@click.group()
def library() -> None:
    """Manage knowledge libraries."""


@library.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--branch", default=None, help="Branch to serve (default: the repository's own).")
@click.option("--description", default="", help="What the library holds.")
@click.option("--friendly-url", default=None, help="An http(s) page to browse the repository.")
@click.option("--no-sync", is_flag=True, help="Register only; the server syncs it later.")
@data_dir_option
def add(
    name: str,
    url: str,
    branch: str | None,
    description: str,
    friendly_url: str | None,
    no_sync: bool,
    data_dir: Path | None,
) -> None:
    """Register the git repository URL as a library called NAME, then sync it."""
    with reported_errors(), database_context(load_settings(data_dir=data_dir)) as ctx:
        service = LibraryService(ctx)
        created = service.create(
            cli_actor(),
            LibraryCreate(
                name=name,
                description=description,
                repository_url=url,
                branch=branch,
                repository_friendly_url=friendly_url,
            ),
        )
        click.echo(f"registered {created.id}")
        if not no_sync:
            _report(service.sync(created.id, actor=cli_actor()))


@library.command("list")
@data_dir_option
def list_libraries(data_dir: Path | None) -> None:
    """List every library with its sync state."""
    with database_context(load_settings(data_dir=data_dir)) as ctx:
        libraries = LibraryService(ctx).list()
    rows = [("ID", "STATUS", "COMMIT", "BRANCH", "URL")]
    rows += [
        (
            lib.id,
            lib.sync_status,
            (lib.last_synced_commit or "-")[:12],
            lib.branch or "(default)",
            lib.repository_url,
        )
        for lib in libraries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[4]]))


@library.command("sync")
@click.argument("library_ids", nargs=-1)
@data_dir_option
def sync(library_ids: tuple[str, ...], data_dir: Path | None) -> None:
    """Fetch the given libraries now (all of them when none are named)."""
    with reported_errors(), database_context(load_settings(data_dir=data_dir)) as ctx:
        service = LibraryService(ctx)
        ids = library_ids or tuple(lib.id for lib in service.list())
        outcomes = [service.sync(library_id, actor=cli_actor()) for library_id in ids]
    for outcome in outcomes:
        _report(outcome)
    if any(o.sync_status == "failed" for o in outcomes):
        raise click.exceptions.Exit(1)


@library.command("remove")
@click.argument("library_id")
@data_dir_option
def remove(library_id: str, data_dir: Path | None) -> None:
    """Remove a library, its mirror and its search index."""
    with reported_errors(), database_context(load_settings(data_dir=data_dir)) as ctx:
        LibraryService(ctx).delete(cli_actor(), library_id)
    click.echo(f"removed {library_id}")


def _report(lib: KnowledgeLibrary) -> None:
    if lib.sync_status == "ok":
        click.echo(f"synced {lib.id} at {lib.last_synced_commit}")
    else:
        served = lib.last_synced_commit or "nothing"
        click.echo(f"sync of {lib.id} failed (serving {served}): {lib.sync_error}", err=True)
