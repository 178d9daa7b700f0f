"""``balsam audit``: check the tamper-evident audit trail."""

from __future__ import annotations

from pathlib import Path

import click

from balsam.cli.admin import data_dir_option, database_context
from balsam.cli.settings_cmd import load_settings


@click.group()
def audit() -> None:
    """Inspect the audit trail."""


@audit.command()
@data_dir_option
def verify(data_dir: Path | None) -> None:
    """Check every record's hash chain: exit 0 when intact, 1 at the first broken record."""
    with database_context(load_settings(data_dir=data_dir)) as ctx:
        ok, checked, bad_id = ctx.audit.verify_chain()
    if not ok:
        click.echo(f"BROKEN at record {bad_id} ({checked} records before it are intact)")
        raise SystemExit(1)
    click.echo(f"ok: {checked} records")
