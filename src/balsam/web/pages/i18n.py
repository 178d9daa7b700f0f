"""The portal's languages: Swedish and English, from gettext catalogs.

The catalogs are ``src/balsam/locale/<lang>/LC_MESSAGES/messages.po``, kept in the
repository and read (compiled in memory) once per process: no build step and no
binary files to keep in step with them. ``make messages`` extracts the strings of
the templates and page modules and updates both catalogs; a test fails when a
string is missing from either.

The language of a request: the ``balsam_lang`` cookie (set by the switch in the
header) if it names a supported language, else the first supported language in
``Accept-Language`` by quality, else English.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from importlib.resources import files
from typing import Final

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from starlette.requests import Request

from balsam.errors import N_ as N_  # re-exported: the pages mark their strings with it
from balsam.errors import BalsamError

LANGUAGES: Final = ("sv", "en")
DEFAULT: Final = "en"
COOKIE: Final = "balsam_lang"
#: How the switch names each language (in that language).
NAMES: Final = {"sv": "Svenska", "en": "English"}


def catalog_path(language: str) -> str:
    """Where ``language``'s catalog lives in the package (for tests and tools)."""
    return str(files("balsam") / "locale" / language / "LC_MESSAGES" / "messages.po")


@functools.cache
def translations(language: str) -> Translations:
    """The compiled catalog of ``language`` (one of :data:`LANGUAGES`)."""
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    with open(catalog_path(language), "rb") as po:
        catalog = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain="messages")


def _accepted(header: str) -> list[str]:
    """The primary language tags of ``Accept-Language``, best first (q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, index, tag.split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(request: Request) -> str:
    """The language to answer ``request`` in."""
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    for tag in _accepted(request.headers.get("accept-language", "")):
        if tag in LANGUAGES:
            return tag
    return DEFAULT


def gettext(request: Request) -> Callable[[str], str]:
    """The translation function of ``request``'s language (for messages built in
    Python, e.g. a form's error)."""
    return translations(negotiate(request)).gettext


def message_of(request: Request, exc: BalsamError) -> str:
    """A service's refusal in ``request``'s language: the catalog's words when the
    message is in it (marked with :func:`N_`), else the service's own."""
    return exc.translated(gettext(request))
