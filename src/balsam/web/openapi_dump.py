"""Print Balsam's OpenAPI document, the one checked in as ``web/openapi.json``.

    python -m balsam.web.openapi_dump > src/balsam/web/openapi.json

``tests/web/api/v1/test_openapi.py`` fails when the served document and the
checked-in one differ, so an API change is always a visible diff in review.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

from balsam.app import create_app
from balsam.context import AppContext
from balsam.settings import Settings


class _NoContext:
    """Stands in for the app context: building the schema never reads it."""


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, built without a database, git or storage."""
    with tempfile.TemporaryDirectory(prefix="balsam-openapi-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        app = create_app(settings, ctx=cast(AppContext, _NoContext()))
        return app.openapi()


def render(document: dict[str, Any]) -> str:
    """Stable text for the checked-in file (two-space indent, trailing newline)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    sys.stdout.write(render(openapi_document()))


if __name__ == "__main__":
    main()
