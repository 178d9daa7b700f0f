"""``balsam login`` and ``balsam data``: a project's data from a terminal or a script,
through Balsam's data API (docs/data.md).

``balsam login`` asks for the user name and password once, mints a personal API token
(``POST /api/v1/users/me/tokens``, HTTP Basic) and keeps it with Balsam's address in
``~/.config/balsam/credentials.json`` (0600; ``BALSAM_CREDENTIALS`` names another
file); the password is kept nowhere. ``BALSAM_URL`` and ``BALSAM_TOKEN`` in the
environment take precedence over the file. Remote paths are ``PROJECT:PATH``
(``my-project:main/in/survey.csv``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx

_TIMEOUT = httpx.Timeout(30, read=600)


def _credentials_file() -> Path:
    named = os.environ.get("BALSAM_CREDENTIALS")
    if named:
        return Path(named)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "balsam" / "credentials.json"


def _saved() -> dict[str, str]:
    try:
        data = json.loads(_credentials_file().read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def client_for() -> httpx.Client:
    """An API client with the saved (or environment's) address and token."""
    saved = _saved()
    url = os.environ.get("BALSAM_URL") or saved.get("url")
    token = os.environ.get("BALSAM_TOKEN") or saved.get("token")
    if not url or not token:
        raise click.ClickException("Not logged in: run `balsam login` (or set BALSAM_TOKEN).")
    return httpx.Client(
        base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=_TIMEOUT
    )


def fail(answer: httpx.Response) -> None:
    """A ClickException with the problem's detail unless ``answer`` succeeded."""
    if answer.is_success:
        return
    try:
        detail = answer.json().get("detail") or answer.text
    except ValueError:
        detail = answer.text
    raise click.ClickException(f"{answer.status_code}: {detail}")


def _remote(value: str) -> tuple[str, str]:
    project, sep, path = value.partition(":")
    if not sep or not project:
        raise click.BadParameter(f"{value!r} is not PROJECT:PATH")
    return project, path


def _data_url(project: str, path: str = "") -> str:
    from urllib.parse import quote

    base = f"/api/v1/projects/{quote(project, safe='')}/data"
    return f"{base}/{quote(path)}" if path else base


@click.command()
@click.option("--url", default="http://localhost:8080", show_default=True, help="Balsam's address.")
@click.option("--username", prompt=True)
@click.option("--days", default=30, show_default=True, help="How long the token lasts.")
def login(url: str, username: str, days: int) -> None:
    """Log in once: keep a personal API token for the commands below. The password is
    asked for (never an argument: those show in the process list)."""
    password = click.prompt("Password", hide_input=True)
    answer = httpx.post(
        url.rstrip("/") + "/api/v1/users/me/tokens",
        json={"name": "balsam CLI", "expiresInDays": days},
        auth=(username, password),
        timeout=_TIMEOUT,
    )
    fail(answer)
    target = _credentials_file()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"url": url.rstrip("/"), "token": answer.json()["token"]}, out)
    click.echo(f"Logged in to {url} as {username}; the token is in {target}.")


@click.group()
def data() -> None:
    """A project's data: ls, cp, mv, rm, preview (paths are PROJECT:PATH)."""


@data.command("ls")
@click.argument("location")
def ls(location: str) -> None:
    """Folders and objects under PROJECT:FOLDER/ (PROJECT: for the top)."""
    project, prefix = _remote(location)
    with client_for() as client:
        after = ""
        while True:
            answer = client.get(_data_url(project), params={"prefix": prefix, "after": after})
            fail(answer)
            page = answer.json()
            for folder in page["prefixes"]:
                click.echo(f"{'':>12}  {'':20}  {folder}")
            for item in page["items"]:
                when = item["modifiedAt"][:19].replace("T", " ")
                expires = item.get("expiresAt")
                until = f"  (expires {expires[:10]})" if expires else ""
                click.echo(f"{item['size']:>12}  {when:20}  {item['path']}{until}")
            after = page.get("nextAfter") or ""
            if not after:
                return


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            yield chunk


@data.command("cp")
@click.argument("source")
@click.argument("target")
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, 3650),
    default=None,
    help="An upload into tmp/: days until it expires (default: the installation's).",
)
def cp(source: str, target: str, expires_in_days: int | None) -> None:
    """Upload (cp FILE PROJECT:PATH) or download (cp PROJECT:PATH FILE; - for stdout)."""
    upload = ":" in target and Path(source).is_file()
    if not upload and ":" not in source:
        raise click.UsageError("One side is PROJECT:PATH, the other a file (or - to print).")
    with client_for() as client:
        if upload:
            project, path = _remote(target)
            days = {"expiresInDays": str(expires_in_days)} if expires_in_days else {}
            answer = client.put(
                _data_url(project, path), content=_file_chunks(Path(source)), params=days
            )
            fail(answer)
            written: dict[str, Any] = answer.json()
            click.echo(f"{written['path']}: {written['size']} bytes, sha256 {written['sha256']}")
            return
        project, path = _remote(source)
        with client.stream("GET", _data_url(project, path)) as answer:
            if not answer.is_success:
                answer.read()
                fail(answer)
            out = sys.stdout.buffer if target == "-" else open(target, "wb")  # noqa: SIM115
            try:
                for chunk in answer.iter_bytes(1 << 20):
                    out.write(chunk)
            finally:
                if target != "-":
                    out.close()


@data.command("rm")
@click.argument("location")
def rm(location: str) -> None:
    """Delete PROJECT:PATH (a folder: PROJECT:FOLDER/); restorable for the retention period."""
    project, path = _remote(location)
    with client_for() as client:
        fail(client.delete(_data_url(project, path)))
    click.echo(f"deleted {path}; restorable from its versions for the retention period")


@data.command("mv")
@click.argument("source")
@click.argument("target")
def mv(source: str, target: str) -> None:
    """Move (rename) PROJECT:PATH to PROJECT:NEWPATH within a project (folders: end both
    in /); nothing is overwritten."""
    project, path = _remote(source)
    other, to = _remote(target)
    if other != project:
        raise click.UsageError("Both sides are in the same project.")
    with client_for() as client:
        answer = client.post(f"{_data_url(project, path)}/move", json={"to": to})
        fail(answer)
    click.echo(f"moved {answer.json()['objects']} object(s) to {to}")


@data.command("preview")
@click.argument("location")
def preview(location: str) -> None:
    """Schema and first rows of PROJECT:PATH (CSV, JSON lines, Parquet, text)."""
    project, path = _remote(location)
    with client_for() as client:
        answer = client.get(_data_url(project, path), params={"preview": "true"})
        fail(answer)
    shown = answer.json()
    if shown.get("text") is not None:
        click.echo(shown["text"])
        return
    if shown["kind"] == "none":
        raise click.ClickException("No preview of this type: download it.")
    columns = shown["columns"]
    click.echo("\t".join(f"{c['name']} ({c['type']})" for c in columns))
    for row in shown["rows"]:
        click.echo("\t".join("" if v is None else str(v) for v in row))
    if shown.get("error"):
        click.echo(f"({shown['error']})", err=True)
