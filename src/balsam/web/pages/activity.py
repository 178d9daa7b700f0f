"""What the audit trail's records say, in words (*Aktivitet*, *Granskningslogg*).

The trail keeps machine names (``credential.revoke``, ``success``); pages show these
labels in the page's language, and the machine name where none is known (a record
of an older or newer version)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from balsam.web.pages.i18n import N_

ACTIONS: Final[Mapping[str, str]] = {
    "project.create": N_("Project created"),
    "project.update": N_("Project changed"),
    "project.delete": N_("Project deleted"),
    "branch.create": N_("Branch created"),
    "branch.delete": N_("Branch deleted"),
    "member.add": N_("Member added"),
    "member.update": N_("Member's role changed"),
    "member.remove": N_("Member removed"),
    "credential.create": N_("S3 key created"),
    "credential.revoke": N_("S3 key revoked"),
    "workspace.create": N_("Workspace created"),
    "workspace.start": N_("Workspace started"),
    "workspace.stop": N_("Workspace stopped"),
    "workspace.cull": N_("Idle workspace stopped"),
    "workspace.delete": N_("Workspace deleted"),
    "workspace.open": N_("Workspace opened"),
    "workspace.run": N_("Workspace's server started"),
    "workspace.exit": N_("Workspace's server ended"),
    "workspace.list": N_("Workspaces listed"),
    "workspace.get": N_("Workspace looked up"),
    "project.read": N_("Project read"),
    "branch.read": N_("Branch read"),
    "branch.list": N_("Branches listed"),
    "member.list": N_("Members listed"),
    "credential.list": N_("S3 keys listed"),
    "git.push": N_("Pushed to the repository"),
    "git.fetch": N_("Fetched from the repository"),
    "git.denied": N_("Repository access refused"),
    "library.copy": N_("Resource copied from a library"),
    "library.create": N_("Library registered"),
    "library.update": N_("Library changed"),
    "library.delete": N_("Library removed"),
    "library.sync": N_("Library synced"),
    "user.create": N_("User created"),
    "user.update": N_("User changed"),
    "user.password": N_("Password changed"),
    "token.create": N_("API token created"),
    "token.revoke": N_("API token revoked"),
    "auth.login": N_("Logged in"),
    "auth.logout": N_("Logged out"),
    "auth.workspace_session": N_("Signed in to the workspaces"),
    "request.denied": N_("Request refused"),
    "data.purge": N_("Deleted data purged"),
    "data.list": N_("Data listed"),
    "data.read": N_("Data read"),
    "data.usage": N_("Data usage read"),
    "data.write": N_("Data written"),
    "data.delete": N_("Data deleted"),
    "data.restore": N_("Earlier version of data restored"),
    "data.move": N_("Data moved"),
    "data.expire": N_("Expired temporary data deleted"),
    "data.quota": N_("Storage quota reached or left (keys made read-only or writable)"),
    "connection.create": N_("Data connection created"),
    "connection.delete": N_("Data connection deleted"),
    "connection.list": N_("Data connections listed"),
    "connection.read": N_("Data connection looked up"),
    "connection.use": N_("Data connection used"),
    "data.import": N_("Data imported from a URL"),
    "run.create": N_("Run started"),
    "run.cancel": N_("Run cancelled"),
    "run.end": N_("Run ended (its record written)"),
    "run.read": N_("Run looked up"),
    "run.list": N_("Runs listed"),
    "run.rerun": N_("Run asked to run again"),
}
OUTCOMES: Final[Mapping[str, str]] = {
    "success": N_("done"),
    "failure": N_("failed"),
    "denied": N_("refused"),
}


#: What became of an operation a crash (or a failed undo) interrupted: the repair's
#: outcome in the audit record's details.
REPAIRS: Final[Mapping[str, str]] = {
    "completed": N_("interrupted, then completed by the repair"),
    "undone": N_("interrupted, then undone by the repair"),
}


def labels(gettext: Callable[[str], str]) -> dict[str, dict[str, str]]:
    """``{"actions": {...}, "outcomes": {...}, "repairs": {...}}`` in ``gettext``'s
    language."""
    return {
        "actions": {name: gettext(label) for name, label in ACTIONS.items()},
        "outcomes": {name: gettext(label) for name, label in OUTCOMES.items()},
        "repairs": {name: gettext(label) for name, label in REPAIRS.items()},
    }
