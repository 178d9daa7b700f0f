"""``balsam run``: run a pipeline, notebook or script of a project's repository as a
recorded run (docs/runs.md), and follow it to its end.

Uses the token ``balsam login`` kept (or ``BALSAM_URL``/``BALSAM_TOKEN``). The exit
status is 0 when the run succeeded, 1 when it failed or was cancelled; Ctrl-C while
following cancels the run.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import click

from balsam.cli.data import client_for, fail

#: Seconds between looks at a running run.
POLL_SECONDS = 1.0
ENDED = ("succeeded", "failed", "cancelled")


def _parameters(values: tuple[str, ...]) -> dict[str, Any]:
    """``name=value`` pairs; a value that reads as JSON (a number, true, a list) is
    taken as such, anything else as text."""
    parameters: dict[str, Any] = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        try:
            parameters[name] = json.loads(text)
        except ValueError:
            parameters[name] = text
    return parameters


@click.command("run")
@click.argument("location")
@click.option("--branch", default="main", show_default=True, help="The branch whose code runs.")
@click.option("--commit", default=None, help="A commit on the branch (default: its head).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A parameter.")
@click.option(
    "--template", default=None, help="The environment's template (default: the installation's)."
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow it to its end.")
def run(
    location: str,
    branch: str,
    commit: str | None,
    params: tuple[str, ...],
    template: str | None,
    wait: bool,
) -> None:
    """Run PROJECT:PATH (a .pipeline, .ipynb, .py or .R file of the repository) and
    print its steps as they go; its record is at the end."""
    project, sep, path = location.partition(":")
    if not sep or not project or not path:
        raise click.BadParameter(f"{location!r} is not PROJECT:PATH")
    body: dict[str, Any] = {"branchId": branch, "path": path, "parameters": _parameters(params)}
    body |= {"commit": commit} if commit else {}
    body |= {"template": template} if template else {}
    base = f"/api/v1/projects/{quote(project, safe='')}/runs"
    with client_for() as client:
        answer = client.post(base, json=body)
        fail(answer)
        started = answer.json()
        click.echo(f"run {started['id']} of {path} at {started['commit'][:12]}: {started['state']}")
        if not wait:
            return
        try:
            ended = _follow(client, f"{base}/{started['id']}")
        except KeyboardInterrupt:
            fail(client.post(f"{base}/{started['id']}/cancel"))
            click.echo("cancelled")
            raise SystemExit(1) from None
    if ended.get("error"):
        click.echo(ended["error"], err=True)
    click.echo(f"{ended['state']}; record: {base}/{started['id']}/record")
    if ended["state"] != "succeeded":
        raise SystemExit(1)


def _follow(client: Any, url: str) -> dict[str, Any]:
    """Print each step's state as it changes; the run once it has ended."""
    seen: dict[str, str] = {}
    while True:
        answer = client.get(url)
        fail(answer)
        current: dict[str, Any] = answer.json()
        for node in current["nodes"]:
            if seen.get(node["id"]) != node["state"]:
                seen[node["id"]] = node["state"]
                error = f": {node['error']}" if node.get("error") else ""
                click.echo(f"  {node['label']}: {node['state']}{error}")
        if current["state"] in ENDED:
            return current
        time.sleep(POLL_SECONDS)
