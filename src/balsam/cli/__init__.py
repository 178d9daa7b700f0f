"""The ``balsam`` command line: one module per noun, each a thin layer over the services.

Exit codes: 0 success, 1 a refused or failed operation (the message says why),
2 wrong usage or a refusal to start (``balsam up``).
"""

from __future__ import annotations

import logging
import sys

import click

from balsam import __version__
from balsam.cli.admin import admin
from balsam.cli.audit import audit
from balsam.cli.data import data, login
from balsam.cli.library import library
from balsam.cli.run_cmd import run
from balsam.cli.settings_cmd import settings
from balsam.cli.up import restart, up


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="balsam")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Balsam: projects with git, S3 data and workspaces, on one machine."""
    # The server logs its progress; one-shot commands print results and only warn.
    logging.basicConfig(
        level=logging.INFO if ctx.invoked_subcommand == "up" else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO: start-up's readiness probes (404 until the
    # storage server is ready) read as errors, and requests are not the server's news.
    logging.getLogger("httpx").setLevel(logging.WARNING)


main.add_command(up)
main.add_command(restart)
main.add_command(admin)
main.add_command(audit)
main.add_command(library)
main.add_command(settings)
main.add_command(login)
main.add_command(data)
main.add_command(run)

__all__ = ["main"]
