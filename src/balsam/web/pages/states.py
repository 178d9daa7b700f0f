"""A workspace's state and the reason given for it, in the page's language.

The supervisor stores its reasons in English (the API shows them so); the pages
translate the ones they know, also those with a value in them, and show any other
as it is."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from balsam.web.pages.i18n import N_

STATES: Final = {
    "pending": N_("pending"),
    "running": N_("running"),
    "stopped": N_("stopped"),
    "failed": N_("failed"),
}
#: The reasons given word for word.
REASONS: Final = (
    N_("Waiting to start"),
    N_("Preparing the home folder"),
    N_("Starting JupyterLab"),
    N_("Locked: the owner is no longer a member of the project"),
    N_("Its template or credentials are gone; delete it."),
    N_("Its server was not running when Balsam started"),
    N_("The server stopped."),
    N_("Balsam was stopped"),
    N_("Removing the workspace's previous pod"),
    N_("Starting the workspace pod"),
)
#: The reasons with a value in them: the pattern, and the template it fills.
PATTERNS: Final = (
    (re.compile(r"Stopped by (?P<user>.+)"), N_("Stopped by %(user)s")),
    (
        re.compile(r"Building environment (?P<name>\S+) \(first use of this template version\)"),
        N_("Building environment %(name)s (first use of this template version)"),
    ),
)


#: A knowledge library's sync status.
SYNC_STATES: Final = {
    "pending": N_("waiting"),
    "syncing": N_("syncing"),
    "ok": N_("up to date"),
    "failed": N_("failed"),
}


def sync_labels(gettext: Callable[[str], str]) -> dict[str, str]:
    return {status: gettext(label) for status, label in SYNC_STATES.items()}


def state_labels(gettext: Callable[[str], str]) -> dict[str, str]:
    return {state: gettext(label) for state, label in STATES.items()}


def reason_labels(gettext: Callable[[str], str]) -> dict[str, str]:
    """The word-for-word reasons, translated (the live state's script uses them)."""
    return {reason: gettext(reason) for reason in REASONS}


def reason_patterns(gettext: Callable[[str], str]) -> list[tuple[str, str]]:
    """The reasons with a value in them for the live state's script: each pattern in
    JavaScript's syntax and its template translated (``%(name)s`` placeholders)."""
    return [
        (pattern.pattern.replace("(?P<", "(?<"), gettext(template))
        for pattern, template in PATTERNS
    ]


def _known(
    gettext: Callable[[str], str],
    text: str | None,
    words: tuple[str, ...],
    patterns: tuple[tuple[re.Pattern[str], str], ...],
) -> str:
    """``text`` translated where it is one of ``words`` or fills one of ``patterns``."""
    if not text:
        return ""
    if text in words:
        return gettext(text)
    for pattern, template in patterns:
        found = pattern.fullmatch(text)
        if found:
            return gettext(template) % found.groupdict()
    return text


def reason(gettext: Callable[[str], str], text: str | None) -> str:
    """``text`` in ``gettext``'s language where it is a reason the pages know."""
    return _known(gettext, text, REASONS, PATTERNS)


#: The names Balsam gives the keys it mints itself. They are stored (and shown by the
#: API) in English; a name a person chose is shown as it is.
KEY_NAMES: Final = (N_("created with project"),)
KEY_PATTERNS: Final = ((re.compile(r"workspace (?P<id>[a-z0-9-]+)"), N_("workspace %(id)s")),)


def key_name(gettext: Callable[[str], str], text: str | None) -> str:
    """A key's name in ``gettext``'s language where Balsam gave it."""
    return _known(gettext, text, KEY_NAMES, KEY_PATTERNS)
