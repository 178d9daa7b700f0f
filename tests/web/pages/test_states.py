"""A workspace's state and reason in the page's language, on the server and in the
live state's script (balsam.js) alike."""

from __future__ import annotations

from importlib.resources import files

import pytest
from playwright.sync_api import Browser

from balsam.web.pages import i18n
from balsam.web.pages.states import reason, reason_patterns

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
