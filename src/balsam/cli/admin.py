"""``balsam admin``: manage users directly in the database, with or without a running server.

The commands act as the administrator ``cli:<OS user>`` (a name no account can
have), so the identity service applies its usual rules and audits every change.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, cast

import click
from pydantic import ValidationError

from balsam.cli.settings_cmd import load_settings
from balsam.context import AppContext
from balsam.db.models import User
from balsam.domain.data.connections.service import ConnectionService
from balsam.domain.identity.schemas import UserCreate, UserUpdate
from balsam.domain.identity.service import Actor, IdentityService
from balsam.errors import BalsamError
from balsam.providers.bundle import Providers
from balsam.settings import Settings
from balsam.wiring import build_context

PASSWORD_ENV = "BALSAM_NEW_USER_PASSWORD"  # noqa: S105 (the variable's name, not a secret)


class _DatabaseOnly:
    """Stands in for :class:`Providers` in a context built for database work only."""

    def __getattr__(self, name: str) -> NoReturn:
        raise RuntimeError(f"providers.{name} is unavailable: this context has the database only")


@contextmanager
def database_context(settings: Settings) -> Iterator[AppContext]:
    """The migrated database and audit log, without connecting to git or storage.
    A new data directory is made private as by ``balsam up``; a new SQLite database is
    announced on stderr (a command run from the wrong folder would otherwise fill
    one nobody uses)."""
    # What it creates is private, as with ``balsam up`` (the mask is put back: the
    # command may run inside a longer-lived process, e.g. a test run).
    mask = os.umask(0o077)
    try:
        with _private_context(settings) as ctx:
            yield ctx
    finally:
        os.umask(mask)


@contextmanager
def _private_context(settings: Settings) -> Iterator[AppContext]:
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.resolved_database_url
    database = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    if database is not None and not database.exists():
        click.echo(
            f"note: no Balsam database at {database} yet: creating one. Give the data "
            "directory of your installation (--data-dir or BALSAM_DATA_DIR) to use its.",
            err=True,
        )
    ctx = build_context(settings, providers=cast(Providers, _DatabaseOnly()))
    try:
        yield ctx
    finally:
        ctx.engine.dispose()


@contextmanager
def reported_errors() -> Iterator[None]:
    """Show a service's refusal as a one-line message (exit code 1), not a traceback."""
    try:
        yield
    except BalsamError as exc:
        raise click.ClickException(exc.message) from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.ClickException(problems) from exc


def data_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data directory (default: BALSAM_DATA_DIR, else .balsam).",
    )(func)


def cli_actor() -> Actor:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(user_id=0, username=f"cli:{who}"[:64], is_admin=True, request_id="cli")


@click.group()
def admin() -> None:
    """Manage user accounts."""


@admin.command("create-user")
@click.argument("username")
@click.option("--admin", "is_admin", is_flag=True, help="Make the user an administrator.")
@click.option("--email", default="", help="E-mail address.")
@click.option("--display-name", default="", help="Name shown in the interface.")
@data_dir_option
def create_user(
    username: str, is_admin: bool, email: str, display_name: str, data_dir: Path | None
) -> None:
    """Create a user. The password is asked for, or read from BALSAM_NEW_USER_PASSWORD."""
    settings = load_settings(data_dir=data_dir)
    password = os.environ.get(PASSWORD_ENV) or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    with reported_errors(), database_context(settings) as ctx:
        data = UserCreate(
            username=username,
            password=password,
            email=email,
            display_name=display_name,
            is_admin=is_admin,
        )
        user = IdentityService(ctx).create_user(cli_actor(), data)
    click.echo(f"created {'admin' if user.is_admin else 'user'} {user.username}")


def _set_active(data_dir: Path | None, username: str, active: bool) -> None:
    with reported_errors(), database_context(load_settings(data_dir=data_dir)) as ctx:
        IdentityService(ctx).update_user(cli_actor(), username, UserUpdate(is_active=active))
    click.echo(f"{'activated' if active else 'deactivated'} {username}")


@admin.command()
@click.argument("username")
@data_dir_option
def deactivate(username: str, data_dir: Path | None) -> None:
    """Deactivate a user: logins, sessions and tokens stop working."""
    _set_active(data_dir, username, False)


@admin.command()
@click.argument("username")
@data_dir_option
def activate(username: str, data_dir: Path | None) -> None:
    """Re-activate a deactivated user."""
    _set_active(data_dir, username, True)


@admin.command("list-users")
@data_dir_option
def list_users(data_dir: Path | None) -> None:
    """List every user."""
    with database_context(load_settings(data_dir=data_dir)) as ctx:
        users = list(_all_users(IdentityService(ctx)))
    rows = [("USERNAME", "ADMIN", "ACTIVE", "EMAIL", "DISPLAY NAME")]
    rows += [
        (u.username, _yes(u.is_admin), _yes(u.is_active), u.email or "-", u.display_name)
        for u in users
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo(
            "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4]])
        )


def _all_users(service: IdentityService, page: int = 500) -> Iterator[User]:
    offset = 0
    while True:
        users, total = service.list_users(limit=page, offset=offset)
        yield from users
        offset += len(users)
        if not users or offset >= total:
            return


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@admin.command("reseal-connections")
@data_dir_option
def reseal_connections(data_dir: Path | None) -> None:
    """Seal every data connection's secret again with the current key
    (connections.key, or the data directory's key file), after a key rotation: the
    old key must still be listed in connections.previous_keys while this runs."""
    with reported_errors(), database_context(load_settings(data_dir=data_dir)) as ctx:
        count = ConnectionService(ctx).reseal()
    click.echo(f"resealed {count} connection secret(s)")
