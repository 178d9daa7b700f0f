"""HTML pages from a workspace's server (its user's code) are read whole to remove the
server's token: within a bound, compressed or not."""

from __future__ import annotations

import gzip
import zlib

import pytest

from balsam.web.proxy import routes


def test_the_token_is_removed_from_plain_and_compressed_pages() -> None:
    page = b"<html><script>{'token': 'SECRET'}</script></html>"
    assert b"SECRET" not in routes._without_token(page, "", "SECRET")
    assert routes._without_token(gzip.compress(page), "gzip", "SECRET") == page.replace(
        b"SECRET", b""
    )
    assert routes._without_token(zlib.compress(page), "deflate", "SECRET") == page.replace(
        b"SECRET", b""
    )


@pytest.mark.parametrize("encoding, pack", [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_a_compression_bomb_is_refused_without_unpacking_it(encoding: str, pack: object) -> None:
    bomb = pack(b"\0" * (routes.PAGE_LIMIT * 8))  # type: ignore[operator]
    assert len(bomb) < routes.PAGE_LIMIT // 8
    with pytest.raises(routes._PageTooLarge):
        routes._without_token(bomb, encoding, "SECRET")


def test_a_page_that_cannot_be_decoded_is_an_error() -> None:
    with pytest.raises(zlib.error):
        routes._without_token(b"not gzip at all", "gzip", "SECRET")
