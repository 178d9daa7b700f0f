"""A workspace's state and reason in the page's language, on the server and in the
live state's script (balsam.js) alike."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from balsam.web.pages import i18n
from balsam.web.pages.states import key_name, reason, reason_patterns

SCRIPT = files("balsam.web.pages") / "static" / "balsam.js"


@pytest.mark.parametrize(
    "text",
    [
        "Stopped by anna",
        "Building environment python-abc123 (first use of this template version)",
        "Something else",
    ],
)
def test_the_script_translates_a_reason_as_the_server_does(chromium: Browser, text: str) -> None:
    gettext = i18n.translations("sv").gettext
    page = chromium.new_page()
    try:
        page.add_script_tag(content=SCRIPT.read_text())
        in_script = page.evaluate(
            "([patterns, text]) => translateReason({}, patterns, text)",
            [reason_patterns(gettext), text],
        )
    finally:
        page.close()
    assert in_script == reason(gettext, text)
    if text.startswith("Stopped"):
        assert in_script == "Stoppad av anna", in_script


#: Where the domain and the providers write a workspace's reason as a literal.
_SET_REASON = re.compile(r'(?:state_reason\s*=\s*|submit_stop\([^,]+,\s*|progress\()f?"([^"]+)"')


def test_every_reason_the_services_set_is_translated() -> None:
    """A reason new in the code and missing here would reach a Swedish page in
    English (as "Balsam was stopped" once did)."""
    root = files("balsam")
    sources = [
        path
        for folder in ("domain/workspaces", "providers/workspaces")
        for path in Path(str(root / folder)).glob("*.py")
    ]
    code = [
        line
        for path in sources
        for line in path.read_text().splitlines()
        # (not comments, nor the line that sets a state beside its reason)
        if not line.lstrip().startswith("#") and ", ws.state_reason =" not in line
    ]
    found = {m.group(1) for line in code for m in _SET_REASON.finditer(line)}
    assert len(found) >= 8, found  # the scan finds them
    sv = i18n.translations("sv").gettext
    untranslated = [
        text
        for text in found
        if reason(sv, text.replace("{actor.username}", "anna")) == text
        and "{" not in text.replace("{actor.username}", "")
    ]
    assert untranslated == []


@pytest.mark.parametrize(
    ("stored", "swedish"),
    [
        ("created with project", "skapad med projektet"),
        ("workspace analys-3f9a2c", "bearbetningsmiljö analys-3f9a2c"),
        ("laptop", "laptop"),
        ("workspace of mine, not Balsam's", "workspace of mine, not Balsam's"),
    ],
)
def test_the_key_names_balsam_gives_are_shown_in_the_pages_language(
    stored: str, swedish: str
) -> None:
    """Balsam names the keys it mints in English (the API shows them so); a name a
    person chose is never translated."""
    assert key_name(i18n.translations("sv").gettext, stored) == swedish
    assert key_name(i18n.translations("en").gettext, stored) == stored
