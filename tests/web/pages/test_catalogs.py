"""Every string the portal shows is in both catalogs, translated."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from balsam.web.pages import i18n
from balsam.web.pages.activity import ACTIONS

ROOT = Path(__file__).resolve().parents[3]
METHODS = [
    ("src/balsam/web/pages/**.py", "python"),
    ("src/balsam/web/errors.py", "python"),
    ("src/balsam/web/pages/templates/**.html", "jinja2"),
]
OPTIONS = {"src/balsam/web/pages/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def _extracted() -> set[str]:
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), METHODS, OPTIONS, keywords=keywords
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_string_is_translated_in_both_catalogs() -> None:
    wanted = _extracted()
    assert "My pages" in wanted  # the extraction itself works
    for language in i18n.LANGUAGES:
        with open(i18n.catalog_path(language), "rb") as po:
            catalog = read_po(po, locale=language)
        translated = {
            (m.id[0] if isinstance(m.id, tuple) else m.id)
            for m in catalog
            if m.id and all(m.string if isinstance(m.string, tuple) else [m.string])
        }
        missing = sorted(wanted - translated)
        assert not missing, f"missing from the {language} catalog (run `make messages`): {missing}"


def test_swedish_uses_the_words_of_scbs_articles() -> None:
    sv = i18n.translations("sv")
    assert sv.gettext("My pages") == "Mina sidor"
    assert sv.gettext("New workspace") == "Ny bearbetningsmiljö"


#: An audit action's name as the services write it: ``<area>.<verb>``.
_ACTION = re.compile(
    r'"((?:auth|user|token|project|branch|member|credential|workspace|git|library|data|'
    r'request|connection)\.[a-z_]+)"'
)


def test_every_audit_action_is_named_in_words() -> None:
    """Aktivitet and the audit page name each step in words; an action new in the
    services and missing there would show its record name (as workspace.run once did)."""
    sources = (ROOT / "src" / "balsam" / "domain").rglob("*.py")
    written = {m.group(1) for path in sources for m in _ACTION.finditer(path.read_text())}
    assert {"project.create", "workspace.run", "auth.login"} <= written  # the scan finds them
    assert sorted(written - set(ACTIONS)) == []
